//! `reseal serve`: the local store as an S3 endpoint, until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::args::StoreArgs;
use super::{CliError, CliResult};
use crate::serve::{Credentials, Event, ServeConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where to listen. Port 0 picks a free port; the address is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub addr: SocketAddr,
    /// A PEM certificate (chain) to serve HTTPS with; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Access keys in the AWS shared-credentials format (mode 0600); otherwise
    /// RESEAL_ACCESS_KEY and RESEAL_SECRET_KEY.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// The region clients sign for, and that KMS key ARNs name.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Serve Prometheus metrics at http://ADDR/metrics (requests by method and status).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

pub async fn run(args: ServeArgs) -> CliResult {
    let credentials = Credentials::load(args.credentials.as_deref()).map_err(CliError::input)?;
    if let Some(addr) = args.metrics_addr {
        super::run::serve_metrics(addr).await?;
    }
    let store = super::store::open(&args.store)?;
    let config = ServeConfig {
        store,
        addr: args.addr,
        tls: args.tls_cert.zip(args.tls_key),
        credentials,
        region: args.region,
    };
    let store_dir = args.store.dir()?.display().to_string();
    crate::serve::serve(config, |event| match event {
        Event::Listening { addr, tls } => {
            let scheme = if tls { "https" } else { "http" };
            // The endpoint alone on stdout, so that scripts (and tests) can read it.
            println!("{scheme}://{addr}");
            eprintln!("reseal serve: the store {store_dir} is at {scheme}://{addr}");
            if !tls && !addr.ip().is_loopback() {
                eprintln!(
                    "reseal serve: plain HTTP off loopback: SSE-C requests will be refused \
                     (give --tls-cert and --tls-key)"
                );
            }
        }
        Event::Stopping { in_flight_grace } => eprintln!(
            "reseal serve: stopping; requests in flight have {}s to finish",
            in_flight_grace.as_secs()
        ),
        Event::Abandoned => {
            eprintln!(
                "reseal serve: requests still in flight were cut off (no partial object is left)"
            )
        }
    })
    .await
    .map_err(|e| match e {
        crate::serve::ServeError::Tls(_) => CliError::input(e),
        other => CliError::failed(other),
    })
}
