//! `ambit-agent`, the binary: the same command as `ambit agent`, without
//! the solver.

// A test that cannot run here says so.
#![allow(clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ambit_compiler::load::{LoadOptions, load_paths};
use ambit_runtime::identity::Ca;

fn agent(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ambit-agent"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("ambit-agent runs")
}

/// The repository root.
fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A node in `dir`: a CA (`ca/`), `tables.json` compiled from `inputs` and
/// `agent.yaml` holding `config`.
fn write_node(dir: &Path, inputs: &[std::path::PathBuf], config: &str) {
    Ca::generate("cluster.local", 1)
        .unwrap()
        .save(&dir.join("ca"))
        .unwrap();
    let (cluster, _, diags) = load_paths(inputs, &LoadOptions::default());
    assert!(!diags.has_errors(), "{diags:?}");
    let tables = ambit_compiler::compile::compile(&cluster);
    std::fs::write(dir.join("tables.json"), tables.to_json()).unwrap();
    std::fs::write(dir.join("agent.yaml"), config).unwrap();
}

/// The demo tables and one local workload whose certificate the agent
/// issues itself.
fn node(dir: &Path, admin: &str) {
    let config = format!(
        "node: n1\ntrustDomain: cluster.local\ncaBundle: ca/ca.pem\nca: {{cert: ca/ca.pem, key: ca/ca-key.pem}}\n\
         tables: tables.json\naccessLog: off\n\
         listen: {{inbound: '127.0.0.1:0', outbound: '127.0.0.1:0', admin: '{admin}'}}\n\
         workloads:\n  - {{workload: shop/web, address: 127.0.11.1, cert: issue, serviceAccount: web}}\n"
    );
    let root = root();
    let inputs = [
        root.join("testdata/demo"),
        root.join("testdata/agents/pods.yaml"),
    ];
    write_node(dir, &inputs, &config);
}

#[test]
fn check_loads_the_configuration_and_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    node(dir.path(), "127.0.0.1:0");
    let out = agent(dir.path(), &["--config", "agent.yaml", "--check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.starts_with("configuration and tables load: node n1, 1 local workloads"));
}

#[test]
fn a_bad_configuration_is_located_and_exits_2() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = agent(
        &root,
        &["--config", "testdata/bad-agent/ag001-bad-duration.yaml"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("AG001"), "{stderr}");
    assert!(
        stderr.contains("[testdata/bad-agent/ag001-bad-duration.yaml:6:"),
        "{stderr}"
    );
    // Usage errors exit 2 as well.
    let out = agent(&root, &["--threads", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn serves_until_sigterm_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("127.0.0.1:{port}");
    node(dir.path(), &admin);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ambit-agent"))
        .args(["--config", "agent.yaml"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let answer = TcpStream::connect(&admin).ok().and_then(|mut s| {
            s.write_all(b"GET /ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            Some(text)
        });
        match answer {
            Some(text) => break text,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => panic!("the agent never answered on {admin}"),
        }
    };
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// The point of the binary: it does not load the solver.
#[test]
fn does_not_link_the_solver() {
    let bin = std::fs::read(env!("CARGO_BIN_EXE_ambit-agent")).unwrap();
    let needs = |lib: &[u8]| bin.windows(lib.len()).any(|w| w == lib);
    assert!(needs(b"libc.so.6"), "the check reads the dynamic section");
    assert!(!needs(b"libz3.so"));
    assert!(!needs(b"libstdc++.so"));
}

/// Runs `program args` inside network namespace `ns`.
fn in_ns(ns: &str, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]).args(args);
    c
}

/// A network namespace for one test, deleted (with its iptables rules and
/// whatever still runs in it) when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.0])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            });
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A process killed (and reaped) when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether this machine can run the namespace tests: root, `ip` and
/// `iptables`. With `AMBIT_REQUIRE_NETNS=1` (CI) a machine that cannot is a
/// failure, not a skip.
fn netns_available() -> bool {
    let ok = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let root = ok("sh", &["-c", "test $(id -u) = 0"]);
    let available = root && ok("ip", &["netns", "list"]) && ok("iptables", &["--version"]);
    if !available {
        assert!(
            std::env::var_os("AMBIT_REQUIRE_NETNS").is_none(),
            "AMBIT_REQUIRE_NETNS is set but this machine lacks root, ip or iptables"
        );
        eprintln!("skipped: needs root, ip (iproute2) and iptables");
    }
    available
}

/// Transparent capture, as on a node: iptables redirects a workload's plain
/// connections to `listen.transparent`; the agent reads each one's original
/// destination (`SO_ORIGINAL_DST`) and decides it. The NetworkPolicy admits
/// the client to the server's port 7001 only: the echo on 7001 comes back
/// through the tunnel, 7002 is closed unanswered, and the access log names
/// both original destinations.
#[test]
fn redirected_connections_are_decided_for_their_original_destination() {
    if !netns_available() {
        return;
    }
    let ns = Netns(format!("ambit-tp-{}", std::process::id()));
    let ip = |args: &[&str]| {
        let status = Command::new("ip").args(args).status().unwrap();
        assert!(status.success(), "ip {args:?}");
    };
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "10.88.1.1/32", "dev", "lo"]);
    ip(&["-n", &ns.0, "addr", "add", "10.88.2.1/32", "dev", "lo"]);
    let rule = in_ns(
        &ns.0,
        "iptables",
        &[
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-s",
            "10.88.1.1",
            "-d",
            "10.88.2.1",
            "-j",
            "REDIRECT",
            "--to-ports",
            "15006",
        ],
    )
    .status()
    .unwrap();
    assert!(rule.success());

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cluster = "\
apiVersion: v1
kind: Namespace
metadata: {name: tp, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: tp, labels: {app: client}}
spec: {serviceAccountName: client, containers: [{name: c, image: x}]}
status: {podIP: 10.88.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: tp, labels: {app: server}}
spec: {serviceAccountName: server, containers: [{name: s, image: x}]}
status: {podIP: 10.88.2.1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-ingress, namespace: tp}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 7001}]}]
";
    std::fs::write(d.join("cluster.yaml"), cluster).unwrap();
    write_node(
        d,
        &[d.join("cluster.yaml")],
        "node: n1\ntrustDomain: cluster.local\ncaBundle: ca/ca.pem\nca: {cert: ca/ca.pem, key: ca/ca-key.pem}\n\
         tables: tables.json\naccessLog: access.log\n\
         listen: {inbound: '127.0.0.1:15008', outbound: '127.0.0.1:15001', admin: '127.0.0.1:15021', transparent: '0.0.0.0:15006'}\n\
         workloads:\n  - {workload: tp/client, address: 10.88.1.1, cert: issue, serviceAccount: client}\n  \
         - {workload: tp/server, address: 10.88.2.1, cert: issue, serviceAccount: server}\n",
    );

    let echo = r#"
