//! Prometheus metrics of this process, and the endpoint that serves them
//! (`--metrics-addr`): what a fleet's dashboards and alerts read from every worker.
//!
//! One registry per process, as Prometheus clients keep it: the runner, the S3 target's
//! request layer and pacer, and `reseal serve` add to it where the events happen, without
//! handles passed through every constructor. Only counts and gauges: no label holds an
//! object key, a bucket or anything secret.

use std::net::SocketAddr;
use std::sync::LazyLock;

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    /// Tasks this process ran, by outcome (succeeded, failed, skipped).
    pub tasks: IntCounterVec,
    /// Bytes of the objects of those tasks.
    pub task_bytes: IntCounter,
    /// Requests to S3 by operation and HTTP status (`2xx` for success, `error` when no
    /// answer came).
    pub requests: IntCounterVec,
    /// Requests throttled or failed with a server error (each cuts concurrency).
    pub throttled: IntCounter,
    /// The concurrency the pacer allows now.
    pub concurrency: IntGauge,
    /// Tasks this process holds leases on (queued and in flight).
    pub leases: IntGauge,
    /// Tasks being worked on right now.
    pub in_flight: IntGauge,
    /// Requests `reseal serve` answered, by HTTP method and status.
    pub served: IntCounterVec,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("a valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("a valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    Metrics {
        tasks: counter_vec(
            &r,
            "reseal_tasks_total",
            "Tasks this process ran, by outcome.",
            &["outcome"],
        ),
        task_bytes: counter(
            &r,
            "reseal_task_bytes_total",
            "Bytes of the objects of the tasks this process ran.",
        ),
        requests: counter_vec(
            &r,
            "reseal_s3_requests_total",
            "Requests sent to S3, by operation and HTTP status (2xx: success; error: no answer).",
            &["operation", "status"],
        ),
        throttled: counter(
            &r,
            "reseal_s3_throttled_total",
            "Requests throttled or failed with a server error; each lowers concurrency.",
        ),
        concurrency: gauge(
            &r,
            "reseal_s3_concurrency",
            "Requests in flight the adaptive pacing allows now.",
        ),
        leases: gauge(
            &r,
            "reseal_leases_held",
            "Tasks this process holds leases on, queued or in flight.",
        ),
        in_flight: gauge(
            &r,
            "reseal_tasks_in_flight",
            "Tasks this process is working on right now.",
        ),
        served: counter_vec(
            &r,
            "reseal_serve_requests_total",
            "Requests reseal serve answered, by HTTP method and status.",
            &["method", "status"],
        ),
        registry: r,
    }
});

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The metrics in Prometheus's text exposition format (0.0.4).
pub fn render() -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .expect("metrics encode into memory");
    String::from_utf8(out).expect("the text format is UTF-8")
}

/// Serves `GET /metrics` on `addr` until the process ends; returns the address it listens
/// on (port 0 picks one).
pub async fn serve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let http = http.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: http::Request<_>| async move {
                    let response = if request.uri().path() == "/metrics" {
                        http::Response::builder()
                            .header("content-type", TextEncoder::new().format_type())
                            .body(http_body_util::Full::new(Bytes::from(render())))
                    } else {
                        http::Response::builder()
                            .status(http::StatusCode::NOT_FOUND)
                            .body(http_body_util::Full::new(Bytes::from_static(
                                b"metrics are at /metrics\n",
                            )))
                    };
                    Ok::<_, http::Error>(response.expect("a valid response"))
                });
                let _ = http.serve_connection(TokioIo::new(socket), service).await;
            });
        }
    });
    Ok(bound)
}
