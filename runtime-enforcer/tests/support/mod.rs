//! Live agents on loopback for the tests: each test gets its own
//! 127.X.0.0/16, each node an agent address 127.X.N.1 and workloads on
//! 127.X.N.10+, with a CA, compiled tables, echo servers as workloads and an
//! HTTP CONNECT client.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use ambit_compiler::model::Protocol;
use ambit_compiler::table::{Endpoint, Tables};
use ambit_runtime::identity::Ca;
use ambit_runtime::{Agent, AgentConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

static NEXT: AtomicU8 = AtomicU8::new(0);

/// A test's private slice of loopback.
pub fn subnet(base: u8) -> u8 {
    base + NEXT.fetch_add(1, Ordering::Relaxed)
}

pub fn ip(net: u8, node: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, net, node, host))
}

/// A pod of a test cluster.
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub service_account: String,
    pub ip: IpAddr,
    /// (name, port)
    pub ports: Vec<(String, u16)>,
    /// Which node (1-based) runs it.
    pub node: u8,
}

impl Pod {
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn yaml(&self) -> String {
        let labels: String = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}: {v}, "))
            .collect();
        let ports: String = self
            .ports
            .iter()
            .map(|(n, p)| format!("{{name: {n}, containerPort: {p}}}, "))
            .collect();
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {}, namespace: {}, labels: {{{}}}}}\nspec:\n  serviceAccountName: {}\n  containers: [{{name: main, image: x, ports: [{}]}}]\nstatus: {{podIP: {}}}\n",
            self.name,
            self.namespace,
            labels.trim_end_matches(", "),
            self.service_account,
            ports.trim_end_matches(", "),
            self.ip
        )
    }
}

/// Compile a cluster's YAML into table bytes, as `ambit compile` does.
pub fn compile(yaml: &str, dir: &Path) -> Vec<u8> {
    let input = dir.join("cluster.yaml");
    std::fs::write(&input, yaml).unwrap();
    let (cluster, _files, diags) = ambit_compiler::load::load_paths(
        &[input],
        &ambit_compiler::load::LoadOptions {
            default_namespace: "default".into(),
        },
    );
    assert!(!diags.has_errors(), "{:?}", diags.0);
    ambit_compiler::compile::compile(&cluster)
        .to_json()
        .into_bytes()
}

/// Write a file atomically (a new inode), as a deploy tool would.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A CA, its files, and the test's directory.
pub struct World {
    pub net: u8,
    pub dir: tempfile::TempDir,
    pub ca: Ca,
}

impl World {
    pub fn new(base: u8) -> World {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("cluster.local", 1).unwrap();
        ca.save(&dir.path().join("ca")).unwrap();
        World {
            net: subnet(base),
            dir,
            ca,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn node_ip(&self, node: u8) -> IpAddr {
        ip(self.net, node, 1)
    }

    pub fn tables_path(&self) -> PathBuf {
        self.path("tables.json")
    }

    /// The configuration text of node `node` among `nodes`, running `pods`.
    pub fn config(&self, node: u8, nodes: u8, pods: &[Pod], extra: &str) -> String {
        let mut s = format!(
            "node: node-{node}\ntrustDomain: cluster.local\ncaBundle: ca/ca.pem\nca: {{cert: ca/ca.pem, key: ca/ca-key.pem}}\ntables: tables.json\nreloadInterval: 50ms\n{}listen:\n  inbound: '{}:15008'\n  outbound: '{}:15001'\n  admin: '{}:15021'\n",
            if extra.contains("accessLog:") {
                String::new()
            } else {
                format!("accessLog: node-{node}.log\n")
            },
            self.node_ip(node),
            self.node_ip(node),
            self.node_ip(node)
        );
        s.push_str("workloads:\n");
        for p in pods.iter().filter(|p| p.node == node) {
            s.push_str(&format!(
                "  - {{workload: {}, address: {}, cert: issue, serviceAccount: {}}}\n",
                p.id(),
                p.ip,
                p.service_account
            ));
        }
        if !pods.iter().any(|p| p.node == node) {
            s.push_str("  []\n");
        }
        s.push_str("peers:\n");
        let mut any = false;
        for other in (1..=nodes).filter(|&n| n != node) {
            any = true;
            s.push_str(&format!(
                "  - {{node: node-{other}, address: '{}:15008', workloads: ['127.{}.{}.0/24']}}\n",
                self.node_ip(other),
                self.net,
                other
            ));
        }
        if !any {
            s.push_str("  []\n");
        }
        s.push_str(extra);
        s
    }

    /// Start `nodes` agents for `pods` (configuration written to
    /// node-N.yaml).
    pub async fn start(&self, nodes: u8, pods: &[Pod], extra: &str) -> Vec<Agent> {
        let mut agents = Vec::new();
        for n in 1..=nodes {
            let path = self.path(&format!("node-{n}.yaml"));
            std::fs::write(&path, self.config(n, nodes, pods, extra)).unwrap();
            let config = AgentConfig::load(&path).unwrap_or_else(|d| panic!("{d:?}"));
            agents.push(Agent::start(config).await.unwrap());
        }
        agents
    }

    /// The access-log lines of node `node`.
    pub fn log(&self, node: u8) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path(&format!("node-{node}.log")))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Wait until node `node` logged a line matching `pred`.
    pub async fn wait_log(
        &self,
        node: u8,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..200 {
            if let Some(l) = self.log(node).into_iter().find(|l| pred(l)) {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no matching log line on node {node}: {:#?}", self.log(node));
    }
}

/// An echo server on `addr`: every byte read is written back.
pub async fn echo(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    let l = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    })
}

/// The answer to a CONNECT: the status and the `ambit-reason` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub reason: String,
}

/// `CONNECT dst` through an agent's outbound port, from `from`.
pub async fn connect(
    proxy: SocketAddr,
    from: IpAddr,
    dst: SocketAddr,
    headers: &str,
) -> Result<TcpStream, Refused> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut s = socket.connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {dst} HTTP/1.1\r\nHost: {dst}\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap() == 0 {
            return Err(Refused {
                status: 0,
                reason: "closed".into(),
            });
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status == 200 {
        return Ok(s);
    }
    let reason = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("ambit-reason:")
                .map(|r| r.trim().to_owned())
        })
        .unwrap_or_default();
    Err(Refused { status, reason })
}

