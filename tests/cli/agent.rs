//! The agent against `ambit query`: random clusters compiled by `ambit
//! compile`, three live agents on loopback, hundreds of probes through
//! them, every decision compared with the query's L4 answer on the same
//! inputs. Also `ambit ca`, `ambit agent --check` and the configuration
//! diagnostics.

#[path = "../../runtime-enforcer/tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;

use support::{Pod, Refused, World, connect, echo, ip};

use crate::cli::util::{ambit, ambit_in, testdata, transcript};

/// SplitMix64: a small deterministic generator, so that a failing seed
/// replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const NAMESPACES: [&str; 4] = ["ns0", "ns1", "ns2", "ns3"];
const APPS: [&str; 3] = ["a", "b", "c"];
const ACCOUNTS: [&str; 3] = ["default", "sa1", "sa2"];
const PORTS: [u16; 3] = [8080, 5432, 9000];

fn cluster(seed: u64, net: u8) -> (String, Vec<Pod>) {
    let mut r = Rng(seed);
    let mut y = String::new();
    for (i, ns) in NAMESPACES.iter().enumerate() {
        let mesh = if i < 2 {
            ", istio.io/dataplane-mode: ambient"
        } else {
            ""
        };
        let env = if i % 2 == 0 { "dev" } else { "prod" };
        writeln!(
            y,
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{env: {env}{mesh}}}}}\n---"
        )
        .unwrap();
    }
    let mut pods = Vec::new();
    for i in 0..18u8 {
        let node = 1 + i % 3;
        let p = Pod {
            namespace: r.pick(&NAMESPACES).to_string(),
            name: format!("p{i}"),
            labels: vec![
                ("app".into(), r.pick(&APPS).to_string()),
                ("tier".into(), r.pick(&["fe", "be"]).to_string()),
            ],
            service_account: r.pick(&ACCOUNTS).to_string(),
            ip: ip(net, node, 10 + i),
            ports: vec![
                ("http".into(), 8080),
                ("db".into(), 5432),
                ("admin".into(), 9000),
            ],
            node,
        };
        writeln!(y, "{}---", p.yaml()).unwrap();
        pods.push(p);
    }
    let peer = |r: &mut Rng| -> String {
        match r.below(5) {
            0 => format!(
                "{{podSelector: {{matchLabels: {{app: {}}}}}}}",
                r.pick(&APPS)
            ),
            1 => format!(
                "{{namespaceSelector: {{matchLabels: {{env: {}}}}}}}",
                r.pick(&["dev", "prod"])
            ),
            2 => format!(
                "{{namespaceSelector: {{}}, podSelector: {{matchLabels: {{tier: {}}}}}}}",
                r.pick(&["fe", "be"])
            ),
            3 => format!(
                "{{ipBlock: {{cidr: 127.{net}.0.0/16, except: [127.{net}.{}.0/24]}}}}",
                1 + r.below(3)
            ),
            _ => format!(
                "{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {}}}}}}}",
                r.pick(&NAMESPACES)
            ),
        }
    };
    let ports = |r: &mut Rng| -> String {
        match r.below(5) {
            0 => String::new(),
            1 => format!(", ports: [{{port: {}}}]", r.pick(&PORTS)),
            2 => format!(", ports: [{{port: {}}}]", r.pick(&["http", "db", "admin"])),
            3 => ", ports: [{port: 5000, endPort: 9000}]".into(),
            _ => format!(
                ", ports: [{{port: {}}}, {{port: {}}}]",
                r.pick(&PORTS),
                r.pick(&PORTS)
            ),
        }
    };
    for i in 0..8 {
        let ns = r.pick(&NAMESPACES);
        let selector = if r.chance(30) {
            "{}".to_owned()
        } else {
            format!("{{matchLabels: {{app: {}}}}}", r.pick(&APPS))
        };
        let (ingress, egress) = match r.below(3) {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        let mut types = Vec::new();
        let mut body = String::new();
        for (on, dir, key) in [(ingress, "Ingress", "from"), (egress, "Egress", "to")] {
            if !on {
                continue;
            }
            types.push(dir);
            writeln!(body, "  {}:", dir.to_lowercase()).unwrap();
            for _ in 0..r.below(3) {
                let peers: Vec<String> = (0..1 + r.below(2)).map(|_| peer(&mut r)).collect();
                writeln!(
                    body,
                    "    - {{{key}: [{}]{}}}",
                    peers.join(", "),
                    ports(&mut r)
                )
                .unwrap();
            }
            if body.ends_with(":\n") {
                body.truncate(body.len() - 1);
                body.push_str(" []\n");
            }
        }
        writeln!(
            y,
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np{i}, namespace: {ns}}}\nspec:\n  podSelector: {selector}\n  policyTypes: [{}]\n{body}---",
            types.join(", ")
        )
        .unwrap();
    }
    for i in 0..5 {
        let ns = r.pick(&NAMESPACES[..2]);
        let action = r.pick(&["ALLOW", "ALLOW", "DENY"]);
        let selector = if r.chance(40) {
            String::new()
        } else {
            format!("  selector: {{matchLabels: {{app: {}}}}}\n", r.pick(&APPS))
        };
        let mut rules = String::new();
        for _ in 0..1 + r.below(2) {
            let from = match r.below(3) {
                0 => format!(
                    "principals: [cluster.local/ns/{}/sa/{}]",
                    r.pick(&NAMESPACES),
                    r.pick(&ACCOUNTS)
                ),
                1 => format!("namespaces: [{}]", r.pick(&NAMESPACES)),
                _ => format!("notNamespaces: [{}]", r.pick(&NAMESPACES)),
            };
            let to = match r.below(3) {
                0 => format!("ports: ['{}']", r.pick(&PORTS)),
                // An L7 attribute: the L4 view handles it conservatively.
                1 => format!("ports: ['{}'], methods: [GET]", r.pick(&PORTS)),
                _ => format!("notPorts: ['{}']", r.pick(&PORTS)),
            };
            writeln!(
                rules,
                "    - from: [{{source: {{{from}}}}}]\n      to: [{{operation: {{{to}}}}}]"
            )
            .unwrap();
        }
        writeln!(
            y,
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: ap{i}, namespace: {ns}}}\nspec:\n{selector}  action: {action}\n  rules:\n{rules}---"
        )
        .unwrap();
    }
    (y, pods)
}

