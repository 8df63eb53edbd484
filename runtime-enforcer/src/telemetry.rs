//! Access log (one JSON line per connection decision) and Prometheus
//! metrics.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::config::AccessLog;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeniedLabels {
    pub direction: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    pub direction: &'static str,
    /// `sent`: from the connection's source toward its destination.
    pub flow: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub sha256: String,
    pub input_hash: String,
}

/// Every metric the agent exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub opened: Family<DirectionLabels, Counter>,
    pub closed: Family<DirectionLabels, Counter>,
    pub active: Family<DirectionLabels, Gauge>,
    pub denied: Family<DeniedLabels, Counter>,
    pub failed: Family<DeniedLabels, Counter>,
    pub revoked: Family<DirectionLabels, Counter>,
    pub bytes: Family<BytesLabels, Counter>,
    pub handshake_failures: Family<ReasonLabels, Counter>,
    pub reload_failures: Counter,
    pub reloads: Counter,
    pub table_generation: Gauge,
    pub table_info: Family<TableLabels, Gauge>,
    pub ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ambit");
        let m = Metrics {
            registry: Registry::default(),
            opened: Family::default(),
            closed: Family::default(),
            active: Family::default(),
            denied: Family::default(),
            failed: Family::default(),
            revoked: Family::default(),
            bytes: Family::default(),
            handshake_failures: Family::default(),
            reload_failures: Counter::default(),
            reloads: Counter::default(),
            table_generation: Gauge::default(),
            table_info: Family::default(),
            ready: Gauge::default(),
        };
        registry.register(
            "connections_opened",
            "Connections allowed and opened",
            m.opened.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections closed after being opened",
            m.closed.clone(),
        );
        registry.register("connections_active", "Open connections", m.active.clone());
        registry.register(
            "connections_denied",
            "Connections refused, by reason",
            m.denied.clone(),
        );
        registry.register(
            "connections_failed",
            "Connections policy allowed that could not be established, by reason",
            m.failed.clone(),
        );
        registry.register(
            "connections_revoked",
            "Open connections closed because a new table denies them",
            m.revoked.clone(),
        );
        registry.register(
            "bytes",
            "Bytes carried (sent: source to destination; received: back)",
            m.bytes.clone(),
        );
        registry.register(
            "handshake_failures",
            "TLS handshakes that failed, by reason",
            m.handshake_failures.clone(),
        );
        registry.register(
            "table_reload_failures",
            "Table files refused (unreadable, corrupt, inconsistent)",
            m.reload_failures.clone(),
        );
        registry.register(
            "table_reloads",
            "Tables loaded and swapped in",
            m.reloads.clone(),
        );
        registry.register(
            "table_generation",
            "Generation of the loaded table (0: none)",
            m.table_generation.clone(),
        );
        registry.register(
            "table_info",
            "The loaded table's hashes (value 1)",
            m.table_info.clone(),
        );
        registry.register(
            "ready",
            "1 once certificates and a table are loaded",
            m.ready.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// One end of a logged connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct End {
    /// `namespace/name` of the workload, when the tables know the address.
    pub workload: Option<String>,
    /// The SPIFFE identity: of the certificate the peer presented (inbound)
    /// or of the local workload's certificate (outbound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// One access-log line.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub time: String,
    pub node: String,
    /// `outbound` (from a local workload), `inbound` (to one).
    pub direction: &'static str,
    pub source: End,
    pub destination: End,
    /// `allow`, `deny` (policy refused it) or `error` (allowed, but the
    /// workload or the peer could not be reached).
    pub decision: &'static str,
    /// Why a connection was refused or how it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The HTTP status of the CONNECT answer.
    pub status: u16,
    /// The rules and policies that decided (the `decided_by` of `ambit query`).
    pub decided_by: Vec<ambit_compiler::probe::DecidedBy>,
    /// The generation of the table that decided (0: none loaded).
    pub table: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub duration_ms: f64,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// Where access-log lines go.
pub struct AccessLogger {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
    pub lines: AtomicU64,
}

impl std::fmt::Debug for AccessLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogger")
            .field("enabled", &self.sink.is_some())
            .finish()
    }
}

impl AccessLogger {
    pub fn open(target: &AccessLog) -> std::io::Result<Self> {
        let sink: Option<Box<dyn Write + Send>> = match target {
            AccessLog::Stdout => Some(Box::new(std::io::stdout())),
            AccessLog::Stderr => Some(Box::new(std::io::stderr())),
            AccessLog::Off => None,
            AccessLog::File(p) => Some(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
        };
        Ok(AccessLogger {
            sink: sink.map(Mutex::new),
            lines: AtomicU64::new(0),
        })
    }

    /// Whether lines are written anywhere (else records are not built).
    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    pub fn write(&self, record: &Record) {
        self.lines
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(sink) = &self.sink else { return };
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
        // One write per line, so lines from concurrent connections never
        // interleave; a failing sink (a closed pipe) must not stop traffic.
        let _ = sink.write_all(&line);
        let _ = sink.flush();
    }
}
