//! `reseal serve`: an S3 endpoint in front of the local store, on the `s3s` framework.
//! Any S3 client (the AWS CLI, rclone, s5cmd, the SDKs, reseal's own S3 target) can use
//! the store, and the store does the server-side encryption as S3 describes it.
//!
//! - `s3/` — the S3 operations ([`s3s::S3`]), each a call into [`crate::store`] on
//!   tokio's blocking pool;
//! - `sse.rs` — encryption request headers in, encryption response headers out;
//! - `policy.rs` — bucket policies: the subset of S3's policy language taken, and whether
//!   a policy denies a write;
//! - `auth.rs` — the access keys (SigV4; no anonymous access) and presigned URLs' limits;
//! - `payload.rs` — request bodies against the SHA-256 they were signed with;
//! - `error.rs` — store errors as S3 error codes and statuses;
//! - `log.rs` — the request log;
//! - this file — the listener: plain HTTP or TLS, one [`Connection`] per client, what
//!   every request goes through around s3s ([`Front`]), and a graceful shutdown on SIGTERM
//!   or SIGINT.
//!
//! Must not print (the CLI does) and knows nothing of jobs.

mod auth;
mod error;
mod log;
mod payload;
mod policy;
mod s3;
mod sse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::service::S3Service;
use s3s::{HttpError, HttpResponse, S3Error};
use tokio::net::TcpListener;

pub use auth::{ACCESS_KEY_ENV, Credentials, SECRET_KEY_ENV};
pub use s3::Endpoint;

use crate::store::Store;

/// How requests in flight get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What a request knows of the connection it came on (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    pub peer: SocketAddr,
    pub tls: bool,
}

impl Connection {
    /// Whether SSE-C keys may travel on it: over TLS, or on loopback (AWS refuses them
    /// over plain HTTP).
    pub fn may_carry_keys(&self) -> bool {
        self.tls || self.peer.ip().is_loopback()
    }
}

/// Everything `reseal serve` runs with.
pub struct ServeConfig {
    pub store: Store,
    pub addr: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub credentials: Credentials,
    /// The region the endpoint is in (signatures and KMS key ARNs name it).
    pub region: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot wait for signals: {0}")]
    Signal(std::io::Error),
}

/// What a running server tells its caller.
pub enum Event {
    /// Listening (with the port a `:0` address got).
    Listening { addr: SocketAddr, tls: bool },
    /// A shutdown signal came; requests in flight are finishing.
    Stopping { in_flight_grace: Duration },
    /// Requests in flight did not finish within the grace period.
    Abandoned,
}

/// Serves until SIGTERM or SIGINT, then lets the requests in flight finish (at most
/// [`SHUTDOWN_GRACE`]). A request cut off then leaves no partial object: the store
/// commits an object only once it is whole.
pub async fn serve(config: ServeConfig, mut on_event: impl FnMut(Event)) -> Result<(), ServeError> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.addr,
        source,
    })?;
    let endpoint = Endpoint::new(Arc::new(config.store), config.region.clone());
    let front = Arc::new(Front {
        service: {
            let mut builder = s3s::service::S3ServiceBuilder::new(endpoint.clone());
            builder.set_auth(config.credentials.into_auth());
            builder.set_route(s3::EncryptionRoute::new(endpoint));
            builder.build()
        },
        log: log::RequestLog::new(),
    });

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(ServeError::Signal)?;
    on_event(Event::Listening {
        addr,
        tls: tls.is_some(),
    });
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        };
        let _ = socket.set_nodelay(true);
        let connection = Connection {
            peer,
            tls: tls.is_some(),
        };
        let front = front.clone();
        let per_request =
            hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(connection);
                let front = front.clone();
                async move { front.answer(request, connection.peer).await }
            });
        match &tls {
            None => {
                let conn = http.serve_connection(TokioIo::new(socket), per_request);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
            Some(acceptor) => {
                // The handshake runs on the connection's own task; the connection joins
                // the graceful shutdown once it is established.
                let acceptor = acceptor.clone();
                let http = http.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match acceptor.accept(socket).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), per_request);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
        }
    }
    drop(listener);
    on_event(Event::Stopping {
        in_flight_grace: SHUTDOWN_GRACE,
    });
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => on_event(Event::Abandoned),
    }
    Ok(())
}

/// What every request goes through around s3s: S3's limits on presigned URLs, the body
/// against its declared SHA-256, and the request log.
struct Front {
    service: S3Service,
    log: log::RequestLog,
}

impl Front {
    async fn answer(
        &self,
        request: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<HttpResponse, HttpError> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let answer = self.call(request).await;
        self.log.answered(peer, &method, &path, &answer);
        answer
    }

    async fn call(&self, request: http::Request<Incoming>) -> Result<HttpResponse, HttpError> {
        if let Err(refused) = auth::check_presigned_url(request.uri().query(), SystemTime::now()) {
            return error_answer(refused);
        }
        let (request, payload) = payload::checked(request);
        let answer = self.log.quiet(self.service.call(request)).await;
        // s3s reads an XML body itself, and answers InternalError when it breaks off.
        let body_failed = answer
            .as_ref()
            .map_or(true, |r| r.status().is_server_error());
        if payload.mismatched() && body_failed {
            return error_answer(payload::mismatch());
        }
        answer
    }
}

fn error_answer(e: S3Error) -> Result<HttpResponse, HttpError> {
    e.to_http_response()
        .map_err(|e| HttpError::new(Box::new(e)))
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{}: no PEM certificate in it",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", key.display())))?;
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServeError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
