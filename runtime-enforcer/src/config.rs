//! The agent's configuration file (`ambit agent --config FILE`).
//!
//! ```yaml
//! node: node-a                      # this node's name (logs, metrics)
//! trustDomain: cluster.local        # SPIFFE trust domain of every identity
//! caBundle: certs/ca.pem            # CA certificates peers must chain to
//! ca:                               # optional: issue workload certificates here
//!   cert: certs/ca.pem
//!   key: certs/ca-key.pem
//! tables: tables.json               # compiled tables (`ambit compile`), watched
//! listen:
//!   inbound: 127.0.0.1:15008        # HBONE (mTLS, HTTP/2 CONNECT); default 0.0.0.0:15008
//!   outbound: 127.0.0.1:15001       # HTTP CONNECT proxy for local workloads; default 127.0.0.1:15001
//!   admin: 127.0.0.1:15021          # /ready, /metrics, /tables; default 127.0.0.1:15021
//!   transparent: 127.0.0.1:15006    # optional: redirected sockets (SO_ORIGINAL_DST)
//! workloads:                        # the workloads on this node
//!   - workload: shop/web            # namespace/name, as in the tables
//!     address: 10.0.1.5             # its address: the source of its connections
//!     cert: certs/web.pem           # its certificate and key ...
//!     key: certs/web-key.pem
//!   - workload: pay/db
//!     address: 10.0.1.6
//!     cert: issue                   # ... or one issued at start by `ca`
//!     serviceAccount: db
//! peers:                            # the other nodes' agents
//!   - node: node-b
//!     address: 10.0.2.1:15008       # its inbound (HBONE) address
//!     workloads: [10.0.2.0/24]      # the workload addresses behind it
//! limits:
//!   handshakeTimeout: 10s           # TLS handshake, CONNECT request
//!   connectTimeout: 5s              # connecting to a workload or a peer
//!   maxPending: 1024                # connections not yet past their handshake
//!   idleTimeout: 1h                 # a tunnel with no byte either way is closed
//!   drain: 5s                       # graceful shutdown: open connections may finish
//! reloadInterval: 250ms             # how often the tables file is checked
//! accessLog: stdout                 # stdout, stderr, off, or a file
//! ```
//!
//! Relative paths are relative to the configuration file. Every problem is
//! a located `AG001` (the configuration) or `AG002` (a certificate, key or
//! bundle) diagnostic.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ambit_compiler::diag::{Code, Diagnostic};
use ambit_compiler::source::SourceFile;
use ambit_compiler::yaml::{self, Object, Seg};
use ipnet::IpNet;
use rustls::RootCertStore;
use serde::Deserialize;

