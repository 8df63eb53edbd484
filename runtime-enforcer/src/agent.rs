//! The node agent: listeners, decisions, tunnels, reload, shutdown.
//!
//! # Paths
//!
//! **Outbound.** A local workload asks the outbound port for `CONNECT
//! IP:PORT` (or, in transparent mode, its redirected socket arrives with
//! its original destination). The agent identifies the source by its
//! address alone, decides the source's egress, and then:
//! - the destination is a workload behind an agent (this one or a peer):
//!   a stream is opened on the pooled HBONE connection for (source
//!   identity, destination node, destination identity): TLS 1.3, ALPN
//!   `h2`, the source workload's certificate, the destination's SPIFFE ID
//!   required of the server certificate, then HTTP/2 `CONNECT` with
//!   `:authority` = `IP:PORT` and `forwarded: for=SOURCE`;
//! - otherwise (outside the mesh) it connects directly.
//!
//! **Inbound.** The client chain is verified against the trust bundle and
//! must carry a SPIFFE ID in the trust domain. The source is the address
//! `forwarded: for=` names (else the connecting address); it is accepted
//! only if it is the connecting address or a workload address behind the
//! connecting node, and only if the workload the tables have there has the
//! certificate's identity. Then the whole decision (source egress,
//! destination ingress, L4 authorization) is taken; a refusal answers 403
//! (NetworkPolicy) or 401 (authorization, identity) with the reason in the
//! `ambit-reason` header, and an allowed stream is spliced to the
//! workload.
//!
//! Every open connection is registered with what decided it; after a
//! reload each is decided again and those the new table denies are closed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ambit_compiler::authz::{ExtAuthz, View};
use ambit_compiler::model::Protocol;
use ambit_compiler::probe::{self, DecidedBy, Probe};
use ambit_compiler::table::Endpoint;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, LocalWorkload};
use crate::identity::{self, SpiffeClientVerifier, SpiffeId, SpiffeServerVerifier};
use crate::io::{BoxStream, Ended, Tunnel, splice};
use crate::tables::{self, Loaded, TableStore};
use crate::telemetry::{
    AccessLogger, BytesLabels, DeniedLabels, DirectionLabels, End, Metrics, ReasonLabels, Record,
    TableLabels,
};

/// The response header that carries why a CONNECT was refused.
pub const REASON_HEADER: &str = "ambit-reason";

const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
const MAX_FRAME: u32 = 1024 * 1024;
const MAX_STREAMS: u32 = 10_000;
/// The largest header block a tunnel's peer may send (hyper's default).
const MAX_HEADERS: u32 = 16 * 1024;

type Body = Full<Bytes>;
type Sender = h2::client::SendRequest<Bytes>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone)]
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    /// Policy refused it (`deny`), rather than the connection failing
    /// (`error`: an unreachable workload or peer, a failed handshake).
    policy: bool,
    /// Details for the log (the destination's reason, an error).
    detail: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str) -> Self {
        Refusal {
            status,
            reason,
            policy: status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED,
            detail: None,
        }
    }

    fn with_detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

/// What re-deciding an open connection needs.
#[derive(Debug, Clone)]
enum Check {
    Outbound {
        local: usize,
        dst: SocketAddr,
    },
    Inbound {
        src: IpAddr,
        peer: SpiffeId,
        peer_addr: IpAddr,
        dst: SocketAddr,
    },
}

#[derive(Debug)]
struct Conn {
    check: Check,
    direction: Direction,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<&'static str>>>,
}

/// The open connections.
#[derive(Debug, Default)]
struct Conns {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Conn>>,
}

impl Conns {
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The addresses the agent listens on (ports resolved).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub inbound: SocketAddr,
    pub outbound: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub transparent: Option<SocketAddr>,
}

/// Outcome of a reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The file did not change.
    Unchanged,
    /// A new table was swapped in: its generation, and the open
    /// connections it revoked.
    Loaded { generation: u64, revoked: usize },
    /// The file was refused; the previous table stays.
    Refused(String),
}

#[derive(Debug)]
struct Shared {
    config: AgentConfig,
    tables: TableStore,
    metrics: Metrics,
    log: AccessLogger,
    conns: Conns,
    pool: Mutex<HashMap<PoolKey, Arc<tokio::sync::Mutex<Option<Sender>>>>>,
    local_by_ip: HashMap<IpAddr, usize>,
    server_tls: Arc<ServerConfig>,
    /// Stop accepting.
    stop: CancellationToken,
    /// Close everything.
    kill: CancellationToken,
    pending: Arc<Semaphore>,
    last_seen: tokio::sync::Mutex<Option<tables::FileSignature>>,
    generation: AtomicU64,
    /// This node's inbound address as peers see it.
    self_inbound: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    src: SpiffeId,
    node: SocketAddr,
    dst: SpiffeId,
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    shared: Arc<Shared>,
    bound: Bound,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct ServerCerts {
    by_ip: HashMap<IpAddr, Arc<CertifiedKey>>,
    /// The certificate to present without SNI: only when every local
    /// workload has the same identity.
    only: Option<Arc<CertifiedKey>>,
}

/// The SNI a client sends so that the destination node presents the
/// destination workload's certificate: `w-<address>.hbone.ambit`.
pub fn sni_for(ip: IpAddr) -> String {
    let s = ip.to_string().replace(['.', ':'], "-");
    format!("w-{s}.hbone.ambit")
}

fn ip_from_sni(sni: &str) -> Option<IpAddr> {
    let s = sni.strip_prefix("w-")?.strip_suffix(".hbone.ambit")?;
    s.replace('-', ".")
        .parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .ok()
        .or_else(|| s.replace('-', ":").parse().ok())
}

impl ResolvesServerCert for ServerCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            Some(sni) => ip_from_sni(sni).and_then(|ip| self.by_ip.get(&ip).cloned()),
            None => self.only.clone(),
        }
    }
}

