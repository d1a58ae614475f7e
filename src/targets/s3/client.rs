//! Reaching S3: the client, built from the AWS configuration chain, and
//! [`S3Target::call`], through which every request of a task goes. The SDK's own retries
//! are off; `call` retries a request that failed transiently, with jittered backoff, under
//! the pacer, up to `--max-attempts` tries. It is the only layer that retries: the runner
//! does not try a failed task again.

use std::future::Future;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::S3Target;
use crate::errors::chain;
use crate::targets::{ErrorKind, ObjectRef, TargetError};
use crate::time::backoff;

/// How to reach the server. None of it is secret: credentials come from the AWS chain.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// Builds a client from the standard AWS configuration chain (environment, profile, SSO,
/// instance metadata, assume-role). With an endpoint URL (an S3-compatible store) it uses
/// path-style addressing and sends checksums only where an operation requires them.
pub async fn connect(conn: &Connection) -> Result<Client, String> {
    use aws_config::{BehaviorVersion, Region};
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(300))
                .build(),
        );
    if let Some(profile) = &conn.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &conn.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &conn.endpoint_url {
        loader = loader
            .endpoint_url(url)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
    }
    let shared = loader.load().await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared);
    if shared.region().is_none() {
        if conn.endpoint_url.is_none() {
            return Err(
                "no AWS region: give --region, or set AWS_REGION or a region in the profile".into(),
            );
        }
        // S3-compatible stores mostly ignore the region but SigV4 needs one.
        config = config.region(Region::new("us-east-1"));
    }
    if conn.endpoint_url.is_some() {
        config = config.force_path_style(true);
    }
    Ok(Client::from_conf(config.build()))
}

impl S3Target {
    /// Sends a request, retrying transient failures with backoff under the pacer. A 412
    /// after a retry may be the first attempt's own write having landed: it comes back as
    /// [`ErrorKind::Changed`] marked `maybe_written`, so that the runner's re-inspection
    /// decides.
    pub(super) async fn call<T, E, F, Fut>(
        &self,
        what: &str,
        object: &ObjectRef,
        mut send: F,
    ) -> Result<T, TargetError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = self.pacer.acquire().await;
            let requests = &crate::metrics::metrics().requests;
            match send().await {
                Ok(v) => {
                    permit.success();
                    requests.with_label_values(&[what, "2xx"]).inc();
                    return Ok(v);
                }
                Err(e) => {
                    let status = e.raw_response().map(|r| r.status().as_u16().to_string());
                    requests
                        .with_label_values(&[what, status.as_deref().unwrap_or("error")])
                        .inc();
                    let mut err = classify(what, object, &e);
                    if err.kind == ErrorKind::Changed && attempt > 1 {
                        err.maybe_written = true;
                        err.message
                            .push_str(" (after a retry: an earlier attempt may have taken effect)");
                    }
                    if err.kind != ErrorKind::Transient {
                        drop(permit);
                        return Err(err);
                    }
                    permit.throttled();
                    tracing::debug!(what, attempt, error = %err, "retrying");
                    if attempt >= self.options.max_attempts {
                        return Err(err);
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }
}

/// Error codes that mean "slow down or try again".
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "KMS.ThrottlingException",
    "KMS.KMSInternalException",
    "OperationAborted",
];

/// Turns an SDK error into a [`TargetError`]: which kind, the HTTP status and S3's code.
pub(super) fn classify<E>(
    what: &str,
    object: &ObjectRef,
    e: &SdkError<E, HttpResponse>,
) -> TargetError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let where_ = format!("{what} s3://{}/{}", object.bucket, object.key);
    match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let status = status.unwrap_or(500);
            let code = err
                .code()
                .map(str::to_owned)
                .unwrap_or_else(|| match status {
                    404 => "NotFound".into(),
                    403 => "AccessDenied".into(),
                    412 => "PreconditionFailed".into(),
                    400 => "BadRequest".into(),
                    _ => format!("Http{status}"),
                });
            let kind = if status == 412 || code == "PreconditionFailed" {
                ErrorKind::Changed
            } else if status >= 500 || status == 429 || TRANSIENT_CODES.contains(&code.as_str()) {
                ErrorKind::Transient
            } else {
                ErrorKind::Permanent
            };
            let message = match err.message() {
                Some(m) => format!("{where_}: {m}"),
                None => format!("{where_}: HTTP {status}"),
            };
            TargetError::new(kind, status, &code, message)
        }
        SdkError::ConstructionFailure(_) => {
            TargetError::permanent(0, "RequestNotBuilt", format!("{where_}: {}", chain(e)))
        }
        // No answer, a timeout or an answer cut short: it may or may not have taken effect.
        _ => TargetError::new(
            ErrorKind::Transient,
            status.unwrap_or(0),
            "RequestFailed",
            format!("{where_}: {}", chain(e)),
        ),
    }
}
