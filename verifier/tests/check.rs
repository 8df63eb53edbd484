//! Translation validation over every cluster of `testdata/`, and a planted
//! bug in the tables that it must find.

use std::path::{Path, PathBuf};

use ambit_compiler::admin::Action;
use ambit_compiler::compile::compile;
use ambit_compiler::load::{LoadOptions, load_paths};
use ambit_compiler::model::Cluster;
use ambit_compiler::table::Tables;
use ambit_verifier::check::{Outcome, check, check_in_parts};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn load(paths: &[PathBuf]) -> Cluster {
    let (cluster, _, diags) = load_paths(paths, &LoadOptions::default());
    assert!(!diags.has_errors(), "{paths:?}: {:?}", diags.0.first());
    cluster
}

/// The demo and every conformance case (its base cluster and its policies).
fn every_cluster() -> Vec<(String, Cluster)> {
    let mut out = vec![("demo".to_owned(), load(&[testdata().join("demo")]))];
    for suite in ["netpol", "tiers", "authz"] {
        let base = testdata().join("conformance").join(suite);
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&base)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        cases.sort();
        for case in cases {
            let name = format!("{suite}/{}", case.file_name().unwrap().to_string_lossy());
            let cluster = load(&[base.join("cluster.yaml"), case.join("policies.yaml")]);
            out.push((name, cluster));
        }
    }
    out
}