#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn unspecified_to_loopback(a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        let ip = match a {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(ip, a.port())
    } else {
        a
    }
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

impl Agent {
    /// Bind the listeners, load the table if it is there, and start.
    pub async fn start(config: AgentConfig) -> std::io::Result<Agent> {
        let provider = identity::provider();
        let verifier = SpiffeClientVerifier::new(config.bundle.clone(), &config.trust_domain)
            .map_err(std::io::Error::other)?;
        let mut ids: Vec<&SpiffeId> = config.workloads.iter().map(|w| &w.cert.id).collect();
        ids.dedup();
        let certs = ServerCerts {
            by_ip: config
                .workloads
                .iter()
                .map(|w| (w.address, w.cert.key.clone()))
                .collect(),
            only: (ids.len() == 1).then(|| config.workloads[0].cert.key.clone()),
        };
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(std::io::Error::other)?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(certs));
        server.alpn_protocols = vec![b"h2".to_vec()];

        let inbound = bind(config.listen.inbound).await?;
        let outbound = match config.listen.outbound {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let admin = match config.listen.admin {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let transparent = match config.listen.transparent {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let bound = Bound {
            inbound: inbound.local_addr()?,
            outbound: outbound.as_ref().map(|l| l.local_addr()).transpose()?,
            admin: admin.as_ref().map(|l| l.local_addr()).transpose()?,
            transparent: transparent.as_ref().map(|l| l.local_addr()).transpose()?,
        };
        let log = AccessLogger::open(&config.access_log)?;
        let shared = Arc::new(Shared {
            local_by_ip: config
                .workloads
                .iter()
                .enumerate()
                .map(|(i, w)| (w.address, i))
                .collect(),
            self_inbound: unspecified_to_loopback(bound.inbound),
            pending: Arc::new(Semaphore::new(config.limits.max_pending)),
            config,
            tables: TableStore::default(),
            metrics: Metrics::new(),
            log,
            conns: Conns::default(),
            pool: Mutex::new(HashMap::new()),
            server_tls: Arc::new(server),
            stop: CancellationToken::new(),
            kill: CancellationToken::new(),
            last_seen: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
        });
        match shared.reload(true).await {
            Reload::Refused(why) => tracing::warn!(%why, "no table loaded: denying everything"),
            r => tracing::info!(?r, "started"),
        }
        let mut tasks = vec![tokio::spawn(inbound_loop(shared.clone(), inbound))];
        if let Some(l) = outbound {
            tasks.push(tokio::spawn(outbound_loop(shared.clone(), l)));
        }
        if let Some(l) = transparent {
            tasks.push(tokio::spawn(transparent_loop(shared.clone(), l)));
        }
        if let Some(l) = admin {
            tasks.push(tokio::spawn(admin_loop(shared.clone(), l)));
        }
        tasks.push(tokio::spawn(watch(shared.clone())));
        Ok(Agent {
            shared,
            bound,
            tasks,
        })
    }

    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// Check the tables file now (as on SIGHUP).
    pub async fn reload(&self) -> Reload {
        self.shared.reload(true).await
    }

    /// The generation of the loaded table (0: none).
    pub fn generation(&self) -> u64 {
        self.shared.tables.generation()
    }

    /// The Prometheus text exposition.
    pub fn metrics(&self) -> String {
        self.shared.metrics.encode()
    }

    /// Serve one inbound tunnel past its TLS handshake: `io` carries what
    /// the peer `id` sends once TLS is done (HTTP/2 with HBONE CONNECT
    /// requests), exactly as the inbound listener serves it. For the fuzz
    /// target that feeds arbitrary bytes there.
    #[doc(hidden)]
    pub async fn serve_tunnel(
        &self,
        io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        id: SpiffeId,
        peer: SocketAddr,
    ) {
        serve_tunnel(self.shared.clone(), io, id, peer).await;
    }

    /// Open connections.
    pub fn open_connections(&self) -> usize {
        self.shared.conns.len()
    }

    /// Stop accepting, let open connections finish for the configured drain
    /// time, then close the rest.
    pub async fn shutdown(self) {
        let drain = self.shared.config.limits.drain;
        self.shared.stop.cancel();
        let deadline = Instant::now() + drain;
        while self.shared.conns.len() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.kill.cancel();
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.shared.conns.len() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Accept with a bounded number of connections in their handshake; the
/// permit is released by the handler once the connection is past it.
async fn accept(
    shared: &Shared,
    listener: &TcpListener,
    direction: Direction,
) -> Option<(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(%e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shared.stop.cancelled() => return None,
        };
        match shared.pending.clone().try_acquire_owned() {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                return Some((stream, peer, permit));
            }
            Err(_) => {
                shared
                    .metrics
                    .denied
                    .get_or_create(&DeniedLabels {
                        direction: direction.as_str(),
                        reason: "overload",
                    })
                    .inc();
                drop(stream);
            }
        }
    }
}

fn respond(status: StatusCode, reason: Option<&str>) -> Response<Body> {
    let mut r = Response::builder().status(status);
    if let Some(reason) = reason {
        r = r.header(REASON_HEADER, reason);
    }
    let body = match reason {
        Some(why) => Full::new(Bytes::from(format!("{status}: {why}\n"))),
        None => Full::new(Bytes::new()),
    };
    r.body(body).expect("a valid response")
}

/// Context of one connection decision, for its log line.
#[derive(Debug)]
struct Ctx {
    direction: Direction,
    source: End,
    destination: End,
    /// What decided, for `decided_by`: computed only when a log line is
    /// written (the explanation allocates; the decision does not).
    decided: Option<(Arc<Loaded>, Endpoint, Endpoint, u16)>,
    generation: u64,
    started: Instant,
}

impl Shared {
    fn record(
        &self,
        ctx: &Ctx,
        decision: &'static str,
        status: StatusCode,
        reason: Option<String>,
        bytes: crate::io::Carried,
    ) {
        if !self.log.enabled() {
            return;
        }
        self.log.write(&Record {
            time: crate::telemetry::now_rfc3339(),
            node: self.config.node.clone(),
            direction: ctx.direction.as_str(),
            source: ctx.source.clone(),
            destination: ctx.destination.clone(),
            decision,
            reason,
            status: status.as_u16(),
            decided_by: ctx
                .decided
                .as_ref()
                .map(|(l, from, to, port)| Self::decided_by(l, *from, *to, *port))
                .unwrap_or_default(),
            table: ctx.generation,
            bytes_sent: bytes.sent,
            bytes_received: bytes.received,
            duration_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
        });
    }

    fn deny(&self, ctx: &Ctx, refusal: &Refusal) {
        let family = if refusal.policy {
            &self.metrics.denied
        } else {
            &self.metrics.failed
        };
        family
            .get_or_create(&DeniedLabels {
                direction: ctx.direction.as_str(),
                reason: refusal.reason,
            })
            .inc();
        let reason = match &refusal.detail {
            Some(d) => format!("{}: {d}", refusal.reason),
            None => refusal.reason.to_owned(),
        };
        self.record(
            ctx,
            if refusal.policy { "deny" } else { "error" },
            refusal.status,
            Some(reason),
            crate::io::Carried::default(),
        );
    }

    fn end(&self, loaded: Option<&Loaded>, ip: IpAddr, port: Option<u16>) -> End {
        End {
            workload: loaded
                .and_then(|l| l.workload_at(ip))
                .map(|w| loaded.expect("a workload was found in the table").name(w)),
            identity: None,
            address: ip.to_string(),
            port,
        }
    }

    fn decided_by(loaded: &Loaded, from: Endpoint, to: Endpoint, port: u16) -> Vec<DecidedBy> {
        let name = |e: Endpoint| match e {
            Endpoint::Workload(w) => loaded.name(w),
            Endpoint::Ip(ip) => format!("ip:{ip}"),
        };
        probe::answer(
            &loaded.tables,
            &Probe {
                from_name: name(from),
                to_name: name(to),
                from,
                to,
                port,
                protocol: Protocol::Tcp,
                request: None,
                ext_authz: ExtAuthz::Unknown,
            },
        )
        .decided_by
    }

    /// The table's endpoint for a local workload: by name, else address.
    fn local_endpoint(loaded: &Loaded, w: &LocalWorkload) -> Endpoint {
        loaded
            .tables
            .workload_index(&w.namespace, &w.name)
            .map_or_else(|| loaded.endpoint(w.address), Endpoint::Workload)
    }

    /// The source's egress, as the source's agent enforces it.
    fn decide_outbound(
        &self,
        loaded: Option<&Loaded>,
        local: usize,
        dst: SocketAddr,
    ) -> Result<(), Refusal> {
        let Some(loaded) = loaded else {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "no-table"));
        };
        let w = &self.config.workloads[local];
        let from = Self::local_endpoint(loaded, w);
        let to = loaded.endpoint(dst.ip());
        if loaded
            .tables
            .decide_egress(from, to, Protocol::Tcp, dst.port())
        {
            Ok(())
        } else {
            Err(Refusal::new(StatusCode::FORBIDDEN, "egress-denied"))
        }
    }

