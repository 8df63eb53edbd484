//! Agents on live loopback sockets with real TLS: carrying bytes,
//! refusing at the source and at the destination, certificates, identity
//! spoofing, reload and revocation.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ambit_runtime::identity::{self, Issued, SpiffeId, SpiffeServerVerifier, WorkloadCert};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::sign::CertifiedKey;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const BASE: u8 = 100;

async fn setup() -> Live {
    let world = World::new(BASE);
    let pods = pods(world.net);
    let tables = prepare(&world, &pods, "web", &[]).await;
    let agents = world.start(2, &pods, "").await;
    Live {
        world,
        pods,
        agents,
        tables,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_flows_carry_bytes_both_ways_small_and_large() {
    let s = setup().await;
    let (web, db) = (find(&s.pods, "shop/web"), find(&s.pods, "pay/db"));
    assert!(decides(&s.tables, web, db, 5432));
    let mut c = s.connect("shop/web", "pay/db", 5432).await.unwrap();
    round_trip(&mut c, b"hello through two agents").await;

    // 64 MiB each way, written and read concurrently, checked byte for byte.
    const SIZE: usize = 64 * 1024 * 1024;
    let (mut r, mut w) = c.into_split();
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        for _ in 0..SIZE / chunk.len() {
            w.write_all(&chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        for (k, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, (((got + k) % 65536) % 251) as u8, "byte {}", got + k);
        }
        got += n;
    }
    writer.await.unwrap();
    assert_eq!(got, SIZE);
    drop(r);

    // Both ends logged the connection with its bytes once it closed.
    let small = b"hello through two agents".len() as u64;
    for node in [1, 2] {
        let line = s
            .world
            .wait_log(node, |l| {
                l["decision"] == "allow" && l["bytes_sent"].as_u64() > Some(0)
            })
            .await;
        assert_eq!(
            line["bytes_sent"].as_u64(),
            Some(SIZE as u64 + small),
            "{line}"
        );
        assert_eq!(
            line["bytes_received"].as_u64(),
            Some(SIZE as u64 + small),
            "{line}"
        );
        assert_eq!(line["source"]["workload"], "shop/web");
        assert_eq!(line["destination"]["workload"], "pay/db");
        assert_eq!(
            line["source"]["identity"],
            "spiffe://cluster.local/ns/shop/sa/web"
        );
        assert!(
            line["decided_by"].as_array().is_some_and(|d| !d.is_empty()),
            "{line}"
        );
    }
    let m = s.agents[1].metrics();
    assert_eq!(
        metric(&m, "ambit_connections_opened_total{direction=\"inbound\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "ambit_bytes_total{direction=\"inbound\",flow=\"sent\"}"),
        Some((SIZE as u64 + small) as f64)
    );
    // Many streams share the one pooled connection of (web, node 2, db).
    for _ in 0..5 {
        let mut c = s.connect("shop/web", "pay/db", 5432).await.unwrap();
        round_trip(&mut c, b"again").await;
    }
    let m = s.agents[1].metrics();
    assert_eq!(
        metric(&m, "ambit_connections_opened_total{direction=\"inbound\"}"),
        Some(6.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_happen_where_the_policy_lives() {
    let s = setup().await;
    let p = |id| find(&s.pods, id);
    // The source's egress: refused by node 1, node 2 never asked.
    assert!(!decides(&s.tables, p("shop/batch"), p("pay/db"), 5432));
    let r = s.connect("shop/batch", "pay/db", 5432).await.unwrap_err();
    assert_eq!(
        r,
        Refused {
            status: 403,
            reason: "egress-denied".into()
        }
    );
    let line = s
        .world
        .wait_log(1, |l| l["reason"] == "egress-denied")
        .await;
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["direction"], "outbound");
    assert_eq!(line["source"]["workload"], "shop/batch");
    assert!(
        line["decided_by"].to_string().contains("batch-egress"),
        "{line}"
    );
    assert_eq!(
        metric(
            &s.agents[0].metrics(),
            "ambit_connections_denied_total{direction=\"outbound\",reason=\"egress-denied\"}"
        ),
        Some(1.0)
    );
    assert!(
        s.world.log(2).is_empty(),
        "node 2 saw a flow refused at its source"
    );

    // The destination's ingress (NetworkPolicy): refused by node 2.
    assert!(!decides(&s.tables, p("ops/tool"), p("pay/db"), 5432));
    let r = s.connect("ops/tool", "pay/db", 5432).await.unwrap_err();
    assert_eq!(
        r,
        Refused {
            status: 403,
            reason: "ingress-denied".into()
        }
    );
    let line = s
        .world
        .wait_log(2, |l| l["reason"] == "ingress-denied")
        .await;
    assert_eq!(line["direction"], "inbound");
    assert_eq!(line["source"]["workload"], "ops/tool");
    assert_eq!(
        line["source"]["identity"],
        "spiffe://cluster.local/ns/ops/sa/tool"
    );
    assert!(
        line["decided_by"].to_string().contains("db-ingress"),
        "{line}"
    );
    assert_eq!(
        metric(
            &s.agents[1].metrics(),
            "ambit_connections_denied_total{direction=\"inbound\",reason=\"ingress-denied\"}"
        ),
        Some(1.0)
    );

    // The destination's authorization: api may reach 6000 but not 5432.
    assert!(!decides(&s.tables, p("shop/api"), p("pay/db"), 5432));
    assert!(decides(&s.tables, p("shop/api"), p("pay/db"), 6000));
    let r = s.connect("shop/api", "pay/db", 5432).await.unwrap_err();
    assert_eq!(
        r,
        Refused {
            status: 401,
            reason: "authorization-denied".into()
        }
    );
    let line = s
        .world
        .wait_log(2, |l| l["reason"] == "authorization-denied")
        .await;
    assert!(
        line["decided_by"].to_string().contains("db-authz"),
        "{line}"
    );
    assert_eq!(
        metric(
            &s.agents[1].metrics(),
            "ambit_connections_denied_total{direction=\"inbound\",reason=\"authorization-denied\"}"
        ),
        Some(1.0)
    );
    let mut ok = s.connect("shop/api", "pay/db", 6000).await.unwrap();
    round_trip(&mut ok, b"audit").await;

    // The source agent passes the destination's refusal on and logs it.
    let line = s
        .world
        .wait_log(1, |l| {
            l["reason"]
                .as_str()
                .is_some_and(|r| r.contains("authorization-denied"))
        })
        .await;
    assert_eq!(line["status"], 401);

    // A malformed target.
    let tool = p("shop/web");
    let mut c = tokio::net::TcpStream::connect(s.proxy(1)).await.unwrap();
    let _ = tool;
    c.write_all(b"CONNECT not-an-address HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 400");
}

/// An HBONE client outside any agent: TLS 1.3 with `cert` (or none), from
/// `bind`, asking node `node` for `target` with `headers`.
async fn hbone(
    node: SocketAddr,
    bind: IpAddr,
    cert: Option<Arc<CertifiedKey>>,
    expect: SpiffeId,
    bundle: Arc<rustls::RootCertStore>,
    target: SocketAddr,
    headers: &[(&str, String)],
) -> Result<(u16, String), String> {
    let builder = rustls::ClientConfig::builder_with_provider(identity::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(bundle, expect)));
    let mut config = match cert {
        Some(c) => builder.with_client_cert_resolver(Arc::new(Fixed(c))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(bind, 0)).unwrap();
    let tcp = socket.connect(node).await.map_err(|e| e.to_string())?;
    let name =
        rustls_pki_types::ServerName::try_from(ambit_runtime::agent::sni_for(target.ip())).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| format!("h2: {e}"))?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(target.to_string());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .map_err(|e| format!("request: {e}"))?;
    let reason = resp
        .headers()
        .get("ambit-reason")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Ok((resp.status().as_u16(), reason))
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for Fixed {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

fn key(issued: &Issued) -> Arc<CertifiedKey> {
    WorkloadCert::from_issued(issued).unwrap().key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_certificates_of_the_trust_domain_from_the_ca_are_accepted() {
    let s = setup().await;
    let (web, db) = (find(&s.pods, "shop/web"), find(&s.pods, "pay/db"));
    let node2 = s.agents[1].bound().inbound;
    let bundle = identity::read_bundle(&s.world.path("ca/ca.pem")).unwrap();
    let db_id = SpiffeId::new("cluster.local", "pay", "db");
    let from = s.world.node_ip(1);
    let forwarded = [("forwarded", format!("for={}", web.ip))];
    let attempt = |cert: Option<Arc<CertifiedKey>>| {
        hbone(
            node2,
            from,
            cert,
            db_id.clone(),
            bundle.clone(),
            sock(db, 5432),
            &forwarded,
        )
    };

    // The control: web's own certificate from the CA is accepted.
    let good = s.world.ca.issue("shop", "web", 1).unwrap();
    assert_eq!(attempt(Some(key(&good))).await, Ok((200, String::new())));

    let other_ca = identity::Ca::generate("cluster.local", 1).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expired = s
        .world
        .ca
        .issue_between(
            "shop",
            "web",
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        )
        .unwrap();
    let mut foreign_ca =
        identity::Ca::load(&s.world.path("ca/ca.pem"), &s.world.path("ca/ca-key.pem")).unwrap();
    foreign_ca.trust_domain = "evil.example".into();
    let foreign = foreign_ca.issue("shop", "web", 1).unwrap();
    for (what, cert, reason) in [
        (
            "another CA",
            Some(key(&other_ca.issue("shop", "web", 1).unwrap())),
            "unknown-issuer",
        ),
        ("expired", Some(key(&expired)), "expired"),
        (
            "foreign trust domain",
            Some(key(&foreign)),
            "foreign-trust-domain",
        ),
        ("no certificate", None, "no-certificate"),
    ] {
        let r = attempt(cert).await;
        assert!(r.is_err(), "{what}: accepted: {r:?}");
        let series = format!("ambit_handshake_failures_total{{reason=\"{reason}\"}}");
        let mut seen = None;
        for _ in 0..100 {
            seen = metric(&s.agents[1].metrics(), &series);
            if seen.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen, Some(1.0), "{what}: {}", s.agents[1].metrics());
    }
    // Nothing refused at the handshake reached the log or a workload.
    assert!(s.world.log(2).iter().all(|l| l["decision"] == "allow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_cannot_take_another_identity() {
    let s = setup().await;
    let p = |id| find(&s.pods, id);
    let (web, api, db) = (p("shop/web"), p("shop/api"), p("pay/db"));
    assert!(decides(&s.tables, web, db, 5432) && !decides(&s.tables, api, db, 5432));

    // Through its agent, api is api whatever it sends: the agent names the
    // source by its address and ignores the client's headers.
    for headers in [
        format!("Forwarded: for={}\r\n", web.ip),
        format!("X-Forwarded-For: {}\r\n", web.ip),
        "Ambit-Identity: spiffe://cluster.local/ns/shop/sa/web\r\n".to_owned(),
    ] {
        let r = connect(s.proxy(1), api.ip, sock(db, 5432), &headers)
            .await
            .unwrap_err();
        assert_eq!(r.reason, "authorization-denied", "{headers}");
    }
    // A connection from an address that is no local workload is refused.
    let r = connect(s.proxy(1), s.world.node_ip(1), sock(db, 5432), "")
        .await
        .unwrap_err();
    assert_eq!(
        r,
        Refused {
            status: 403,
            reason: "unknown-source".into()
        }
    );

    // Straight to node 2 with api's real certificate, claiming web's address.
    let node2 = s.agents[1].bound().inbound;
    let bundle = identity::read_bundle(&s.world.path("ca/ca.pem")).unwrap();
    let db_id = SpiffeId::new("cluster.local", "pay", "db");
    let api_cert = key(&s.world.ca.issue("shop", "api", 1).unwrap());
    let web_cert = key(&s.world.ca.issue("shop", "web", 1).unwrap());
    let claim = |ip: IpAddr| [("forwarded", format!("for={ip}"))];
    let r = hbone(
        node2,
        s.world.node_ip(1),
        Some(api_cert.clone()),
        db_id.clone(),
        bundle.clone(),
        sock(db, 5432),
        &claim(web.ip),
    )
    .await;
    assert_eq!(r, Ok((401, "identity-mismatch".into())));
    // web's certificate, web's address, but not from web's node.
    let elsewhere = ip(s.world.net, 9, 1);
    let r = hbone(
        node2,
        elsewhere,
        Some(web_cert.clone()),
        db_id.clone(),
        bundle.clone(),
        sock(db, 5432),
        &claim(web.ip),
    )
    .await;
    assert_eq!(r, Ok((401, "source-not-behind-peer".into())));
    // No forwarded header: the connecting address is the source, and it is
    // no workload.
    let r = hbone(
        node2,
        elsewhere,
        Some(web_cert.clone()),
        db_id.clone(),
        bundle.clone(),
        sock(db, 5432),
        &[],
    )
    .await;
    assert_eq!(r, Ok((401, "unknown-source".into())));
    // A server certificate that is not the destination's is refused by the
    // client: ask node 2 for db while expecting cache's identity.
    let r = hbone(
        node2,
        s.world.node_ip(1),
        Some(web_cert.clone()),
        SpiffeId::new("cluster.local", "pay", "cache"),
        bundle.clone(),
        sock(db, 5432),
        &claim(web.ip),
    )
    .await;
    assert!(r.as_ref().is_err_and(|e| e.contains("handshake")), "{r:?}");
    // A malformed target.
    let r = hbone(
        node2,
        s.world.node_ip(1),
        Some(web_cert),
        db_id,
        bundle,
        sock(db, 5432),
        &[("forwarded", "for=garbage".into())],
    )
    .await;
    assert_eq!(r, Ok((400, "malformed-forwarded".into())));
    let line = s
        .world
        .wait_log(2, |l| {
            l["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("identity-mismatch"))
        })
        .await;
    assert_eq!(
        line["source"]["identity"],
        "spiffe://cluster.local/ns/shop/sa/api"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_table_revokes_open_flows_and_a_corrupt_one_is_refused() {
    let s = setup().await;
    let p = |id| find(&s.pods, id);
    let mut c = s.connect("shop/web", "pay/db", 5432).await.unwrap();
    round_trip(&mut c, b"before").await;
    assert_eq!(s.agents[1].generation(), 1);

    // db's authorization now admits api on 5432, not web.
    let revoking = compile(&cluster_yaml(&s.pods, "api"), s.world.dir.path());
    assert!(!decides(&revoking, p("shop/web"), p("pay/db"), 5432));
    let t0 = Instant::now();
    write_atomic(&s.world.tables_path(), &revoking);
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf))
        .await
        .expect("the revoked connection is closed within one second")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(s.agents[1].generation(), 2);
    let line = s
        .world
        .wait_log(2, |l| {
            l["reason"].as_str().is_some_and(|r| r.contains("revoked"))
        })
        .await;
    assert_eq!(line["bytes_sent"], 6);
    assert_eq!(
        metric(
            &s.agents[1].metrics(),
            "ambit_connections_revoked_total{direction=\"inbound\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        s.connect("shop/web", "pay/db", 5432)
            .await
            .unwrap_err()
            .status,
        401
    );
    let mut api = s.connect("shop/api", "pay/db", 5432).await.unwrap();
    round_trip(&mut api, b"now api").await;

    // A corrupt table is refused; generation 2 keeps deciding.
    write_atomic(&s.world.tables_path(), &revoking[..revoking.len() / 2]);
    let before = Instant::now();
    while metric(&s.agents[1].metrics(), "ambit_table_reload_failures_total").unwrap_or(0.0) < 1.0 {
        assert!(
            before.elapsed() < Duration::from_secs(2),
            "{}",
            s.agents[1].metrics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.agents[1].generation(), 2);
    assert_eq!(
        s.connect("shop/web", "pay/db", 5432)
            .await
            .unwrap_err()
            .status,
        401
    );
    round_trip(&mut api, b"still open").await;
    let mut api2 = s.connect("shop/api", "pay/db", 5432).await.unwrap();
    round_trip(&mut api2, b"and new ones").await;
    // A table for another trust domain is refused too.
    let other = String::from_utf8(revoking.clone()).unwrap().replace(
        "\"trust_domain\": \"cluster.local\"",
        "\"trust_domain\": \"other.example\"",
    );
    assert_ne!(other.as_bytes(), &revoking[..]);
    write_atomic(&s.world.tables_path(), other.as_bytes());
    assert!(
        matches!(s.agents[1].reload().await, ambit_runtime::Reload::Refused(r) if r.contains("trust domain"))
    );
    assert_eq!(s.agents[1].generation(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_table_denies_everything_until_one_arrives_through_a_configmap_swap() {
    let world = World::new(BASE);
    let pods = pods(world.net);
    for p in &pods {
        for (_, port) in &p.ports {
            echo(sock(p, *port)).await;
        }
    }
    // A ConfigMap volume: tables.json -> ..data/tables.json, ..data -> ..v1.
    let dir = world.dir.path();
    let tables = compile(&cluster_yaml(&pods, "web"), dir);
    let extra = "";
    let agents = world.start(2, &pods, extra).await;
    let (web, db) = (find(&pods, "shop/web"), find(&pods, "pay/db"));
    let admin = agents[1].bound().admin.unwrap();
    assert_eq!(get(admin, "/ready").await.0, 503);
    let r = connect(
        agents[0].bound().outbound.unwrap(),
        web.ip,
        sock(db, 5432),
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(
        r,
        Refused {
            status: 403,
            reason: "no-table".into()
        }
    );

    std::fs::create_dir(dir.join("..v1")).unwrap();
    std::fs::write(dir.join("..v1/tables.json"), &tables).unwrap();
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tables.json", dir.join("tables.json")).unwrap();
    let t0 = Instant::now();
    while agents.iter().any(|a| a.generation() == 0) {
        assert!(t0.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(admin, "/ready").await.0, 200);
    let (status, body) = get(admin, "/tables").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["generation"], 1);
    assert_eq!(v["sha256"], ambit_runtime::tables::sha256(&tables));
    let mut c = connect(
        agents[0].bound().outbound.unwrap(),
        web.ip,
        sock(db, 5432),
        "",
    )
    .await
    .unwrap();
    round_trip(&mut c, b"first table").await;

    // The kubelet's update: a new ..v2, then ..data swapped atomically.
    let revoking = compile(&cluster_yaml(&pods, "api"), dir);
    std::fs::create_dir(dir.join("..v2")).unwrap();
    std::fs::write(dir.join("..v2/tables.json"), &revoking).unwrap();
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..v1")).unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "revoked after the swap");
    // The first agent to reload closes the connection; each agent polls the
    // file on its own, so the other may be a few milliseconds behind.
    let t0 = Instant::now();
    while agents.iter().any(|a| a.generation() != 2) {
        assert!(t0.elapsed() < Duration::from_secs(2), "both agents reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, body) = get(admin, "/tables").await;
    assert!(body.contains(&ambit_runtime::tables::sha256(&revoking)));
    let (status, metrics) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("ambit_table_generation 2"), "{metrics}");
    assert!(metrics.contains("ambit_ready 1"));

    // Shutdown drains: the listener stops, open streams may finish.
    for a in agents {
        a.shutdown().await;
    }
    assert!(tokio::net::TcpStream::connect(admin).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_bound_handshakes_pending_connections_and_idle_tunnels() {
    let world = World::new(BASE);
    let pods = pods(world.net);
    prepare(&world, &pods, "web", &[]).await;
    let agents = world
        .start(
            2,
            &pods,
            "limits: {handshakeTimeout: 300ms, idleTimeout: 300ms, maxPending: 1}\n",
        )
        .await;
    let (web, db) = (find(&pods, "shop/web"), find(&pods, "pay/db"));

    // An open tunnel with no byte either way is closed after idleTimeout.
    let mut c = connect(
        agents[0].bound().outbound.unwrap(),
        web.ip,
        sock(db, 5432),
        "",
    )
    .await
    .unwrap();
    round_trip(&mut c, b"then silence").await;
    let t0 = Instant::now();
    let mut buf = [0u8; 4];
    let n = tokio::time::timeout(Duration::from_secs(3), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    // Whichever end's timer fires first closes the tunnel and says why.
    let idle = |node| {
        world
            .log(node)
            .iter()
            .any(|l| l["reason"] == "closed: idle timeout")
    };
    let t0 = Instant::now();
    while !(idle(1) || idle(2)) {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{:?} {:?}",
            world.log(1),
            world.log(2)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A peer that never finishes its handshake is dropped after
    // handshakeTimeout; while it is pending, maxPending (1) turns others away.
    let inbound = agents[1].bound().inbound;
    let mut stalled = tokio::net::TcpStream::connect(inbound).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut turned_away = tokio::net::TcpStream::connect(inbound).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(1), turned_away.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "dropped at once");
    let m = agents[1].metrics();
    assert_eq!(
        metric(
            &m,
            "ambit_connections_denied_total{direction=\"inbound\",reason=\"overload\"}"
        ),
        Some(1.0),
        "{m}"
    );
    let n = tokio::time::timeout(Duration::from_secs(2), stalled.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed after the handshake timeout");
    let mut seen = None;
    for _ in 0..50 {
        seen = metric(
            &agents[1].metrics(),
            "ambit_handshake_failures_total{reason=\"timeout\"}",
        );
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(1.0));
    // Once the slot is free, tunnels open again.
    let mut again = connect(
        agents[0].bound().outbound.unwrap(),
        web.ip,
        sock(db, 5432),
        "",
    )
    .await
    .unwrap();
    round_trip(&mut again, b"back").await;
}