#[test]
fn every_testdata_cluster_is_proved() {
    let clusters = every_cluster();
    assert!(clusters.len() > 150);
    for (name, cluster) in clusters {
        let tables = compile(&cluster);
        match check(&cluster, &tables, &Default::default()) {
            Outcome::Proved { .. } => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

fn case(suite: &str, name: &str) -> Cluster {
    let base = testdata().join("conformance").join(suite);
    load(&[
        base.join("cluster.yaml"),
        base.join(name).join("policies.yaml"),
    ])
}

/// The mismatch `check` reports; the check in parts of three workloads
/// per end finds one too (so every part is asked: the flows of the bug are
/// in one).
fn mismatch(cluster: &Cluster, tables: &Tables) -> ambit_verifier::check::Mismatch {
    if let other @ (Outcome::Proved { .. } | Outcome::Unknown(_)) =
        check_in_parts(cluster, tables, &Default::default(), 3)
    {
        panic!("the planted bug went unnoticed in parts: {other:?}")
    }
    match check(cluster, tables, &Default::default()) {
        Outcome::Mismatch(m) => {
            assert_ne!(m.tables, m.semantics);
            m
        }
        other => panic!("the planted bug went unnoticed: {other:?}"),
    }
}

/// Parts of one workload per end: each flow, the outside addresses'
/// included, is in a part of its own; the demo is proved in parts as
/// whole, and a bug that only a flow to an outside address shows is found
/// from whichever workload it leaves.
#[test]
fn parts_of_one_workload_cover_every_flow() {
    let cluster = load(&[testdata().join("demo")]);
    let tables = compile(&cluster);
    for part in [1, 2, ambit_verifier::check::PART] {
        let outcome = check_in_parts(&cluster, &tables, &Default::default(), part);
        assert!(
            matches!(outcome, Outcome::Proved { .. }),
            "{part}: {outcome:?}"
        );
    }
    let (cluster, tables) = dropped_except();
    for part in [1, 2] {
        match check_in_parts(&cluster, &tables, &Default::default(), part) {
            Outcome::Mismatch(m) => assert!(m.to.starts_with("ip:"), "{part}: {m:?}"),
            other => panic!("{part}: {other:?}"),
        }
    }
}

#[test]
fn a_rule_dropped_from_a_table_entry_is_found() {
    let cluster = load(&[testdata().join("demo")]);
    let mut tables = compile(&cluster);
    // Drop one admitting rule from the first isolated ingress entry.
    let entry = tables
        .ingress
        .iter_mut()
        .find(|iso| !iso.rules.is_empty())
        .expect("the demo isolates some ingress");
    entry.rules.remove(0);
    let m = mismatch(&cluster, &tables);
    assert!(!m.tables && m.semantics, "{m:?}");
}

#[test]
fn a_flipped_admin_action_is_found() {
    let cluster = case("tiers", "01-cnp-admin-deny-overrides-np-allow");
    let mut tables = compile(&cluster);
    let rule = tables
        .rules
        .iter_mut()
        .find(|r| r.action == Some(Action::Deny))
        .expect("an admin deny rule");
    rule.action = Some(Action::Accept);
    mismatch(&cluster, &tables);
}

#[test]
fn a_shifted_port_range_is_found() {
    let cluster = case("netpol", "08-egress-deny-allow-dns");
    let mut tables = compile(&cluster);
    let port = tables
        .rules
        .iter_mut()
        .flat_map(|r| r.ports.iter_mut().flatten())
        .find_map(|p| match p {
            ambit_compiler::model::PortSpec::Range { start, end, .. } => Some((start, end)),
            _ => None,
        })
        .expect("a numeric port");
    *port.0 += 1;
    *port.1 += 1;
    let m = mismatch(&cluster, &tables);
    assert!(m.port == 53 || m.port == 54, "{m:?}");
}

#[test]
fn a_policy_detached_from_a_class_is_found() {
    let cluster = case("authz", "04-principals-exact");
    let mut tables = compile(&cluster);
    let class = tables
        .authz
        .classes
        .iter_mut()
        .find(|c| !c.policies.is_empty())
        .expect("a class with a policy");
    class.policies.clear();
    let m = mismatch(&cluster, &tables);
    assert!(m.tables && !m.semantics, "{m:?}");
}

/// Each part of the check leaves out the policies of namespaces its
/// workloads are not in: a table that applies such a policy to them is
/// still found wrong.
#[test]
fn a_network_policy_applied_in_another_namespace_is_found() {
    let cluster = case("netpol", "01-deny-all-ingress");
    let mut tables = compile(&cluster);
    let policy = tables
        .policies
        .iter()
        .position(|p| p.namespace == "x")
        .expect("the policy of x") as u32;
    let class = tables
        .classes
        .iter()
        .position(|c| c.namespace == "y")
        .expect("a class of y");
    assert!(!tables.ingress[class].isolated());
    tables.ingress[class].policies.push(policy);
    let m = mismatch(&cluster, &tables);
    assert!(m.to.starts_with("y/") && !m.tables && m.semantics, "{m:?}");
}

#[test]
fn an_authorization_policy_attached_in_another_namespace_is_found() {
    let cluster = case("authz", "04-principals-exact");
    let mut tables = compile(&cluster);
    let class = tables
        .classes
        .iter()
        .enumerate()
        .position(|(i, c)| {
            c.namespace == "bar"
                && tables.authz.classes[i].mesh != ambit_compiler::authz::MeshMode::None
        })
        .expect("a class of bar in the mesh");
    assert!(tables.authz.classes[class].policies.is_empty());
    tables.authz.classes[class].policies.push(0);
    let m = mismatch(&cluster, &tables);
    assert!(
        m.to.starts_with("bar/") && !m.tables && m.semantics,
        "{m:?}"
    );
}

#[test]
fn a_wrong_principal_is_found() {
    let cluster = case("authz", "04-principals-exact");
    let mut tables = compile(&cluster);
    let class = tables
        .authz
        .classes
        .iter_mut()
        .find(|c| c.principal.as_deref() == Some("cluster.local/ns/foo/sa/web"))
        .expect("the web class");
    class.principal = Some("cluster.local/ns/foo/sa/other".to_owned());
    let m = mismatch(&cluster, &tables);
    assert!(!m.tables && m.semantics, "{m:?}");
    assert_eq!(m.protocol, ambit_compiler::model::Protocol::Tcp);
}

#[test]
fn a_lost_strict_mtls_mode_is_found() {
    let cluster = case("authz", "41-peerauth-mesh-strict");
    let mut tables = compile(&cluster);
    for class in &mut tables.authz.classes {
        class.mtls.mode = ambit_compiler::authz::MtlsMode::Permissive;
    }
    let m = mismatch(&cluster, &tables);
    assert!(m.tables && !m.semantics, "{m:?}");
}

#[test]
fn a_wrong_mesh_mode_is_found() {
    let cluster = case("authz", "01-allow-nothing-namespace");
    let mut tables = compile(&cluster);
    for class in &mut tables.authz.classes {
        class.mesh = ambit_compiler::authz::MeshMode::None;
    }
    mismatch(&cluster, &tables);
}

/// A waypoint policy is enforced only by an L7 enforcer: losing it shows in
/// the full view, for an HTTP request or opaque TCP.
#[test]
fn a_detached_waypoint_policy_is_found_in_the_full_view() {
    let cluster = case("authz", "65-targetref-service-allow");
    let mut tables = compile(&cluster);
    let class = tables
        .authz
        .classes
        .iter_mut()
        .find(|c| !c.waypoint_policies.is_empty())
        .expect("a class behind a waypoint policy");
    class.waypoint_policies.clear();
    let m = mismatch(&cluster, &tables);
    assert_eq!(m.view, ambit_compiler::authz::View::Full, "{m:?}");
}

/// An HTTP rule's method changed in the tables: only requests tell.
#[test]
fn a_changed_method_is_found_with_a_request() {
    let cluster = case("authz", "20-methods-exact");
    let mut tables = compile(&cluster);
    let field = tables
        .authz
        .policies
        .iter_mut()
        .flat_map(|p| p.rules.iter_mut())
        .flat_map(|r| r.to.iter_mut().flatten())
        .flat_map(|e| e.fields.iter_mut())
        .find(|f| f.attr == ambit_compiler::authz::Attr::Method)
        .expect("a methods field");
    field.values = vec![ambit_compiler::authz::Pattern::Exact("PATCH".to_owned())];
    let m = mismatch(&cluster, &tables);
    assert_eq!(m.view, ambit_compiler::authz::View::Full, "{m:?}");
    let request = m.request.expect("found with a request");
    assert!(
        request.method.as_deref() == Some("PATCH") || m.semantics,
        "{request:?}"
    );
}

/// A cluster whose tables lost an ipBlock's `except`: only flows to
/// outside addresses show it.
fn dropped_except() -> (Cluster, Tables) {
    let cluster = case("netpol", "29-ipblock-egress-except");
    let mut tables = compile(&cluster);
    let block = tables
        .rules
        .iter_mut()
        .flat_map(|r| r.peers.ip_blocks.iter_mut())
        .find(|b| !b.except.is_empty())
        .expect("a block with an except");
    block.except.clear();
    (cluster, tables)
}

/// Flows to addresses outside the cluster are checked too.
#[test]
fn a_dropped_except_is_found_with_an_outside_address() {
    let (cluster, tables) = dropped_except();
    let m = mismatch(&cluster, &tables);
    assert!(m.to.starts_with("ip:"), "{m:?}");
    assert!(m.tables && !m.semantics, "{m:?}");
}

/// A cluster from YAML text.
fn cluster_of(text: &str) -> Cluster {
    let file = ambit_compiler::source::SourceFile::new("cluster.yaml", text);
    let mut diags = ambit_compiler::diag::Diagnostics::default();
    let cluster = ambit_compiler::load::load(&[file], &LoadOptions::default(), &mut diags);
    assert!(!diags.has_errors(), "{:?}", diags.0.first());
    cluster
}

/// Two Pods `a/p1` and `a/p2` alike, and `a/db`; a NetworkPolicy admits
/// `app: web` into `db` from 10.0.1.0/24 and into the web pods from each
/// other on port 80.
const TWINS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: a, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.1.5}
---
apiVersion: v1
kind: Pod
metadata: {name: p2, namespace: a, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.2.5}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: a, labels: {app: db}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.3.5}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: a}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{ipBlock: {cidr: 10.0.1.0/24}}]
";