    /// Who the source of an inbound stream is: see the module docs.
    fn inbound_source(
        &self,
        loaded: &Loaded,
        peer: &SpiffeId,
        peer_addr: IpAddr,
        src: IpAddr,
    ) -> Result<Endpoint, Refusal> {
        if src != peer_addr {
            let behind_peer = self.config.peers.iter().any(|p| {
                p.address.ip() == peer_addr && p.workloads.iter().any(|n| n.contains(&src))
            });
            let behind_self =
                peer_addr == self.self_inbound.ip() && self.local_by_ip.contains_key(&src);
            if !behind_peer && !behind_self {
                return Err(
                    Refusal::new(StatusCode::UNAUTHORIZED, "source-not-behind-peer").with_detail(
                        format!("{src} is not a workload address behind {peer_addr}"),
                    ),
                );
            }
        }
        let Some(w) = loaded.workload_at(src) else {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "unknown-source")
                .with_detail(format!("no workload has address {src}")));
        };
        let expected = loaded.identity(w, &self.config.trust_domain);
        if expected != *peer {
            return Err(
                Refusal::new(StatusCode::UNAUTHORIZED, "identity-mismatch").with_detail(format!(
                    "{} is {expected}, the certificate is {peer}",
                    loaded.name(w)
                )),
            );
        }
        Ok(Endpoint::Workload(w))
    }

    /// The whole decision at the destination.
    fn decide_inbound(
        &self,
        loaded: Option<&Loaded>,
        peer: &SpiffeId,
        peer_addr: IpAddr,
        src: IpAddr,
        dst: SocketAddr,
    ) -> Result<(Endpoint, Endpoint), Refusal> {
        let Some(loaded) = loaded else {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "no-table"));
        };
        let from = self.inbound_source(loaded, peer, peer_addr, src)?;
        let to = loaded.endpoint(dst.ip());
        if matches!(to, Endpoint::Ip(_)) {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "unknown-destination")
                .with_detail(format!("no workload has address {}", dst.ip())));
        }
        let (t, port) = (&loaded.tables, dst.port());
        if !t.decide_egress(from, to, Protocol::Tcp, port) {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "egress-denied"));
        }
        if !t.decide_ingress(from, to, Protocol::Tcp, port) {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "ingress-denied"));
        }
        // Egress and ingress allow it: what remains of `Tables::decide` is
        // the L4 view of authorization.
        let authorized = t.is_self(from, to)
            || t.authorize(
                from,
                to,
                Protocol::Tcp,
                port,
                None,
                ExtAuthz::Unknown,
                View::L4,
                None,
            );
        if !authorized {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "authorization-denied",
            ));
        }
        Ok((from, to))
    }

    fn still_allowed(&self, loaded: &Loaded, check: &Check) -> bool {
        match check {
            Check::Outbound { local, dst } => {
                self.decide_outbound(Some(loaded), *local, *dst).is_ok()
            }
            Check::Inbound {
                src,
                peer,
                peer_addr,
                dst,
            } => self
                .decide_inbound(Some(loaded), peer, *peer_addr, *src, *dst)
                .is_ok(),
        }
    }

    fn register(
        &self,
        direction: Direction,
        check: Check,
    ) -> (u64, CancellationToken, Arc<Mutex<Option<&'static str>>>) {
        let id = self.conns.next.fetch_add(1, Ordering::Relaxed);
        let cancel = self.kill.child_token();
        let reason = Arc::new(Mutex::new(None));
        self.conns
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id,
                Conn {
                    check,
                    direction,
                    cancel: cancel.clone(),
                    reason: reason.clone(),
                },
            );
        let d = DirectionLabels {
            direction: direction.as_str(),
        };
        self.metrics.opened.get_or_create(&d).inc();
        self.metrics.active.get_or_create(&d).inc();
        (id, cancel, reason)
    }

    fn unregister(&self, id: u64, direction: Direction, carried: crate::io::Carried) {
        self.conns
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let d = DirectionLabels {
            direction: direction.as_str(),
        };
        self.metrics.closed.get_or_create(&d).inc();
        self.metrics.active.get_or_create(&d).dec();
        for (flow, n) in [("sent", carried.sent), ("received", carried.received)] {
            self.metrics
                .bytes
                .get_or_create(&BytesLabels {
                    direction: direction.as_str(),
                    flow,
                })
                .inc_by(n);
        }
    }

    /// Splice an allowed connection, registered for revocation, and log
    /// it when it ends.
    async fn carry(&self, ctx: Ctx, check: Check, source: BoxStream, destination: BoxStream) {
        let (id, cancel, reason) = self.register(ctx.direction, check);
        let (carried, ended) = splice(
            source,
            destination,
            self.config.limits.idle_timeout,
            &cancel,
        )
        .await;
        self.unregister(id, ctx.direction, carried);
        let why = match ended {
            Ended::Completed => None,
            Ended::Error => Some("closed: connection error".to_owned()),
            Ended::Idle => Some("closed: idle timeout".to_owned()),
            Ended::Cancelled => Some(format!(
                "closed: {}",
                reason
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or("shutdown")
            )),
        };
        self.record(&ctx, "allow", StatusCode::OK, why, carried);
    }

    /// Check the tables file; swap in a new valid table and revoke what it
    /// denies. `force` reads the file even if its signature is unchanged.
    async fn reload(&self, force: bool) -> Reload {
        let mut last = self.last_seen.lock().await;
        let path = &self.config.tables;
        let sig = match tables::signature(path) {
            Ok(s) => s,
            Err(e) => {
                if force || last.is_some() {
                    *last = None;
                    self.metrics.reload_failures.inc();
                    tracing::warn!(path = %path.display(), %e, "tables file unreadable; the loaded table stays");
                }
                return Reload::Refused(format!("cannot read {}: {e}", path.display()));
            }
        };
        if !force && *last == Some(sig) {
            return Reload::Unchanged;
        }
        *last = Some(sig);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                self.metrics.reload_failures.inc();
                return Reload::Refused(format!("cannot read {}: {e}", path.display()));
            }
        };
        let current = self.tables.get();
        if current
            .as_ref()
            .is_some_and(|c| c.sha256 == tables::sha256(&bytes))
        {
            return Reload::Unchanged;
        }
        let parsed = match tables::validate(&bytes, &self.config.trust_domain) {
            Ok(t) => t,
            Err(e) => {
                self.metrics.reload_failures.inc();
                tracing::error!(path = %path.display(), error = %e, "table refused; the loaded table stays");
                return Reload::Refused(e.to_string());
            }
        };
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let loaded = self.tables.store(Loaded::new(parsed, &bytes, generation));
        self.metrics.reloads.inc();
        self.metrics.table_generation.set(generation as i64);
        self.metrics.table_info.clear();
        self.metrics
            .table_info
            .get_or_create(&TableLabels {
                sha256: loaded.sha256.clone(),
                input_hash: loaded.tables.input_hash.clone(),
            })
            .set(1);
        self.metrics.ready.set(1);
        let mut revoked = 0;
        {
            let conns = self.conns.map.lock().unwrap_or_else(|p| p.into_inner());
            for c in conns.values() {
                if !self.still_allowed(&loaded, &c.check) {
                    *c.reason.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some("revoked by a new table");
                    c.cancel.cancel();
                    revoked += 1;
                    self.metrics
                        .revoked
                        .get_or_create(&DirectionLabels {
                            direction: c.direction.as_str(),
                        })
                        .inc();
                }
            }
        }
        tracing::info!(generation, sha256 = %loaded.sha256, revoked, "table loaded");
        Reload::Loaded {
            generation,
            revoked,
        }
    }

    /// A stream to `dst` for a local workload: a tunnel through the agent
    /// that owns the destination, or a direct connection outside the mesh.
    async fn open_upstream(
        &self,
        loaded: &Loaded,
        local: usize,
        dst: SocketAddr,
    ) -> Result<BoxStream, Refusal> {
        let node = if self.local_by_ip.contains_key(&dst.ip()) {
            Some(self.self_inbound)
        } else {
            self.config
                .peers
                .iter()
                .find(|p| p.workloads.iter().any(|n| n.contains(&dst.ip())))
                .map(|p| p.address)
        };
        let Some(node) = node else {
            let tcp =
                tokio::time::timeout(self.config.limits.connect_timeout, TcpStream::connect(dst))
                    .await
                    .map_err(|_| Refusal::new(StatusCode::GATEWAY_TIMEOUT, "connect-timeout"))?
                    .map_err(|e| {
                        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "upstream-unreachable")
                            .with_detail(e.to_string())
                    })?;
            let _ = tcp.set_nodelay(true);
            return Ok(Box::new(tcp));
        };
        let Some(w) = loaded.workload_at(dst.ip()) else {
            return Err(
                Refusal::new(StatusCode::FORBIDDEN, "unknown-destination").with_detail(format!(
                    "no workload of the tables has address {}",
                    dst.ip()
                )),
            );
        };
        let dst_id = loaded.identity(w, &self.config.trust_domain);
        let me = &self.config.workloads[local];
        let key = PoolKey {
            src: me.cert.id.clone(),
            node,
            dst: dst_id,
        };
        let mut last_error = None;
        for _ in 0..2 {
            let mut sender = self.sender(&key, me, dst.ip()).await?;
            let req = Request::builder()
                .method(Method::CONNECT)
                .uri(dst.to_string())
                .header("forwarded", forwarded_for(me.address))
                .body(())
                .expect("a valid request");
            let sent = match sender.send_request(req, false) {
                Ok((resp, send)) => resp.await.map(|r| (r, send)),
                Err(e) => Err(e),
            };
            let (resp, send) = match sent {
                Ok(r) => r,
                Err(e) => {
                    // A pooled connection the peer closed: drop it, retry once.
                    self.forget(&key);
                    last_error = Some(e.to_string());
                    continue;
                }
            };
            if resp.status() != StatusCode::OK {
                let why = resp
                    .headers()
                    .get(REASON_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("refused")
                    .to_owned();
                return Err(Refusal::new(resp.status(), "refused-by-destination").with_detail(why));
            }
            return Ok(Box::new(Tunnel::new(send, resp.into_body())));
        }
        Err(Refusal::new(StatusCode::BAD_GATEWAY, "tunnel-failed")
            .with_detail(last_error.unwrap_or_default()))
    }

    fn forget(&self, key: &PoolKey) {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// The pooled HTTP/2 connection for a key, connected if needed.
    async fn sender(
        &self,
        key: &PoolKey,
        me: &LocalWorkload,
        dst_ip: IpAddr,
    ) -> Result<Sender, Refusal> {
        let slot = self
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        // Ready: the connection is up and may open one more stream.
        if let Some(s) = slot.as_ref()
            && let Ok(ready) = s.clone().ready().await
        {
            return Ok(ready);
        }
        let sender = self.connect_peer(key, me, dst_ip).await?;
        *slot = Some(sender.clone());
        sender.ready().await.map_err(|e| {
            Refusal::new(StatusCode::BAD_GATEWAY, "tunnel-failed").with_detail(e.to_string())
        })
    }

    async fn connect_peer(
        &self,
        key: &PoolKey,
        me: &LocalWorkload,
        dst_ip: IpAddr,
    ) -> Result<Sender, Refusal> {
        let limits = &self.config.limits;
        let socket = if key.node.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| {
            Refusal::new(StatusCode::BAD_GATEWAY, "tunnel-failed").with_detail(e.to_string())
        })?;
        // Connect from the node's own address, so that the peer can tell
        // which node the tunnel comes from.
        if !self.config.listen.inbound.ip().is_unspecified()
            && self.config.listen.inbound.is_ipv4() == key.node.is_ipv4()
        {
            let _ = socket.bind(SocketAddr::new(self.config.listen.inbound.ip(), 0));
        }
        let tcp = tokio::time::timeout(limits.connect_timeout, socket.connect(key.node))
            .await
            .map_err(|_| Refusal::new(StatusCode::GATEWAY_TIMEOUT, "connect-timeout"))?
            .map_err(|e| {
                Refusal::new(StatusCode::BAD_GATEWAY, "peer-unreachable")
                    .with_detail(format!("{}: {e}", key.node))
            })?;
        let _ = tcp.set_nodelay(true);
        let mut tls = ClientConfig::builder_with_provider(identity::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| {
                Refusal::new(StatusCode::BAD_GATEWAY, "tls-error").with_detail(e.to_string())
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(
                self.config.bundle.clone(),
                key.dst.clone(),
            )))
            .with_client_cert_resolver(Arc::new(ClientCert(me.cert.key.clone())));
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let name = ServerName::try_from(sni_for(dst_ip)).expect("a valid DNS name");
        let tls = tokio::time::timeout(
            limits.handshake_timeout,
            TlsConnector::from(Arc::new(tls)).connect(name, tcp),
        )
        .await
        .map_err(|_| Refusal::new(StatusCode::GATEWAY_TIMEOUT, "handshake-timeout"))?
        .map_err(|e| {
            let reason = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .map_or("tls-error", identity::refusal_reason);
            self.metrics
                .handshake_failures
                .get_or_create(&ReasonLabels { reason })
                .inc();
            Refusal::new(StatusCode::BAD_GATEWAY, "peer-handshake-failed")
                .with_detail(format!("{}: {e}", key.node))
        })?;
        let (sender, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .max_header_list_size(MAX_HEADERS)
            .handshake::<_, Bytes>(tls)
            .await
            .map_err(|e| {
                Refusal::new(StatusCode::BAD_GATEWAY, "tunnel-failed").with_detail(e.to_string())
            })?;
        let kill = self.kill.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = kill.cancelled() => {}
            }
        });
        Ok(sender)
    }

    /// Refuse (and log) a connection to the outbound side from an address
    /// that is no workload of this node.
    fn refuse_unknown_source(&self, src: IpAddr, dst: SocketAddr) -> Refusal {
        let loaded = self.tables.get();
        let ctx = Ctx {
            direction: Direction::Outbound,
            source: self.end(loaded.as_deref(), src, None),
            destination: self.end(loaded.as_deref(), dst.ip(), Some(dst.port())),
            decided: None,
            generation: loaded.as_ref().map_or(0, |l| l.generation),
            started: Instant::now(),
        };
        let r = Refusal::new(StatusCode::FORBIDDEN, "unknown-source")
            .with_detail(format!("{src} is not a workload of this node"));
        self.deny(&ctx, &r);
        r
    }

    /// Decide and open an outbound connection for local workload `local`.
    async fn outbound(&self, local: usize, dst: SocketAddr) -> (Ctx, Result<BoxStream, Refusal>) {
        let loaded = self.tables.get();
        let w = &self.config.workloads[local];
        let mut ctx = Ctx {
            direction: Direction::Outbound,
            source: End {
                workload: Some(format!("{}/{}", w.namespace, w.name)),
                identity: Some(w.cert.id.to_string()),
                address: w.address.to_string(),
                port: None,
            },
            destination: self.end(loaded.as_deref(), dst.ip(), Some(dst.port())),
            decided: None,
            generation: loaded.as_ref().map_or(0, |l| l.generation),
            started: Instant::now(),
        };
        if let Some(l) = &loaded {
            ctx.decided = Some((
                l.clone(),
                Self::local_endpoint(l, w),
                l.endpoint(dst.ip()),
                dst.port(),
            ));
        }
        if let Err(r) = self.decide_outbound(loaded.as_deref(), local, dst) {
            return (ctx, Err(r));
        }
        let loaded = loaded.expect("an allowed decision had a table");
        let r = self.open_upstream(&loaded, local, dst).await;
        (ctx, r)
    }
}