/// Random clusters, three agents each, every probe through the agents
/// against `ambit query` (`l4_allowed`: the view an L4 enforcer applies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_agents_decide_as_query_on_random_clusters() {
    let mut compared = 0;
    let (mut allowed, mut denied) = (0, 0);
    for seed in [1u64, 2] {
        let world = World::new(160);
        let (yaml, pods) = cluster(seed, world.net);
        let dir = world.dir.path();
        std::fs::write(dir.join("cluster.yaml"), &yaml).unwrap();
        let out = ambit_in(dir, &["compile", "cluster.yaml", "-o", "tables.json"]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        for p in &pods {
            for (_, port) in &p.ports {
                echo(SocketAddr::new(p.ip, *port)).await;
            }
        }
        let agents = world.start(3, &pods, "accessLog: off\n").await;
        let mut r = Rng(seed * 7919);
        let mut probes = String::new();
        let mut asked = Vec::new();
        for _ in 0..160 {
            let (from, to) = (r.pick(&pods), r.pick(&pods));
            // 7000: no listener; an allowed flow answers 503.
            let port = *r.pick(&[8080, 5432, 9000, 7000]);
            writeln!(
                probes,
                "- {{from: {}, to: {}, port: {port}}}",
                from.id(),
                to.id()
            )
            .unwrap();
            asked.push((from.clone(), to.clone(), port));
        }
        std::fs::write(dir.join("probes.yaml"), &probes).unwrap();
        let out = ambit_in(
            dir,
            &[
                "query",
                "cluster.yaml",
                "--probes",
                "probes.yaml",
                "-o",
                "json",
            ],
        );
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            transcript(&out)
        );
        let answers: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(answers.len(), asked.len());
        let mut divergent = Vec::new();
        for ((from, to, port), answer) in asked.iter().zip(&answers) {
            let proxy = agents[from.node as usize - 1].bound().outbound.unwrap();
            let live = match connect(proxy, from.ip, SocketAddr::new(to.ip, *port), "").await {
                Ok(_) => true,
                Err(Refused { status: 503, .. }) => true,
                Err(Refused {
                    status: 401 | 403, ..
                }) => false,
                Err(other) => panic!("{} -> {}:{port}: {other:?}", from.id(), to.id()),
            };
            let expected = answer["l4_allowed"].as_bool().unwrap();
            if live != expected {
                divergent.push(format!(
                    "seed {seed}: {} -> {}:{port}: agents {live}, query {expected}: {answer}",
                    from.id(),
                    to.id()
                ));
            }
            if expected {
                allowed += 1;
            } else {
                denied += 1;
            }
            compared += 1;
        }
        assert!(divergent.is_empty(), "{}", divergent.join("\n"));
        for a in agents {
            a.shutdown().await;
        }
    }
    assert_eq!(compared, 320);
    // Both answers are well represented, or the comparison says little.
    assert!(
        allowed >= 40 && denied >= 40,
        "allowed {allowed}, denied {denied}"
    );
}