import socket, threading
def serve(port):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('10.88.2.1', port))
    l.listen(16)
    while True:
        c, _ = l.accept()
        data = c.recv(100)
        c.sendall(b'echo %d: ' % port + data)
        c.close()
for p in (7001, 7002):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
threading.Event().wait()
"#;
    let _server = Running(in_ns(&ns.0, "python3", &["-c", echo]).spawn().unwrap());
    let _agent = Running(
        in_ns(
            &ns.0,
            env!("CARGO_BIN_EXE_ambit-agent"),
            &["--config", &d.join("agent.yaml").to_string_lossy()],
        )
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap(),
    );
    // The client: plain connections from the workload's address, after the
    // agent is ready.
    let client = r#"
import socket, time, json, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen('http://127.0.0.1:15021/ready', timeout=1)
        break
    except Exception:
        time.sleep(0.05)
out = {}
for port in (7001, 7002):
    s = socket.socket()
    s.settimeout(10)
    s.bind(('10.88.1.1', 0))
    s.connect(('10.88.2.1', port))
    s.sendall(b'hello')
    try:
        out[port] = s.recv(100).decode()
    except ConnectionResetError:
        out[port] = 'reset'
    s.close()
print(json.dumps(out))
"#;
    let out = in_ns(&ns.0, "python3", &["-c", client]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(r#""7001": "echo 7001: hello""#),
        "allowed: {stdout}"
    );
    assert!(
        stdout.contains(r#""7002": """#) || stdout.contains(r#""7002": "reset""#),
        "denied: {stdout}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(d.join("access.log")).unwrap_or_default();
        if log.lines().count() >= 3 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let line = |port: &str, decision: &str| {
        log.lines().any(|l| {
            l.contains(r#""direction":"outbound""#)
                && l.contains(&format!(r#""address":"10.88.2.1","port":{port}"#))
                && l.contains(&format!(r#""decision":"{decision}""#))
        })
    };
    assert!(line("7001", "allow"), "{log}");
    assert!(line("7002", "deny"), "{log}");
}
