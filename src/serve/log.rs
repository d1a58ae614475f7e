//! What the endpoint logs of its requests: each answer once, from here. A server failure (a
//! 5xx other than 501 NotImplemented) at error; a refused request (any other error answer)
//! at debug, and at most [`REFUSALS_PER_SECOND`] such lines a second, since anyone who can
//! connect can send refused requests. s3s logs every refused request at ERROR itself (and a
//! malformed XML body whole): its warnings and errors are kept out of the log.
//!
//! Never logged: the query string (a presigned URL's signature is in it) or any header.
//! Must not change an answer: it only looks at it.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use s3s::{HttpError, HttpResponse};
use tracing::instrument::{WithDispatch, WithSubscriber};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// The most refusal lines written in one second (and at once, after a quiet spell).
const REFUSALS_PER_SECOND: f64 = 10.0;

/// The request log of one endpoint.
pub struct RequestLog {
    refusals: Mutex<Bucket>,
    /// The process's subscriber less s3s's warnings and errors.
    quiet: Dispatch,
}

impl RequestLog {
    /// Logs through the subscriber current when it is made (the process's).
    pub fn new() -> RequestLog {
        let inner = tracing::dispatcher::get_default(Dispatch::clone);
        RequestLog {
            refusals: Mutex::new(Bucket::full(Instant::now())),
            quiet: Dispatch::new(WithoutS3sAlarms {
                max_level: LevelFilter::current(),
                inner,
            }),
        }
    }

    /// `call` (s3s handling a request) without s3s's own warnings and errors.
    pub fn quiet<F: Future>(&self, call: F) -> WithDispatch<F> {
        call.with_subscriber(self.quiet.clone())
    }

    /// Logs the answer to a request.
    pub fn answered(
        &self,
        peer: SocketAddr,
        method: &http::Method,
        path: &str,
        answer: &Result<HttpResponse, HttpError>,
    ) {
        let served = &crate::metrics::metrics().served;
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                served.with_label_values(&[method.as_str(), "error"]).inc();
                tracing::error!(%peer, %method, path, error = ?e, "no answer could be made");
                return;
            }
        };
        let status = response.status();
        served
            .with_label_values(&[method.as_str(), status.as_str()])
            .inc();
        if status.is_server_error() && status != http::StatusCode::NOT_IMPLEMENTED {
            let code = error_code(response);
            let code = code.as_deref();
            tracing::error!(%peer, %method, path, status = status.as_u16(), code, "server error");
        } else if status.is_client_error() || status.is_server_error() {
            if !tracing::enabled!(Level::DEBUG) {
                return;
            }
            let admitted = self
                .refusals
                .lock()
                .expect("not poisoned")
                .take(Instant::now());
            let code = error_code(response);
            let code = code.as_deref();
            match admitted {
                Some(0) => {
                    tracing::debug!(%peer, %method, path, status = status.as_u16(), code, "refused");
                }
                Some(dropped) => tracing::debug!(
                    %peer,
                    %method,
                    path,
                    status = status.as_u16(),
                    code,
                    dropped,
                    "refused (and `dropped` earlier refusals not logged)"
                ),
                None => {}
            }
        }
    }
}

/// The S3 error code of an error answer (s3s writes its XML whole, before it is sent).
fn error_code(response: &HttpResponse) -> Option<String> {
    let body = response.body().bytes()?;
    let text = std::str::from_utf8(&body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(text[start..end].to_owned())
}

/// A token bucket: a line takes a token; tokens come back at [`REFUSALS_PER_SECOND`], up to
/// that many.
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Lines refused since the last one taken.
    dropped: u64,
}

impl Bucket {
    fn full(now: Instant) -> Bucket {
        Bucket {
            tokens: REFUSALS_PER_SECOND,
            at: now,
            dropped: 0,
        }
    }

    /// Whether a line may be written at `now`; if so, with how many were dropped before it.
    fn take(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * REFUSALS_PER_SECOND).min(REFUSALS_PER_SECOND);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.dropped))
        } else {
            self.dropped += 1;
            None
        }
    }
}

/// A subscriber that passes everything to `inner` except s3s's warnings and errors.
struct WithoutS3sAlarms {
    max_level: LevelFilter,
    inner: Dispatch,
}

fn is_s3s_alarm(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    meta.is_event()
        && *meta.level() <= Level::WARN
        && (target == "s3s" || target.starts_with("s3s::"))
}

impl Subscriber for WithoutS3sAlarms {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_s3s_alarm(meta) {
            Interest::never()
        } else {
            self.inner.register_callsite(meta)
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max_level)
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        !is_s3s_alarm(meta) && self.inner.enabled(meta)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values)
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows)
    }

    fn event(&self, event: &Event<'_>) {
        if !is_s3s_alarm(event.metadata()) {
            self.inner.event(event)
        }
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span)
    }

    fn exit(&self, span: &Id) {
        self.inner.exit(span)
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Bucket;

    #[test]
    fn refusal_lines_are_bounded_and_count_what_was_dropped() {
        let start = Instant::now();
        let mut bucket = Bucket::full(start);
        let burst = (0..100).filter(|_| bucket.take(start).is_some()).count();
        assert_eq!(burst, 10);
        assert_eq!(bucket.take(start + Duration::from_millis(50)), None);
        assert_eq!(
            bucket.take(start + Duration::from_millis(150)),
            Some(91),
            "the next line says how many were not written"
        );
        assert_eq!(bucket.take(start + Duration::from_millis(160)), None);
        assert_eq!(bucket.take(start + Duration::from_secs(60)), Some(1));
    }
}