#[test]
fn ca_init_and_issue_write_spiffe_certificates_and_agent_check_loads_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ambit_in(
        d,
        &[
            "ca",
            "init",
            "--trust-domain",
            "corp.example",
            "--out",
            "ca",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    // A second init does not overwrite the key.
    let again = ambit_in(d, &["ca", "init", "--out", "ca"]);
    assert_eq!(again.status.code(), Some(2));
    let out = ambit_in(
        d,
        &[
            "ca",
            "issue",
            "--ca",
            "ca",
            "--namespace",
            "shop",
            "--service-account",
            "web",
            "--out",
            "certs",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("spiffe://corp.example/ns/shop/sa/web"),
        "{}",
        transcript(&out)
    );
    let der = std::fs::read(d.join("certs/shop-web.pem")).unwrap();
    let cert = ambit_runtime::identity::WorkloadCert::load(
        &d.join("certs/shop-web.pem"),
        &d.join("certs/shop-web-key.pem"),
    )
    .unwrap();
    assert_eq!(cert.id.to_string(), "spiffe://corp.example/ns/shop/sa/web");
    assert!(!der.is_empty());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("certs/shop-web-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "keys are private");

    let tables = ambit(&["compile", "testdata/demo", "testdata/agents/pods.yaml"]);
    std::fs::write(d.join("tables.json"), &tables.stdout).unwrap();
    let config = "node: n1\ntrustDomain: corp.example\ncaBundle: ca/ca.pem\ntables: tables.json\nworkloads:\n  - {workload: shop/web, address: 127.0.11.1, cert: certs/shop-web.pem, key: certs/shop-web-key.pem}\n";
    std::fs::write(d.join("agent.yaml"), config).unwrap();
    let out = ambit_in(d, &["agent", "--config", "agent.yaml", "--check"]);
    // The demo tables are compiled for cluster.local: refused.
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trust domain"));
    let tables = ambit(&[
        "compile",
        "testdata/demo",
        "testdata/agents/pods.yaml",
        "--trust-domain",
        "corp.example",
    ]);
    std::fs::write(d.join("tables.json"), &tables.stdout).unwrap();
    let out = ambit_in(d, &["agent", "--config", "agent.yaml", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
}

/// Every bad configuration of `testdata/bad-agent`: exit 2, its code, the
/// file, line and column, a help line; snapshotted.
#[test]
fn bad_agent_configurations_are_located() {
    let dir = testdata("bad-agent");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 6);
    for name in names {
        let rel = format!("testdata/bad-agent/{name}");
        let out = ambit(&["agent", "--config", &rel]);
        crate::cli::util::assert_located_error(&out, &name, &rel);
        insta::assert_snapshot!(
            format!("agent_{}", name.trim_end_matches(".yaml")),
            transcript(&out)
        );
    }
}

/// A certificate of another workload's identity is refused at its line.
#[test]
fn a_certificate_for_another_identity_is_refused_where_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(ambit_in(d, &["ca", "init", "--out", "."]).status.success());
    assert!(
        ambit_in(
            d,
            &[
                "ca",
                "issue",
                "--namespace",
                "pay",
                "--service-account",
                "db"
            ]
        )
        .status
        .success()
    );
    std::fs::write(d.join("tables.json"), "{}").unwrap();
    let config = "node: n1\ntrustDomain: cluster.local\ncaBundle: ca.pem\ntables: tables.json\nworkloads:\n  - workload: shop/web\n    address: 127.0.11.1\n    cert: pay-db.pem\n    key: pay-db-key.pem\n";
    std::fs::write(d.join("agent.yaml"), config).unwrap();
    let out = ambit_in(d, &["agent", "--config", "agent.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AG002") && err.contains("agent.yaml:8:11"),
        "{err}"
    );
    assert!(err.contains("spiffe://cluster.local/ns/pay/sa/db"), "{err}");
}

/// `compile -o configmap` carries the table file byte for byte, with its
/// hash annotated: what every agent's `/tables` then shows.
#[test]
fn compile_emits_the_configmap_the_agents_mount() {
    let args = ["compile", "testdata/demo", "testdata/agents/pods.yaml"];
    let json = ambit(&args);
    assert_eq!(json.status.code(), Some(0));
    let out = ambit(&[&args[..], &["-o", "configmap", "--name", "tables-v2"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let cm: serde_json::Value =
        serde_saphyr::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "tables-v2");
    assert_eq!(cm["metadata"]["namespace"], "ambit-system");
    let data = cm["data"]["tables.json"].as_str().unwrap();
    assert_eq!(
        data.as_bytes(),
        &json.stdout[..],
        "the table file, byte for byte"
    );
    assert_eq!(
        cm["metadata"]["annotations"]["ambit.dev/tables-sha256"],
        ambit_runtime::tables::sha256(&json.stdout)
    );
    assert!(ambit_runtime::tables::validate(data.as_bytes(), "cluster.local").is_ok());
}

/// The shipped manifests parse, and the node configuration they carry is
/// one the agent reads (certificate files aside, which exist on a node).
#[test]
fn the_deploy_manifests_hold_a_valid_agent_configuration() {
    let text = std::fs::read_to_string(testdata("../deploy/agent.yaml")).unwrap();
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "ConfigMap", "DaemonSet"]);
    let pod = &docs[2]["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(
        docs[2]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    let node = docs[1]["data"]["node-a.yaml"].as_str().unwrap();
    let file = ambit_compiler::source::SourceFile::new("node-a.yaml", node);
    let errors =
        ambit_runtime::AgentConfig::parse(&file, std::path::Path::new("/nonexistent")).unwrap_err();
    // Only the certificate files, which live on the node, are missing.
    assert!(
        errors.iter().all(|d| d.code.as_str() == "AG002"),
        "{errors:?}"
    );
}