fn forwarded_for(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("for={v4}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    }
}

/// The address of `for=` in a `forwarded` header (RFC 7239).
fn parse_forwarded(value: &str) -> Option<IpAddr> {
    for element in value.split(',') {
        for pair in element.split(';') {
            let (k, v) = pair.trim().split_once('=')?;
            if k.trim().eq_ignore_ascii_case("for") {
                let v = v.trim().trim_matches('"');
                let v = v
                    .strip_prefix('[')
                    .map_or(v, |s| s.split(']').next().unwrap_or(s));
                return v
                    .parse()
                    .ok()
                    .or_else(|| v.parse::<SocketAddr>().ok().map(|a| a.ip()));
            }
        }
    }
    None
}

/// The local workload a connection comes from, by its address alone.
fn local_source(shared: &Shared, peer: SocketAddr) -> Option<usize> {
    shared.local_by_ip.get(&peer.ip()).copied()
}

async fn outbound_loop(shared: Arc<Shared>, listener: TcpListener) {
    while let Some((stream, peer, permit)) = accept(&shared, &listener, Direction::Outbound).await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let permit = Arc::new(Mutex::new(Some(permit)));
            let svc_shared = shared.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let shared = svc_shared.clone();
                let permit = permit.clone();
                async move {
                    permit.lock().unwrap_or_else(|p| p.into_inner()).take();
                    Ok::<_, std::convert::Infallible>(proxy_connect(shared, peer, req).await)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(shared.config.limits.handshake_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shared.kill.cancelled() => {}
            }
        });
    }
}

