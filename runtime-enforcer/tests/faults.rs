//! Faults an agent meets, on live loopback sockets with real TLS: a peer
//! agent killed mid-stream, a destination nobody serves, a table file
//! deleted or truncated under a running agent, a certificate expiring during
//! the run, thousands of concurrent connections, and a storm of reloads while
//! traffic flows. In each the agent keeps running, decides every connection
//! by the table in force (each access-log line is checked against what
//! `ambit query` answers from that table), keeps the connections a change
//! did not revoke, and logs what happened. A longer soak of random traffic
//! and random policy changes is `#[ignore]`d here and run by CI.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ambit_compiler::authz::ExtAuthz;
use ambit_compiler::model::Protocol;
use ambit_compiler::probe::{Probe, answer};
use ambit_compiler::table::{Endpoint, Tables};
use ambit_runtime::{Agent, AgentConfig, Reload};
use support::*;
use tokio::io::AsyncReadExt;

const BASE: u8 = 160;

/// The tunnel tests' pods, and pay/gone on node 2: its port 7000 is open
/// to shop by policy, but nothing listens there.
fn fault_pods(net: u8) -> Vec<Pod> {
    let mut pods = pods(net);
    pods.push(Pod {
        namespace: "pay".into(),
        name: "gone".into(),
        labels: vec![("app".into(), "gone".into())],
        service_account: "gone".into(),
        ip: ip(net, 2, 12),
        ports: vec![("http".into(), 7000)],
        node: 2,
    });
    pods
}

/// Two nodes running the fault pods (every port served but pay/gone's)
/// under the tables `allowed_on_5432` names.
async fn scene(allowed_on_5432: &str, extra: &str) -> Live {
    let world = World::new(BASE);
    let pods = fault_pods(world.net);
    let tables = prepare(&world, &pods, allowed_on_5432, &["pay/gone"]).await;
    let agents = world.start(2, &pods, extra).await;
    Live {
        world,
        pods,
        agents,
        tables,
    }
}