/// Write `msg`, read it back.
pub async fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
}

/// The value of a metric line (name with labels, exactly as exported).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// GET a path of an admin port: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

// The scenario of the tunnel and fault tests.

/// shop (ambient): web, api, batch on node 1; pay (ambient): db, cache on
/// node 2; ops (not in the mesh): tool on node 1.
pub fn pods(net: u8) -> Vec<Pod> {
    let pod = |ns: &str, name: &str, node: u8, host: u8, ports: &[(&str, u16)]| Pod {
        namespace: ns.into(),
        name: name.into(),
        labels: vec![("app".into(), name.into())],
        service_account: name.into(),
        ip: ip(net, node, host),
        ports: ports.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
        node,
    };
    vec![
        pod("shop", "web", 1, 10, &[("http", 8080)]),
        pod("shop", "api", 1, 11, &[("http", 8080)]),
        pod("shop", "batch", 1, 12, &[]),
        pod("ops", "tool", 1, 13, &[]),
        pod("pay", "db", 2, 10, &[("pg", 5432), ("audit", 6000)]),
        pod("pay", "cache", 2, 11, &[("redis", 6379)]),
    ]
}

pub const NAMESPACES: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: pay, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops}
";

/// db admits the shop namespace on 5432 and 6000; batch may only reach
/// cache; db's authorization: web on 5432, api on 6000 (`allowed` decides
/// who may reach 5432).
pub fn policies(allowed_on_5432: &str) -> String {
    format!(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: db-ingress, namespace: pay}}
spec:
  podSelector: {{matchLabels: {{app: db}}}}
  ingress:
    - from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: shop}}}}}}]
      ports: [{{port: 5432}}, {{port: 6000}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: batch-egress, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: batch}}}}
  policyTypes: [Egress]
  egress:
    - to: [{{namespaceSelector: {{}}, podSelector: {{matchLabels: {{app: cache}}}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: db-authz, namespace: pay}}
spec:
  selector: {{matchLabels: {{app: db}}}}
  action: ALLOW
  rules:
    - from: [{{source: {{principals: [cluster.local/ns/shop/sa/{allowed_on_5432}]}}}}]
      to: [{{operation: {{ports: ['5432']}}}}]
    - from: [{{source: {{principals: [cluster.local/ns/shop/sa/api]}}}}]
      to: [{{operation: {{ports: ['6000']}}}}]
"
    )
}

pub fn cluster_yaml(pods: &[Pod], allowed_on_5432: &str) -> String {
    let mut y = NAMESPACES.to_owned();
    for p in pods {
        y.push_str("---\n");
        y.push_str(&p.yaml());
    }
    y.push_str("---\n");
    y.push_str(&policies(allowed_on_5432));
    y
}

pub fn find<'a>(pods: &'a [Pod], id: &str) -> &'a Pod {
    pods.iter().find(|p| p.id() == id).unwrap()
}

pub fn sock(p: &Pod, port: u16) -> SocketAddr {
    SocketAddr::new(p.ip, port)
}

/// What the tables say of a flow (the premise each case relies on).
pub fn decides(tables: &[u8], from: &Pod, to: &Pod, port: u16) -> bool {
    let t = Tables::from_json(tables).unwrap();
    let w = |p: &Pod| Endpoint::Workload(t.workload_index(&p.namespace, &p.name).unwrap());
    t.decide(w(from), w(to), Protocol::Tcp, port)
}

/// Compile the scenario's tables (`allowed_on_5432`, see [`policies`]) into
/// the world's table file, and serve every port of `pods` with an echo
/// server but those of the pods named in `unserved`.
pub async fn prepare(
    world: &World,
    pods: &[Pod],
    allowed_on_5432: &str,
    unserved: &[&str],
) -> Vec<u8> {
    let tables = compile(&cluster_yaml(pods, allowed_on_5432), world.dir.path());
    write_atomic(&world.tables_path(), &tables);
    for p in pods.iter().filter(|p| !unserved.contains(&p.id().as_str())) {
        for (_, port) in &p.ports {
            echo(sock(p, *port)).await;
        }
    }
    tables
}

/// Agents running a scenario: the world, its pods, one agent per node and
/// the tables they were started with.
pub struct Live {
    pub world: World,
    pub pods: Vec<Pod>,
    pub agents: Vec<Agent>,
    pub tables: Vec<u8>,
}

impl Live {
    pub fn pod(&self, id: &str) -> &Pod {
        find(&self.pods, id)
    }

    /// The outbound port of node `node`'s agent.
    pub fn proxy(&self, node: u8) -> SocketAddr {
        self.agents[node as usize - 1].bound().outbound.unwrap()
    }

    /// `CONNECT` from the pod `from` to the pod `to` on `port`, through the
    /// agent of `from`'s node.
    pub async fn connect(&self, from: &str, to: &str, port: u16) -> Result<TcpStream, Refused> {
        let (f, t) = (self.pod(from), self.pod(to));
        connect(self.proxy(f.node), f.ip, sock(t, port), "").await
    }
}
