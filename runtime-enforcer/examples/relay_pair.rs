//! The two reference paths of `PERFORMANCE.md`, for `bench/agent` to
//! measure in the same run as the agents: a plain TCP relay pair and a
//! minimal rustls mTLS relay pair (one TLS connection per TCP connection,
//! no pooling, no policy, no HTTP/2).
//!
//! ```text
//! relay_pair tcp     LISTEN=UPSTREAM...          # either end of the TCP pair
//! relay_pair tls-out CA_DIR LISTEN=UPSTREAM...   # plain in, mTLS out
//! relay_pair tls-in  CA_DIR LISTEN=UPSTREAM...   # mTLS in, plain out
//! ```
//! Each `LISTEN=UPSTREAM` is a fixed route: a connection accepted on
//! `LISTEN` is relayed to `UPSTREAM`. The mTLS ends issue themselves a
//! workload certificate from the CA in `CA_DIR` (`ca.pem`, `ca-key.pem`,
//! as `ambit ca init` writes them) and verify each other's SPIFFE identity
//! as the agents do, with the same crypto provider (TLS 1.3, ECDSA P-256).
//! One thread each, as the agents run in `bench/agent`; bytes are copied
//! with tokio's `copy_bidirectional_with_sizes` (64 KiB each way).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ambit_runtime::identity::{
    Ca, SpiffeClientVerifier, SpiffeId, SpiffeServerVerifier, WorkloadCert, provider, read_bundle,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const BUFFER: usize = 64 * 1024;

enum End {
    Tcp,
    Out(TlsConnector),
    In(TlsAcceptor),
}

async fn relay<A, B>(mut a: A, mut b: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, BUFFER, BUFFER).await;
}

async fn dial(upstream: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(upstream).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn handle(end: Arc<End>, accepted: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    accepted.set_nodelay(true)?;
    match &*end {
        End::Tcp => relay(accepted, dial(upstream).await?).await,
        End::Out(connector) => {
            let name = ServerName::IpAddress(upstream.ip().into());
            let tls = connector.connect(name, dial(upstream).await?).await?;
            relay(accepted, tls).await
        }
        End::In(acceptor) => {
            let tls = acceptor.accept(accepted).await?;
            relay(tls, dial(upstream).await?).await
        }
    }
    Ok(())
}

/// Both ends' TLS settings: a certificate of `bench/relay-out` or
/// `bench/relay-in` from the CA, each end verifying the other.
fn tls(ca_dir: &Path, outbound: bool) -> Result<End, Box<dyn std::error::Error>> {
    let ca = Ca::load(&ca_dir.join("ca.pem"), &ca_dir.join("ca-key.pem"))?;
    let roots = read_bundle(&ca_dir.join("ca.pem"))?;
    let me = WorkloadCert::from_issued(&ca.issue(
        "bench",
        if outbound { "relay-out" } else { "relay-in" },
        1,
    )?)?;
    let peer = SpiffeId::new(&ca.trust_domain, "bench", "relay-in");
    if outbound {
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(roots, peer)))
            .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                me.key.clone(),
            )));
        Ok(End::Out(TlsConnector::from(Arc::new(config))))
    } else {
        let verifier = SpiffeClientVerifier::new(roots, &ca.trust_domain)?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                me.key.clone(),
            )));
        Ok(End::In(TlsAcceptor::from(Arc::new(config))))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (end, routes) = match args.first().map(String::as_str) {
        Some("tcp") => (End::Tcp, &args[1..]),
        Some(mode @ ("tls-out" | "tls-in")) if args.len() > 2 => {
            match tls(Path::new(&args[1]), mode == "tls-out") {
                Ok(end) => (end, &args[2..]),
                Err(e) => {
                    eprintln!("relay_pair: {e}");
                    std::process::exit(1);
                }
            }
        }
        _ => {
            eprintln!("usage: see the module documentation");
            std::process::exit(2);
        }
    };
    let end = Arc::new(end);
    let mut listeners = Vec::new();
    for route in routes {
        let parsed = route
            .split_once('=')
            .and_then(|(l, u)| Some((l.parse::<SocketAddr>().ok()?, u.parse().ok()?)));
        let Some((listen, upstream)) = parsed else {
            eprintln!("relay_pair: `{route}` is not LISTEN=UPSTREAM");
            std::process::exit(2);
        };
        let listener = TcpListener::bind(listen).await.unwrap_or_else(|e| {
            eprintln!("relay_pair: {listen}: {e}");
            std::process::exit(1);
        });
        let end = end.clone();
        listeners.push(tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(handle(end.clone(), s, upstream));
            }
        }));
    }
    for l in listeners {
        let _ = l.await;
    }
}