/// Wait until `cond` holds, for at most `limit`.
async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The connection ends (EOF or reset) within `limit`.
async fn ends_within(c: &mut tokio::net::TcpStream, limit: Duration) {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, c.read(&mut buf)).await {
            Err(_) => panic!("the connection is still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_nobody_serves_is_an_error_not_an_allow_and_the_agent_goes_on() {
    let s = scene("web", "").await;
    let (web, gone) = (s.pod("shop/web"), s.pod("pay/gone"));
    let refused = s.connect("shop/web", "pay/gone", 7000).await.unwrap_err();
    assert!(
        (500..600).contains(&refused.status),
        "a gateway error: {refused:?}"
    );
    assert!(!refused.reason.is_empty(), "{refused:?}");
    let line = s
        .world
        .wait_log(2, |l| l["destination"]["port"] == 7000)
        .await;
    assert_eq!(line["decision"], "error", "{line}");
    assert_eq!(line["source"]["address"], web.ip.to_string());
    assert_eq!(line["destination"]["workload"], gone.id());
    // Nothing leaked and the agent serves the next connection.
    until(Duration::from_secs(2), "no connection left open", || {
        s.agents.iter().all(|a| a.open_connections() == 0)
    })
    .await;
    let mut c = s.connect("shop/web", "pay/db", 5432).await.unwrap();
    round_trip(&mut c, b"still serving").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_mid_stream_ends_its_connections_and_comes_back() {
    let mut s = scene("web", "limits: {drain: 1ms, connectTimeout: 1s}\n").await;
    let mut c = s.connect("shop/web", "pay/db", 5432).await.unwrap();
    round_trip(&mut c, b"before").await;
    let mut local = s.connect("shop/web", "shop/api", 8080).await.unwrap();
    round_trip(&mut local, b"same node").await;

    // Node 2's agent dies: no drain, every socket closed.
    let node2 = s.agents.pop().unwrap();
    node2.shutdown().await;
    ends_within(&mut c, Duration::from_secs(2)).await;
    let refused = s.connect("shop/web", "pay/db", 5432).await.unwrap_err();
    assert!((500..600).contains(&refused.status), "{refused:?}");
    // Node 1 goes on: its own traffic is untouched.
    round_trip(&mut local, b"unaffected").await;
    let mut again = s.connect("shop/api", "shop/web", 8080).await.unwrap();
    round_trip(&mut again, b"new local").await;
    let line = s
        .world
        .wait_log(1, |l| {
            l["destination"]["port"] == 5432 && l["decision"] == "error"
        })
        .await;
    assert!(line["reason"].as_str().is_some(), "{line}");

    // It restarts with the same configuration; node 1 reconnects.
    let config = AgentConfig::load(&s.world.path("node-2.yaml")).unwrap();
    s.agents.push(Agent::start(config).await.unwrap());
    let mut back = s.connect("shop/web", "pay/db", 5432).await.unwrap();
    round_trip(&mut back, b"after restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_deleted_or_truncated_under_the_agent_leaves_the_last_good_one_deciding() {
    let s = scene("web", "").await;
    let path = s.world.tables_path();
    let good = std::fs::read(&path).unwrap();
    let mut open = s.connect("shop/web", "pay/db", 5432).await.unwrap();
    round_trip(&mut open, b"open").await;
    let failures =
        |a: &Agent| metric(&a.metrics(), "ambit_table_reload_failures_total").unwrap_or(0.0);
    let batch_denied = async || {
        let refused = s.connect("shop/batch", "pay/db", 5432).await.unwrap_err();
        assert_eq!(refused.status, 403, "{refused:?}");
    };

    std::fs::remove_file(&path).unwrap();
    for a in &s.agents {
        assert!(matches!(a.reload().await, Reload::Refused(_)));
    }
    assert!(s.agents.iter().all(|a| a.generation() == 1));
    round_trip(&mut open, b"kept").await;
    assert!(s.connect("shop/web", "pay/db", 5432).await.is_ok());
    batch_denied().await;

    // Truncated in place, as a crashed writer leaves it.
    std::fs::write(&path, &good[..good.len() / 3]).unwrap();
    let before = failures(&s.agents[1]);
    for a in &s.agents {
        assert!(matches!(a.reload().await, Reload::Refused(_)));
    }
    assert!(failures(&s.agents[1]) > before);
    assert!(s.agents.iter().all(|a| a.generation() == 1));
    round_trip(&mut open, b"still kept").await;
    batch_denied().await;

    // A good table again: loaded, and it decides.
    let revoking = compile(&cluster_yaml(&s.pods, "api"), s.world.dir.path());
    write_atomic(&path, &revoking);
    for a in &s.agents {
        assert!(matches!(
            a.reload().await,
            Reload::Loaded { generation: 2, .. } | Reload::Unchanged
        ));
    }
    assert!(s.agents.iter().all(|a| a.generation() == 2));
    ends_within(&mut open, Duration::from_secs(1)).await;
    assert_eq!(
        s.connect("shop/web", "pay/db", 5432)
            .await
            .unwrap_err()
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_expiring_during_the_run_fails_closed_for_new_tunnels() {
    // pay/db presents a certificate of its own that expires in 3 s.
    let world = World::new(BASE);
    let pods = fault_pods(world.net);
    let tables = prepare(&world, &pods, "web", &["pay/gone"]).await;
    let now = time::OffsetDateTime::now_utc();
    let short = world
        .ca
        .issue_between(
            "pay",
            "db",
            now - time::Duration::minutes(1),
            now + time::Duration::seconds(3),
        )
        .unwrap();
    short.save(world.dir.path(), "db").unwrap();
    let db = find(&pods, "pay/db");
    let mut agents = Vec::new();
    for n in 1..=2u8 {
        let mut text = world.config(n, 2, &pods, "");
        text = text.replace(
            &format!(
                "{{workload: pay/db, address: {}, cert: issue, serviceAccount: db}}",
                db.ip
            ),
            &format!(
                "{{workload: pay/db, address: {}, cert: db.pem, key: db-key.pem}}",
                db.ip
            ),
        );
        let path = world.path(&format!("node-{n}.yaml"));
        std::fs::write(&path, text).unwrap();
        agents.push(
            Agent::start(AgentConfig::load(&path).unwrap())
                .await
                .unwrap(),
        );
    }
    let s = Live {
        world,
        pods,
        agents,
        tables,
    };
    let mut c = s.connect("shop/api", "pay/db", 6000).await.unwrap();
    round_trip(&mut c, b"while valid").await;

    tokio::time::sleep(Duration::from_secs(4)).await;
    // A new tunnel (another source identity) meets the expired certificate.
    let refused = s.connect("shop/web", "pay/db", 5432).await.unwrap_err();
    assert!((500..600).contains(&refused.status), "{refused:?}");
    let line = s
        .world
        .wait_log(1, |l| {
            l["destination"]["port"] == 5432 && l["decision"] == "error"
        })
        .await;
    let reason = line["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("expired"), "{line}");
    // The agents go on: the other workload of node 2 is reachable.
    let mut cache = s.connect("shop/batch", "pay/cache", 6379).await.unwrap();
    round_trip(&mut cache, b"cache").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dribbling_client_is_cut_off_and_one_that_stops_reading_is_held_back() {
    use tokio::io::AsyncWriteExt;
    let s = scene("web", "limits: {handshakeTimeout: 500ms}\n").await;
    let web = s.pod("shop/web");
    let proxy = s.agents[0].bound().outbound.unwrap();

    // A byte every 100 ms of a CONNECT request that never ends.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(web.ip, 0)).unwrap();
    let mut slow = socket.connect(proxy).await.unwrap();
    let t0 = Instant::now();
    let request = b"CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for b in request {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "the request was still being read after {:?}",
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // A client that writes and never reads: the echo's answer backs up to
    // it through both agents, and its writes stop instead of the agents
    // buffering without bound. Once it reads, every byte comes back.
    let mut c = s.connect("shop/web", "pay/db", 5432).await.unwrap();
    let total = 256 << 20;
    let chunk = vec![7u8; 1 << 20];
    let mut written = 0usize;
    let stalled = tokio::time::timeout(Duration::from_secs(3), async {
        while written < total {
            c.write_all(&chunk).await.unwrap();
            written += chunk.len();
        }
    })
    .await
    .is_err();
    assert!(stalled, "{written} bytes written without reading one");
    assert!(written < total);
    let (mut r, mut w) = c.into_split();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0usize;
        while got < written {
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {got} of {written} bytes");
            assert!(buf[..n].iter().all(|&b| b == 7));
            got += n;
        }
        got
    });
    // Finish the chunk in flight, then read everything back.
    w.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("everything comes back once the client reads")
        .unwrap();
    assert!(got >= written - chunk.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_concurrent_connections_are_carried_and_released() {
    // Each connection holds three descriptors in this process (client,
    // agent accept, agent to workload) and one in the workload's, a Python
    // echo server: the hard limit here may be 20,000 and cannot be raised.
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    if soft < hard {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();
    }
    assert!(
        hard >= 16_000,
        "5,000 connections need 16,000 descriptors; the limit is {hard}"
    );
    let world = World::new(BASE);
    let pods = fault_pods(world.net);
    let tables = prepare(&world, &pods, "web", &["pay/gone", "pay/db"]).await;
    let db = find(&pods, "pay/db");
    let mut workload = std::process::Command::new("python3")
        .arg("-c")
        .arg(ECHO_PY)
        .arg(db.ip.to_string())
        .arg("5432")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the workload");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(workload.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "listening");
    let agents = world.start(2, &pods, "limits: {maxPending: 4096}\n").await;
    let s = Arc::new(Live {
        world,
        pods,
        agents,
        tables,
    });
    const N: usize = 5_000;
    let mut held = Vec::with_capacity(N);
    for batch in 0..N / 250 {
        let mut tasks = Vec::new();
        for i in 0..250 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = s.connect("shop/web", "pay/db", 5432).await.unwrap();
                round_trip(&mut c, format!("{batch}/{i}").as_bytes()).await;
                c
            }));
        }
        for t in tasks {
            held.push(t.await.unwrap());
        }
    }
    assert_eq!(held.len(), N);
    assert!(
        s.agents[0].open_connections() >= N,
        "{}",
        s.agents[0].open_connections()
    );
    assert!(s.agents[1].open_connections() >= N);
    // Every one still carries bytes.
    for c in held.iter_mut().step_by(97) {
        round_trip(c, b"still").await;
    }
    drop(held);
    until(Duration::from_secs(10), "all released", || {
        s.agents.iter().all(|a| a.open_connections() == 0)
    })
    .await;
    let _ = workload.kill();
    let _ = workload.wait();
}

/// An asyncio echo server on ADDRESS PORT; says `listening` when it is.
const ECHO_PY: &str = r#"
import asyncio, sys
async def echo(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except ConnectionError:
        pass
    w.close()
async def main():
    server = await asyncio.start_server(echo, sys.argv[1], int(sys.argv[2]), backlog=4096)
    print("listening", flush=True)
    await server.serve_forever()
asyncio.run(main())
"#;

fn endpoint(tables: &Tables, name: &str) -> Endpoint {
    let (ns, w) = name.split_once('/').unwrap();
    Endpoint::Workload(tables.workload_index(ns, w).unwrap())
}

/// The decision `ambit query` gives for a flow (no HTTP request).
fn query(tables: &Tables, from: &str, to: &str, port: u16) -> bool {
    answer(
        tables,
        &Probe {
            from_name: from.to_owned(),
            to_name: to.to_owned(),
            from: endpoint(tables, from),
            to: endpoint(tables, to),
            port,
            protocol: Protocol::Tcp,
            request: None,
            ext_authz: ExtAuthz::Unknown,
        },
    )
    .allowed
}

/// The source's egress verdict in `ambit query`'s explanation: what the
/// source node enforces (the destination node decides the whole flow).
fn query_egress(tables: &Tables, from: &str, to: &str, port: u16) -> bool {
    let (f, t) = (endpoint(tables, from), endpoint(tables, to));
    let e = tables.explain(f, t, Protocol::Tcp, port);
    e.self_traffic || e.egress.allows()
}

/// Check one access-log line against the table of the generation it names:
/// an inbound line is the whole decision; an outbound line forwarded (or
/// refused locally) by the source's egress alone, the rest being the
/// destination's to decide with its own table.
fn check_line(tables: &Tables, line: &serde_json::Value) -> Option<()> {
    let from = line["source"]["workload"].as_str()?;
    let to = line["destination"]["workload"].as_str()?;
    let port = line["destination"]["port"].as_u64()? as u16;
    let decision = line["decision"].as_str()?;
    let reason = line["reason"].as_str().unwrap_or_default();
    match line["direction"].as_str()? {
        "inbound" => assert_eq!(decision != "deny", query(tables, from, to, port), "{line}"),
        _ => {
            let refused_here = decision == "deny" && reason.starts_with("egress-denied");
            assert_eq!(
                !refused_here,
                query_egress(tables, from, to, port),
                "{line}"
            );
        }
    }
    Some(())
}

/// Panics anywhere in this process (an agent's task included: tokio would
/// otherwise swallow them), counted from the first storm on.
static PANICS: AtomicU64 = AtomicU64::new(0);

fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// What a storm did.
#[derive(Debug, Default)]
struct Figures {
    reloads: usize,
    connections: u64,
    allowed: u64,
    denied: u64,
    checked: usize,
    survivor_round_trips: usize,
    panics: u64,
}

/// Reload the two agents `reloads` times (or for `duration`) with tables
/// drawn from `variants`, while random connections flow; then check every
/// access-log line against `ambit query` on the table of its generation.
/// `survivor` is a flow every variant allows: its connection, opened
/// first, must outlive every reload.
async fn storm(
    s: Arc<Live>,
    variants: &[Vec<u8>],
    stop_after: impl Fn(usize, Instant) -> bool,
    seed: u64,
    survivor: (&str, &str, u16),
) -> Figures {
    count_panics();
    let parsed: Vec<Tables> = variants
        .iter()
        .map(|v| Tables::from_json(v).unwrap())
        .collect();
    for t in &parsed {
        assert!(
            query(t, survivor.0, survivor.1, survivor.2),
            "the survivor is allowed by every variant"
        );
    }
    let flows: Vec<(String, String, u16)> = s
        .pods
        .iter()
        .flat_map(|a| {
            s.pods
                .iter()
                .filter(|b| b.name != "gone" && b.id() != a.id())
                .flat_map(move |b| b.ports.iter().map(move |(_, p)| (a.id(), b.id(), *p)))
        })
        .collect();
    // By generation, on each node: which variant.
    let mut generation: [HashMap<u64, usize>; 2] =
        [HashMap::from([(1, 0)]), HashMap::from([(1, 0)])];
    let mut survivor_conn = s.connect(survivor.0, survivor.1, survivor.2).await.unwrap();
    round_trip(&mut survivor_conn, b"first").await;

    let stop = Arc::new(AtomicBool::new(false));
    let (connections, allowed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut traffic = Vec::new();
    for w in 0..4u64 {
        let (s, stop, flows) = (s.clone(), stop.clone(), flows.clone());
        let (connections, allowed) = (connections.clone(), allowed.clone());
        traffic.push(tokio::spawn(async move {
            let mut rng = seed ^ (w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            while !stop.load(Ordering::Relaxed) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let (from, to, port) = &flows[(rng % flows.len() as u64) as usize];
                connections.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut c) = s.connect(from, to, *port).await {
                    allowed.fetch_add(1, Ordering::Relaxed);
                    // A revocation may close it under us: that is allowed.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        use tokio::io::AsyncWriteExt;
                        let _ = c.write_all(b"x").await;
                        let _ = c.read(&mut [0u8; 1]).await;
                    })
                    .await;
                }
            }
        }));
    }

    let mut figures = Figures::default();
    let (t0, mut current, mut rng) = (Instant::now(), 0usize, seed | 1);
    let mut last = [1u64, 1u64];
    while !stop_after(figures.reloads, t0) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let next = (current + 1 + (rng as usize % (variants.len() - 1).max(1))) % variants.len();
        write_atomic(&s.world.tables_path(), &variants[next]);
        for (n, a) in s.agents.iter().enumerate() {
            let _ = a.reload().await;
            let g = a.generation();
            for k in last[n] + 1..=g {
                generation[n].insert(k, next);
            }
            last[n] = g;
        }
        current = next;
        figures.reloads += 1;
        round_trip(&mut survivor_conn, b"survives").await;
        figures.survivor_round_trips += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        t.await.unwrap();
    }
    round_trip(&mut survivor_conn, b"last").await;
    drop(survivor_conn);
    until(Duration::from_secs(5), "connections closed", || {
        s.agents.iter().all(|a| a.open_connections() == 0)
    })
    .await;

    for node in [1u8, 2] {
        for line in s.world.log(node) {
            let g = line["table"].as_u64().unwrap();
            let variant = generation[node as usize - 1][&g];
            if check_line(&parsed[variant], &line).is_some() {
                figures.checked += 1;
            }
        }
    }
    figures.panics = PANICS.load(Ordering::SeqCst);
    assert_eq!(figures.panics, 0, "a task panicked during the storm");
    figures.connections = connections.load(Ordering::Relaxed);
    figures.allowed = allowed.load(Ordering::Relaxed);
    figures.denied = figures.connections - figures.allowed;
    figures
}

/// Policy variants: who may reach db on 5432, and whether cache is closed.
fn variants(s: &Live) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for allowed in ["web", "api", "batch"] {
        for closed_cache in [false, true] {
            let mut y = cluster_yaml(&s.pods, allowed);
            if closed_cache {
                y.push_str("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: cache-closed, namespace: pay}\nspec: {podSelector: {matchLabels: {app: cache}}, policyTypes: [Ingress]}\n");
            }
            out.push(compile(&y, s.world.dir.path()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_while_traffic_flows_keep_every_decision_exact() {
    let s = Arc::new(scene("web", "").await);
    let variants = variants(&s);
    let f = storm(
        s.clone(),
        &variants,
        |n, _| n >= 100,
        0x5eed,
        ("shop/api", "pay/db", 6000),
    )
    .await;
    assert_eq!(f.reloads, 100);
    assert_eq!(f.survivor_round_trips, 100);
    assert!(f.checked > 50, "{f:?}");
    assert!(f.allowed > 0 && f.denied > 0, "{f:?}");
    assert!(
        s.agents.iter().all(|a| a.generation() > 50),
        "{}",
        s.agents[0].generation()
    );
}

/// Minutes of random traffic and random policy changes (AMBIT_SOAK_SECS,
/// 120 by default). `cargo test -p ambit-runtime --test faults -- --ignored`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: run by CI with --ignored"]
#[allow(clippy::print_stderr)]
async fn soak_random_traffic_and_policy_changes() {
    let secs: u64 = std::env::var("AMBIT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("soak: {secs} s, seed {seed:#x}");
    let s = Arc::new(scene("web", "").await);
    let variants = variants(&s);
    let limit = Duration::from_secs(secs);
    let f = storm(
        s.clone(),
        &variants,
        move |_, t0| t0.elapsed() >= limit,
        seed,
        ("shop/api", "pay/db", 6000),
    )
    .await;
    eprintln!(
        "soak: {} reloads, {} connections ({} allowed, {} denied), {} logged decisions checked against query, 0 divergent, {} panics",
        f.reloads, f.connections, f.allowed, f.denied, f.checked, f.panics
    );
    assert!(f.checked > 0);
}