fn class_of(tables: &Tables, id: &str) -> u32 {
    tables
        .workloads
        .iter()
        .find(|w| format!("{}/{}", w.namespace, w.name) == id)
        .expect("a workload")
        .class
}

/// The check proves one Pod of each group of Pods it cannot tell apart
/// (here `p1` and `p2`, both inside the block), and one flow between two
/// of a group: a table that no longer admits a web pod into the other,
/// wrong only between the two, is found.
#[test]
fn a_flow_between_two_pods_alike_is_checked() {
    let cluster = cluster_of(&TWINS.replace("10.0.1.0/24", "10.0.0.0/16"));
    let mut tables = compile(&cluster);
    assert_eq!(class_of(&tables, "a/p1"), class_of(&tables, "a/p2"));
    let web = class_of(&tables, "a/p1") as usize;
    assert!(tables.ingress[web].isolated() && !tables.ingress[web].rules.is_empty());
    tables.ingress[web].rules.clear();
    let m = mismatch(&cluster, &tables);
    assert!(
        m.from == "a/p1" && m.to == "a/p2" && m.port == 80 && !m.tables && m.semantics,
        "{m:?}"
    );
}

/// Pods alike but for addresses that an ipBlock tells apart are checked
/// each: tables that put `p2` (outside the block) in the class of `p1`
/// (inside it) let `p2` into `db`, and that is found.
#[test]
fn pods_an_ip_block_tells_apart_are_checked_each() {
    let cluster = cluster_of(TWINS);
    let mut tables = compile(&cluster);
    let (c1, c2) = (class_of(&tables, "a/p1"), class_of(&tables, "a/p2"));
    assert_ne!(c1, c2, "the block tells the two apart");
    for w in tables.workloads.iter_mut().filter(|w| w.name == "p2") {
        w.class = c1;
    }
    let m = mismatch(&cluster, &tables);
    assert!(
        m.from == "a/p2" && m.to == "a/db" && m.tables && !m.semantics,
        "{m:?}"
    );
}