/// One HTTP CONNECT from a local workload.
async fn proxy_connect(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.method() != Method::CONNECT {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            Some("only CONNECT is proxied"),
        );
    }
    let Some(dst) = req
        .uri()
        .authority()
        .and_then(|a| a.as_str().parse::<SocketAddr>().ok())
    else {
        return respond(StatusCode::BAD_REQUEST, Some("malformed-target"));
    };
    let Some(local) = local_source(&shared, peer) else {
        let r = shared.refuse_unknown_source(peer.ip(), dst);
        return respond(r.status, Some(r.reason));
    };
    let (ctx, upstream) = shared.outbound(local, dst).await;
    match upstream {
        Err(r) => {
            shared.deny(&ctx, &r);
            let why = match &r.detail {
                Some(d) if r.reason == "refused-by-destination" => d.clone(),
                _ => r.reason.to_owned(),
            };
            respond(r.status, Some(&why))
        }
        Ok(upstream) => {
            tokio::spawn(async move {
                match hyper::upgrade::on(req).await {
                    Ok(client) => {
                        shared
                            .carry(
                                ctx,
                                Check::Outbound { local, dst },
                                Box::new(TokioIo::new(client)),
                                upstream,
                            )
                            .await
                    }
                    Err(e) => tracing::debug!(%e, "client went away before the tunnel opened"),
                }
            });
            respond(StatusCode::OK, None)
        }
    }
}

