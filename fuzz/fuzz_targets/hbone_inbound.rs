//! The inbound tunnel past its TLS handshake: arbitrary bytes from an
//! authenticated peer (HTTP/2 frames, HBONE CONNECT requests or garbage) are
//! served by a real agent exactly as its inbound listener serves them.
//! Never a panic, and never a connection to the local workload, whose
//! ingress the tables deny to everyone.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ambit_runtime::identity::{Ca, SpiffeId};
use ambit_runtime::{Agent, AgentConfig};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The client connection preface of HTTP/2; inputs with an even first byte
/// get it for free, so that the fuzzer spends its time on the frames.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct World {
    rt: tokio::runtime::Runtime,
    agent: Agent,
    /// Connections the workload accepted.
    reached: Arc<AtomicUsize>,
    peer_id: SpiffeId,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a directory");
        let reached = Arc::new(AtomicUsize::new(0));
        let agent = rt.block_on(async {
            // The workload: counts every connection it accepts.
            // On port 15099 when free: the seeds CONNECT there.
            let workload = match tokio::net::TcpListener::bind("127.0.0.1:15099").await {
                Ok(l) => l,
                Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            };
            let port = workload.local_addr().unwrap().port();
            let count = reached.clone();
            tokio::spawn(async move {
                while let Ok((s, _)) = workload.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    drop(s);
                }
            });
            let ca = Ca::generate("cluster.local", 1).unwrap();
            ca.save(&dir.path().join("ca")).unwrap();
            let cluster = format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata: {{name: db, namespace: a, labels: {{app: db}}}}\n\
                 spec: {{serviceAccountName: db, containers: [{{name: c, image: i, ports: [{{containerPort: {port}}}]}}]}}\n\
                 status: {{podIP: 127.0.0.1}}\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata: {{name: client, namespace: a, labels: {{app: client}}}}\n\
                 spec: {{serviceAccountName: client, containers: [{{name: c, image: i}}]}}\n\
                 status: {{podIP: 127.0.0.2}}\n---\n\
                 apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny, namespace: a}}\n\
                 spec: {{podSelector: {{matchLabels: {{app: db}}}}, policyTypes: [Ingress]}}\n"
            );
            let file = ambit_compiler::source::SourceFile::new("cluster.yaml", cluster);
            let mut diags = ambit_compiler::diag::Diagnostics::default();
            let cluster = ambit_compiler::load::load(
                &[file],
                &ambit_compiler::load::LoadOptions::default(),
                &mut diags,
            );
            assert!(!diags.has_errors(), "{:?}", diags.0);
            let tables = ambit_compiler::compile::compile(&cluster);
            std::fs::write(dir.path().join("tables.json"), tables.to_json()).unwrap();
            let config = "node: n\ntrustDomain: cluster.local\ncaBundle: ca/ca.pem\n\
                 ca: {cert: ca/ca.pem, key: ca/ca-key.pem}\ntables: tables.json\n\
                 listen: {inbound: '127.0.0.1:0', outbound: '127.0.0.1:0', admin: '127.0.0.1:0'}\n\
                 workloads: [{workload: a/db, address: 127.0.0.1, cert: issue, serviceAccount: db}]\n\
                 peers: [{node: m, address: '127.0.0.3:15008', workloads: [127.0.0.2/32]}]\n";
            let path = dir.path().join("agent.yaml");
            std::fs::write(&path, config).unwrap();
            let config = AgentConfig::load(&path).unwrap_or_else(|d| panic!("{d:?}"));
            Agent::start(config).await.expect("the agent starts")
        });
        World {
            rt,
            agent,
            reached,
            peer_id: SpiffeId::new("cluster.local", "a", "client"),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let peer: SocketAddr = "127.0.0.3:40000".parse().unwrap();
    w.rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let serve = w.agent.serve_tunnel(server, w.peer_id.clone(), peer);
        let drive = async move {
            if data.first().is_some_and(|b| b % 2 == 0) {
                let _ = client.write_all(PREFACE).await;
            }
            let _ = client.write_all(data.get(1..).unwrap_or_default()).await;
            // Let the agent act on what it read (a CONNECT it allowed would
            // reach the workload now) until it has been quiet for 2 ms or
            // has closed: closing first would drop its streams unserved.
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(2), client.read(&mut buf)).await
            {
                if n == 0 {
                    break;
                }
            }
            let _ = client.shutdown().await;
            let _ = client.read_to_end(&mut Vec::new()).await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(serve, drive) })
            .await;
    });
    assert_eq!(
        w.reached.load(Ordering::SeqCst),
        0,
        "a workload the tables close was reached"
    );
});