use crate::identity::{Ca, WorkloadCert};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    node: String,
    trust_domain: String,
    ca_bundle: String,
    #[serde(default)]
    ca: Option<CaSpec>,
    tables: String,
    #[serde(default)]
    listen: ListenSpec,
    #[serde(default)]
    workloads: Vec<WorkloadSpec>,
    #[serde(default)]
    peers: Vec<PeerSpec>,
    #[serde(default)]
    limits: LimitsSpec,
    #[serde(default)]
    reload_interval: Option<String>,
    #[serde(default)]
    access_log: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaSpec {
    cert: String,
    key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenSpec {
    inbound: Option<String>,
    outbound: Option<String>,
    admin: Option<String>,
    transparent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WorkloadSpec {
    workload: String,
    address: String,
    cert: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    service_account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSpec {
    node: String,
    address: String,
    #[serde(default)]
    workloads: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LimitsSpec {
    handshake_timeout: Option<String>,
    connect_timeout: Option<String>,
    max_pending: Option<u32>,
    idle_timeout: Option<String>,
    drain: Option<String>,
}

/// A validated configuration, certificates loaded.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: String,
    pub trust_domain: String,
    pub bundle: Arc<RootCertStore>,
    pub tables: PathBuf,
    pub listen: Listen,
    pub workloads: Vec<LocalWorkload>,
    pub peers: Vec<Peer>,
    pub limits: Limits,
    pub reload_interval: Duration,
    pub access_log: AccessLog,
}

#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub inbound: SocketAddr,
    pub outbound: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub transparent: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct LocalWorkload {
    pub namespace: String,
    pub name: String,
    pub address: IpAddr,
    pub cert: WorkloadCert,
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub node: String,
    pub address: SocketAddr,
    pub workloads: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_pending: usize,
    pub idle_timeout: Duration,
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_pending: 1024,
            idle_timeout: Duration::from_secs(3600),
            drain: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Stdout,
    Stderr,
    Off,
    File(PathBuf),
}

pub const DEFAULT_INBOUND: &str = "0.0.0.0:15008";
pub const DEFAULT_OUTBOUND: &str = "127.0.0.1:15001";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:15021";

impl AgentConfig {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<AgentConfig, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![
                Diagnostic::new(
                    Code::UnreadablePath,
                    format!("cannot read `{}`: {e}", path.display()),
                )
                .with_help("check the --config path"),
            ]
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let file = SourceFile::new(path.display().to_string(), text);
        AgentConfig::parse(&file, &base)
    }

    /// Parse configuration text; relative paths are taken from `base`.
    pub fn parse(file: &SourceFile, base: &Path) -> Result<AgentConfig, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let docs = yaml::documents(file, &mut diags);
        if !diags.is_empty() {
            return Err(diags);
        }
        let [doc] = docs.as_slice() else {
            return Err(vec![
                Diagnostic::new(
                    Code::InvalidAgentConfig,
                    "the agent configuration must be one YAML document",
                )
                .with_help("write one mapping with `node`, `trustDomain`, `caBundle`, `tables`")
                .at(file, ambit_compiler::source::Span::new(0, 0)),
            ]);
        };
        let root = doc.root();
        let spec: Spec = root.typed().map_err(|mut d| {
            d.code = Code::InvalidAgentConfig;
            d.severity = Code::InvalidAgentConfig.severity();
            d.help = Some("see the configuration reference in the README (`ambit agent`)".into());
            vec![d]
        })?;
        Checker {
            file,
            root,
            base,
            diags: Vec::new(),
        }
        .check(spec)
    }
}

struct Checker<'a> {
    file: &'a SourceFile,
    root: Object<'a>,
    base: &'a Path,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn bad(&mut self, code: Code, path: &[Seg], message: String, help: &str) {
        let span = self.root.locate(path);
        self.diags.push(
            Diagnostic::new(code, message)
                .with_help(help)
                .at(self.file, span),
        );
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn socket(&mut self, at: &[Seg], text: Option<&str>, default: &str) -> Option<SocketAddr> {
        let text = text.unwrap_or(default);
        match text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.bad(
                    Code::InvalidAgentConfig,
                    at,
                    format!("`{text}` is not an address and port"),
                    "write IP:PORT, e.g. 127.0.0.1:15008 or [::1]:15008",
                );
                None
            }
        }
    }

    fn duration(&mut self, at: &[Seg], text: Option<&str>, default: Duration) -> Duration {
        let Some(text) = text else { return default };
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                self.bad(
                    Code::InvalidAgentConfig,
                    at,
                    format!("`{text}` is not a positive duration"),
                    "write a duration such as 500ms, 10s, 5m or 1h",
                );
                default
            }
        }
    }

    fn check(mut self, spec: Spec) -> Result<AgentConfig, Vec<Diagnostic>> {
        let td = spec.trust_domain.as_str();
        if td.is_empty()
            || !td
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c))
        {
            self.bad(
                Code::InvalidAgentConfig,
                &["trustDomain".into()],
                format!("`{td}` is not a trust domain"),
                "a trust domain is lowercase letters, digits, `-`, `.` and `_`, e.g. cluster.local",
            );
        }
        if spec.node.trim().is_empty() {
            self.bad(
                Code::InvalidAgentConfig,
                &["node".into()],
                "the node name is empty".into(),
                "name the node, e.g. its Kubernetes node name",
            );
        }
        let bundle_path = self.path(&spec.ca_bundle);
        let bundle = match crate::identity::read_bundle(&bundle_path) {
            Ok(b) => Some(b),
            Err(e) => {
                self.bad(
                    Code::InvalidCertificate,
                    &["caBundle".into()],
                    e.to_string(),
                    "name a PEM file of CA certificates (`ambit ca init` writes ca.pem)",
                );
                None
            }
        };
        let ca = spec.ca.as_ref().and_then(|ca| {
            match Ca::load(&self.path(&ca.cert), &self.path(&ca.key)) {
                Ok(loaded) if loaded.trust_domain != spec.trust_domain => {
                    self.bad(
                        Code::InvalidCertificate,
                        &["ca".into(), "cert".into()],
                        format!(
                            "the CA is for trust domain `{}`, the agent for `{}`",
                            loaded.trust_domain, spec.trust_domain
                        ),
                        "use the CA of the agent's trust domain",
                    );
                    None
                }
                Ok(loaded) => Some(loaded),
                Err(e) => {
                    self.bad(
                        Code::InvalidCertificate,
                        &["ca".into()],
                        e.to_string(),
                        "name the CA's certificate and key (`ambit ca init` writes ca.pem and ca-key.pem)",
                    );
                    None
                }
            }
        });
        let l = &spec.listen;
        let listen_at = |k: &'static str| [Seg::Key("listen"), Seg::Key(k)];
        let inbound = self.socket(&listen_at("inbound"), l.inbound.as_deref(), DEFAULT_INBOUND);
        let outbound = self.socket(
            &listen_at("outbound"),
            l.outbound.as_deref(),
            DEFAULT_OUTBOUND,
        );
        let admin = self.socket(&listen_at("admin"), l.admin.as_deref(), DEFAULT_ADMIN);
        let transparent = match l.transparent.as_deref() {
            Some(t) => self.socket(&listen_at("transparent"), Some(t), ""),
            None => None,
        };

        let mut workloads = Vec::new();
        let mut seen_addr: BTreeMap<IpAddr, String> = BTreeMap::new();
        let mut seen_name: BTreeMap<String, usize> = BTreeMap::new();
        for (i, w) in spec.workloads.iter().enumerate() {
            let at = |k: &'static str| [Seg::Key("workloads"), Seg::Index(i), Seg::Key(k)];
            let Some((ns, name)) = w
                .workload
                .split_once('/')
                .filter(|(n, m)| !n.is_empty() && !m.is_empty() && !m.contains('/'))
            else {
                self.bad(
                    Code::InvalidAgentConfig,
                    &at("workload"),
                    format!("`{}` is not namespace/name", w.workload),
                    "name the workload as the tables do, e.g. shop/web",
                );
                continue;
            };
            if let Some(j) = seen_name.insert(w.workload.clone(), i) {
                self.bad(
                    Code::InvalidAgentConfig,
                    &at("workload"),
                    format!("`{}` is listed twice (also workloads[{j}])", w.workload),
                    "list each workload once",
                );
            }
            let Ok(address) = w.address.parse::<IpAddr>() else {
                self.bad(
                    Code::InvalidAgentConfig,
                    &at("address"),
                    format!("`{}` is not an IP address", w.address),
                    "write the workload's IP address, e.g. 10.0.1.5",
                );
                continue;
            };
            if let Some(other) = seen_addr.insert(address, w.workload.clone()) {
                self.bad(
                    Code::InvalidAgentConfig,
                    &at("address"),
                    format!("address {address} is also {other}'s"),
                    "an address identifies one workload: give each its own",
                );
            }
            let cert = if w.cert == "issue" {
                if w.key.is_some() {
                    self.bad(
                        Code::InvalidAgentConfig,
                        &at("key"),
                        "`key` is set but the certificate is issued".into(),
                        "drop `key`, or name a certificate file",
                    );
                    continue;
                }
                let Some(sa) = w.service_account.as_deref() else {
                    self.bad(
                        Code::InvalidAgentConfig,
                        &at("cert"),
                        "an issued certificate needs the workload's `serviceAccount`".into(),
                        "add `serviceAccount: NAME`",
                    );
                    continue;
                };
                let Some(ca) = ca.as_ref() else {
                    if spec.ca.is_none() {
                        self.bad(
                            Code::InvalidAgentConfig,
                            &at("cert"),
                            "`cert: issue` needs a `ca` to issue from".into(),
                            "add `ca: {cert: ca.pem, key: ca-key.pem}`, or name a certificate file",
                        );
                    }
                    continue;
                };
                match ca
                    .issue(ns, sa, 1)
                    .and_then(|issued| WorkloadCert::from_issued(&issued))
                {
                    Ok(c) => c,
                    Err(e) => {
                        self.bad(
                            Code::InvalidCertificate,
                            &at("cert"),
                            e.to_string(),
                            "check the CA key",
                        );
                        continue;
                    }
                }
            } else {
                let Some(key) = w.key.as_deref() else {
                    self.bad(
                        Code::InvalidAgentConfig,
                        &at("cert"),
                        "a certificate file needs its `key`".into(),
                        "add `key: PATH` (`ambit ca issue` writes NAME-key.pem)",
                    );
                    continue;
                };
                match WorkloadCert::load(&self.path(&w.cert), &self.path(key)) {
                    Ok(c) => c,
                    Err(e) => {
                        self.bad(
                            Code::InvalidCertificate,
                            &at("cert"),
                            e.to_string(),
                            "issue one with `ambit ca issue --namespace NS --service-account SA`",
                        );
                        continue;
                    }
                }
            };
            if cert.id.trust_domain != spec.trust_domain || cert.id.namespace != ns {
                self.bad(
                    Code::InvalidCertificate,
                    &at("cert"),
                    format!(
                        "the certificate's identity {} is not in namespace `{ns}` of trust domain `{}`",
                        cert.id, spec.trust_domain
                    ),
                    "issue the workload a certificate for its own namespace and service account",
                );
                continue;
            }
            if let Some(sa) = w.service_account.as_deref()
                && sa != cert.id.service_account
            {
                self.bad(
                    Code::InvalidCertificate,
                    &at("serviceAccount"),
                    format!(
                        "the certificate is for service account `{}`, not `{sa}`",
                        cert.id.service_account
                    ),
                    "make `serviceAccount` and the certificate agree",
                );
                continue;
            }
            workloads.push(LocalWorkload {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                address,
                cert,
            });
        }

        let mut peers = Vec::new();
        for (i, p) in spec.peers.iter().enumerate() {
            let at = |k: &'static str| [Seg::Key("peers"), Seg::Index(i), Seg::Key(k)];
            let Some(address) = self.socket(&at("address"), Some(&p.address), "") else {
                continue;
            };
            let mut nets = Vec::new();
            for (j, w) in p.workloads.iter().enumerate() {
                let net = w
                    .parse::<IpNet>()
                    .or_else(|_| w.parse::<IpAddr>().map(IpNet::from));
                match net {
                    Ok(n) => nets.push(n),
                    Err(_) => self.bad(
                        Code::InvalidAgentConfig,
                        &[
                            Seg::Key("peers"),
                            Seg::Index(i),
                            Seg::Key("workloads"),
                            Seg::Index(j),
                        ],
                        format!("`{w}` is not an address or CIDR"),
                        "write workload addresses as 10.0.2.7 or 10.0.2.0/24",
                    ),
                }
            }
            for local in &workloads {
                if nets.iter().any(|n| n.contains(&local.address)) {
                    self.bad(
                        Code::InvalidAgentConfig,
                        &at("workloads"),
                        format!(
                            "{} is a workload of this node ({}/{})",
                            local.address, local.namespace, local.name
                        ),
                        "a workload address lives behind one node",
                    );
                }
            }
            peers.push(Peer {
                node: p.node.clone(),
                address,
                workloads: nets,
            });
        }

        let d = Limits::default();
        let lim = &spec.limits;
        let limit_at = |k: &'static str| [Seg::Key("limits"), Seg::Key(k)];
        let limits = Limits {
            handshake_timeout: self.duration(
                &limit_at("handshakeTimeout"),
                lim.handshake_timeout.as_deref(),
                d.handshake_timeout,
            ),
            connect_timeout: self.duration(
                &limit_at("connectTimeout"),
                lim.connect_timeout.as_deref(),
                d.connect_timeout,
            ),
            max_pending: match lim.max_pending {
                Some(0) => {
                    self.bad(
                        Code::InvalidAgentConfig,
                        &limit_at("maxPending"),
                        "maxPending is 0: no connection could be accepted".into(),
                        "allow at least one pending connection",
                    );
                    1
                }
                Some(n) => n as usize,
                None => d.max_pending,
            },
            idle_timeout: self.duration(
                &limit_at("idleTimeout"),
                lim.idle_timeout.as_deref(),
                d.idle_timeout,
            ),
            drain: self.duration(&limit_at("drain"), lim.drain.as_deref(), d.drain),
        };
        let reload_interval = self.duration(
            &["reloadInterval".into()],
            spec.reload_interval.as_deref(),
            Duration::from_millis(250),
        );
        let access_log = match spec.access_log.as_deref() {
            None | Some("stdout") => AccessLog::Stdout,
            Some("stderr") => AccessLog::Stderr,
            Some("off") => AccessLog::Off,
            Some(p) => AccessLog::File(self.path(p)),
        };
        if !self.diags.is_empty() {
            return Err(self.diags);
        }
        Ok(AgentConfig {
            node: spec.node,
            trust_domain: spec.trust_domain,
            bundle: bundle.expect("no diagnostic: the bundle was read"),
            tables: self.path(&spec.tables),
            listen: Listen {
                inbound: inbound.expect("checked"),
                outbound,
                admin,
                transparent,
            },
            workloads,
            peers,
            limits,
            reload_interval,
            access_log,
        })
    }
}