async fn transparent_loop(shared: Arc<Shared>, listener: TcpListener) {
    let own = listener.local_addr().ok();
    while let Some((stream, peer, permit)) = accept(&shared, &listener, Direction::Outbound).await {
        let shared = shared.clone();
        tokio::spawn(async move {
            drop(permit);
            let sock = socket2::SockRef::from(&stream);
            let dst = if peer.is_ipv4() {
                sock.original_dst_v4()
            } else {
                sock.original_dst_v6()
            }
            .ok()
            .and_then(|a| a.as_socket());
            // A connection made to the port itself, not redirected to it.
            let Some(dst) = dst.filter(|d| Some(*d) != own) else {
                return;
            };
            let Some(local) = local_source(&shared, peer) else {
                shared.refuse_unknown_source(peer.ip(), dst);
                return;
            };
            let (ctx, upstream) = shared.outbound(local, dst).await;
            match upstream {
                Err(r) => shared.deny(&ctx, &r),
                Ok(up) => {
                    shared
                        .carry(ctx, Check::Outbound { local, dst }, Box::new(stream), up)
                        .await
                }
            }
        });
    }
}

async fn inbound_loop(shared: Arc<Shared>, listener: TcpListener) {
    while let Some((stream, peer, permit)) = accept(&shared, &listener, Direction::Inbound).await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(
                shared.config.limits.handshake_timeout,
                TlsAcceptor::from(shared.server_tls.clone()).accept(stream),
            )
            .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    let reason = e
                        .get_ref()
                        .and_then(|i| i.downcast_ref::<rustls::Error>())
                        .map_or("tls-error", identity::refusal_reason);
                    shared
                        .metrics
                        .handshake_failures
                        .get_or_create(&ReasonLabels { reason })
                        .inc();
                    tracing::info!(%peer, %e, reason, "inbound handshake refused");
                    return;
                }
                Err(_) => {
                    shared
                        .metrics
                        .handshake_failures
                        .get_or_create(&ReasonLabels { reason: "timeout" })
                        .inc();
                    return;
                }
            };
            drop(permit);
            // The verifier accepted the chain and its SPIFFE ID: the
            // identity comes from the certificate alone.
            let Some(id) = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| identity::spiffe_of(c).ok())
            else {
                return;
            };
            serve_tunnel(shared, tls, id, peer).await;
        });
    }
}

/// Serve the HTTP/2 of one inbound tunnel whose TLS handshake is done, from
/// the peer `id`, until it ends or the agent stops: each stream is one
/// HBONE CONNECT, served on a task of its own while this one drives the
/// connection. On stop, GOAWAY: streams open go on until they end or the
/// agent kills them.
async fn serve_tunnel(
    shared: Arc<Shared>,
    io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    id: SpiffeId,
    peer: SocketAddr,
) {
    let handshake = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADERS)
        .handshake::<_, Bytes>(io);
    let mut conn = tokio::select! {
        r = handshake => match r {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(%peer, %e, "inbound tunnel failed before its first stream");
                return;
            }
        },
        _ = shared.stop.cancelled() => return,
    };
    let mut stopping = false;
    loop {
        let next = tokio::select! {
            r = conn.accept() => r,
            _ = shared.stop.cancelled(), if !stopping => {
                stopping = true;
                conn.graceful_shutdown();
                continue;
            }
            _ = shared.kill.cancelled() => return,
        };
        match next {
            Some(Ok((req, respond))) => {
                tokio::spawn(hbone_connect(
                    shared.clone(),
                    id.clone(),
                    peer,
                    req,
                    respond,
                ));
            }
            Some(Err(e)) => {
                tracing::debug!(%peer, %e, "inbound tunnel ended");
                return;
            }
            None => return,
        }
    }
}

/// Answer a CONNECT stream: `status`, and for a refusal the reason (in
/// [`REASON_HEADER`] and the body, which ends the stream). The stream to
/// carry bytes on when it is accepted.
fn answer(
    respond: &mut h2::server::SendResponse<Bytes>,
    status: StatusCode,
    reason: Option<&str>,
) -> Option<h2::SendStream<Bytes>> {
    let mut r = Response::builder().status(status);
    if let Some(reason) = reason {
        r = r.header(REASON_HEADER, reason);
    }
    let response = r.body(()).expect("a valid response");
    let mut send = respond.send_response(response, false).ok()?;
    match reason {
        None => Some(send),
        Some(why) => {
            let _ = send.send_data(Bytes::from(format!("{status}: {why}\n")), true);
            None
        }
    }
}

/// One HBONE CONNECT stream from a peer agent: decided, connected to the
/// local workload, then carried until it ends.
async fn hbone_connect(
    shared: Arc<Shared>,
    peer: SpiffeId,
    peer_addr: SocketAddr,
    req: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let refuse = |respond: &mut h2::server::SendResponse<Bytes>, status, why: &str| {
        answer(respond, status, Some(why));
    };
    if req.method() != Method::CONNECT {
        return refuse(&mut respond, StatusCode::METHOD_NOT_ALLOWED, "only CONNECT");
    }
    let Some(dst) = req
        .uri()
        .authority()
        .and_then(|a| a.as_str().parse::<SocketAddr>().ok())
    else {
        return refuse(&mut respond, StatusCode::BAD_REQUEST, "malformed-target");
    };
    let claimed = match req.headers().get("forwarded") {
        None => None,
        Some(v) => match v.to_str().ok().and_then(parse_forwarded) {
            Some(ip) => Some(ip),
            None => return refuse(&mut respond, StatusCode::BAD_REQUEST, "malformed-forwarded"),
        },
    };
    let src = claimed.unwrap_or(peer_addr.ip());
    let loaded = shared.tables.get();
    let mut source = shared.end(loaded.as_deref(), src, None);
    source.identity = Some(peer.to_string());
    let mut ctx = Ctx {
        direction: Direction::Inbound,
        source,
        destination: shared.end(loaded.as_deref(), dst.ip(), Some(dst.port())),
        decided: None,
        generation: loaded.as_ref().map_or(0, |l| l.generation),
        started: Instant::now(),
    };
    if !shared.local_by_ip.contains_key(&dst.ip()) {
        let r = Refusal::new(StatusCode::BAD_REQUEST, "not-on-this-node").with_detail(format!(
            "{} is not a workload of node {}",
            dst.ip(),
            shared.config.node
        ));
        shared.deny(&ctx, &r);
        return refuse(&mut respond, r.status, r.reason);
    }
    let decision = shared.decide_inbound(loaded.as_deref(), &peer, peer_addr.ip(), src, dst);
    if let Some(l) = &loaded {
        ctx.decided = Some((l.clone(), l.endpoint(src), l.endpoint(dst.ip()), dst.port()));
    }
    drop(loaded);
    if let Err(r) = decision {
        shared.deny(&ctx, &r);
        return refuse(&mut respond, r.status, r.reason);
    }
    let tcp = match tokio::time::timeout(
        shared.config.limits.connect_timeout,
        TcpStream::connect(dst),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let r = Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "upstream-unreachable")
                .with_detail(e.to_string());
            shared.deny(&ctx, &r);
            return refuse(&mut respond, r.status, r.reason);
        }
        Err(_) => {
            let r = Refusal::new(StatusCode::GATEWAY_TIMEOUT, "connect-timeout");
            shared.deny(&ctx, &r);
            return refuse(&mut respond, r.status, r.reason);
        }
    };
    let _ = tcp.set_nodelay(true);
    let check = Check::Inbound {
        src,
        peer,
        peer_addr: peer_addr.ip(),
        dst,
    };
    let Some(send) = answer(&mut respond, StatusCode::OK, None) else {
        tracing::debug!("tunnel stream ended before it opened");
        return;
    };
    let tunnel = Tunnel::new(send, req.into_body());
    shared
        .carry(ctx, check, Box::new(tunnel), Box::new(tcp))
        .await
}

async fn admin_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = shared.stop.cancelled() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(admin(&shared, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn admin(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    let text = |status: StatusCode, ctype: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    match req.uri().path() {
        "/ready" => match shared.tables.get() {
            Some(_) if !shared.stop.is_cancelled() => {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            }
            Some(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "draining\n".into(),
            ),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "no table loaded\n".into(),
            ),
        },
        "/metrics" => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics.encode(),
        ),
        "/tables" => {
            let body = match shared.tables.get() {
                Some(l) => serde_json::json!({
                    "node": shared.config.node,
                    "path": shared.config.tables.display().to_string(),
                    "generation": l.generation,
                    "sha256": l.sha256,
                    "input_hash": l.tables.input_hash,
                    "loaded_at": humantime::format_rfc3339_seconds(l.loaded_at).to_string(),
                    "workloads": l.tables.workloads.len(),
                    "classes": l.tables.classes.len(),
                    "policies": l.tables.policies.len(),
                }),
                None => serde_json::json!({
                    "node": shared.config.node,
                    "path": shared.config.tables.display().to_string(),
                    "generation": 0,
                }),
            };
            text(
                StatusCode::OK,
                "application/json",
                format!("{}\n", serde_json::to_string_pretty(&body).expect("json")),
            )
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /ready, /metrics or /tables\n".into(),
        ),
    }
}

/// Check the tables file every `reloadInterval`, and at once on SIGHUP.
async fn watch(shared: Arc<Shared>) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(shared.config.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let force = tokio::select! {
            _ = tick.tick() => false,
            Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            _ = shared.stop.cancelled() => return,
        };
        shared.reload(force).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_round_trips_addresses() {
        for ip in ["10.0.1.5", "127.0.0.1", "fd00::1", "2001:db8::a:b"] {
            let ip: IpAddr = ip.parse().unwrap();
            let sni = sni_for(ip);
            ServerName::try_from(sni.clone()).unwrap();
            assert_eq!(ip_from_sni(&sni), Some(ip), "{sni}");
        }
        assert_eq!(ip_from_sni("example.com"), None);
    }

    #[test]
    fn forwarded_headers_parse() {
        assert_eq!(parse_forwarded("for=10.0.0.1"), "10.0.0.1".parse().ok());
        assert_eq!(
            parse_forwarded("for=\"[fd00::1]:4711\";proto=https"),
            "fd00::1".parse().ok()
        );
        assert_eq!(
            parse_forwarded("proto=https;for=192.0.2.60, for=198.51.100.17"),
            "192.0.2.60".parse().ok()
        );
        assert_eq!(parse_forwarded("for=unknown"), None);
        assert_eq!(parse_forwarded("garbage"), None);
        assert_eq!(
            parse_forwarded(&forwarded_for("fd00::1".parse().unwrap())),
            "fd00::1".parse().ok()
        );
    }
}
