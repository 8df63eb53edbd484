//! `ambit compile`: the tables are deterministic byte for byte whatever the
//! order of files and documents, written atomically, and readable back.

use std::fs;

use ambit_compiler::table::Tables;

use super::util::{ambit, ambit_in, root, transcript};

/// Split a multi-document file into its documents.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.starts_with("---") {
            docs.push(String::new());
        } else {
            let d = docs.last_mut().unwrap();
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .collect()
}

/// Compile `inputs` (relative to the repository), then the same documents
/// reversed and regrouped into files in another order: same bytes.
fn assert_order_independent(inputs: &[&str]) {
    let mut args = vec!["compile"];
    args.extend(inputs);
    args.extend(["-o", "json"]);
    let a = ambit(&args);
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );

    let mut docs = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = inputs.iter().map(|i| root().join(i)).collect();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(fs::read_dir(path).unwrap().flatten().map(|e| e.path()));
        } else if path.extension().is_some_and(|x| x == "yaml") {
            docs.extend(documents(&fs::read_to_string(&path).unwrap()));
        }
    }
    docs.reverse();
    let tmp = tempfile::tempdir().unwrap();
    for (i, chunk) in docs.chunks(3).enumerate() {
        fs::write(
            tmp.path().join(format!("{:02}.yaml", 99 - i)),
            chunk.join("---\n"),
        )
        .unwrap();
    }
    let b = ambit_in(tmp.path(), &["compile", ".", "-o", "json"]);
    assert_eq!(
        b.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
}

#[test]
fn tables_do_not_depend_on_file_or_document_order() {
    assert_order_independent(&["testdata/demo"]);
    // With the authorization layer: policies, PeerAuthentications, mesh config.
    for case in [
        "44-peerauth-port-level",
        "48-trust-domain-aliases-configmap",
        "65-targetref-service-allow",
        "30-allow-policies-union",
    ] {
        let policies = format!("testdata/conformance/authz/{case}/policies.yaml");
        assert_order_independent(&["testdata/conformance/authz/cluster.yaml", &policies]);
    }
    // With admin tiers: ties by name, the BaselineAdminNetworkPolicy after
    // Baseline ClusterNetworkPolicies, nodes.
    for case in [
        "55-anp-cnp-same-priority-ordered-by-name",
        "46-banp-and-cnp-baseline-together",
        "38-anp-nodes-peer-external-ip-and-host-network",
    ] {
        let policies = format!("testdata/conformance/tiers/{case}/policies.yaml");
        assert_order_independent(&["testdata/conformance/tiers/cluster.yaml", &policies]);
    }
}

#[test]
fn tables_round_trip_and_are_written_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tables.json");
    let out = ambit(&["compile", "testdata/demo", "-o", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let bytes = fs::read(&path).unwrap();
    let tables = Tables::from_json(&bytes).expect("the written tables read back");
    assert_eq!(
        tables.to_json().as_bytes(),
        &bytes[..],
        "serialization round-trips"
    );
    assert!(tables.input_hash.starts_with("sha256:"));
    // Only the target is left in the directory: no temporary files.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1);
}

/// A pipe (or a device such as `/dev/null`) given as the output is written
/// to, not replaced by a file.
#[cfg(unix)]
#[test]
fn a_pipe_as_output_is_written_to_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("tables.pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    let out = ambit(&["compile", "testdata/demo", "-o", fifo.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        super::util::transcript(&out)
    );
    let bytes = reader.join().unwrap();
    assert!(
        Tables::from_json(&bytes).is_ok(),
        "the tables came through the pipe"
    );
    assert!(
        fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "still a pipe"
    );
}

#[test]
fn a_table_from_another_format_is_refused() {
    let out = ambit(&["compile", "testdata/demo", "-o", "json"]);
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace("ambit.tables/v1", "ambit.tables/v0");
    assert!(Tables::from_json(text.as_bytes()).is_err());
    assert!(Tables::from_json(b"{\"format\": 1}").is_err());
}

#[test]
fn workloads_of_one_shape_share_a_class() {
    // 9 pods of the conformance cluster: x/a, y/a, z/a differ only by namespace;
    // a deny-all makes no difference to the grouping.
    let out = ambit(&[
        "compile",
        "testdata/conformance/netpol/cluster.yaml",
        "-o",
        "json",
    ]);
    let t = Tables::from_json(&out.stdout).unwrap();
    assert_eq!(t.workloads.len(), 10);
    assert_eq!(
        t.classes.len(),
        10,
        "labels differ per pod, namespaces differ"
    );
    let _ = root();
}

#[test]
fn kubectl_lists_and_owned_pods_load_as_one_workload() {
    // What `kubectl get ns,deploy,rs,pods,netpol -o yaml` prints: a List. The
    // Pod and ReplicaSet owned by the Deployment are the Deployment's workload,
    // which gets the pod's IP.
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("list.yaml");
    fs::write(
        &list,
        r#"apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop}
  spec:
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}}
      spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 8080, name: http}]}]}
- apiVersion: apps/v1
  kind: ReplicaSet
  metadata:
    name: web-5d9c7
    namespace: shop
    ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: "1"}]
  spec:
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}}
      spec: {containers: [{name: web, image: nginx}]}
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-5d9c7-abcde
    namespace: shop
    labels: {app: web}
    ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d9c7, uid: "2"}]
  spec: {containers: [{name: web, image: nginx}]}
  status: {podIP: 10.1.2.3}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: only-from-office, namespace: shop}
  spec:
    podSelector: {}
    ingress: [{from: [{ipBlock: {cidr: 192.0.2.0/24}}], ports: [{port: http}]}]
"#,
    )
    .unwrap();
    let out = ambit(&["compile", list.to_str().unwrap(), "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Tables::from_json(&out.stdout).unwrap();
    let names: Vec<_> = t
        .workloads
        .iter()
        .map(|w| format!("{}/{}", w.namespace, w.name))
        .collect();
    assert_eq!(names, ["shop/web"]);
    assert_eq!(
        t.workloads[0].ips,
        ["10.1.2.3".parse::<std::net::IpAddr>().unwrap()]
    );
    let q = ambit(&[
        "query",
        list.to_str().unwrap(),
        "--from",
        "ip:192.0.2.9",
        "--to",
        "shop/web",
        "--port",
        "8080",
    ]);
    assert_eq!(
        q.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&q.stdout)
    );
    let q = ambit(&[
        "query",
        list.to_str().unwrap(),
        "--from",
        "ip:198.51.100.1",
        "--to",
        "shop/web",
        "--port",
        "8080",
    ]);
    assert_eq!(q.status.code(), Some(1));
}

/// `--check` proves the demo's tables with Z3 and still writes them.
#[test]
fn check_proves_the_demo_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tables.json");
    let out = ambit(&[
        "compile",
        "testdata/demo",
        "--check",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("checked: the tables decide as the policy semantics for every flow between the 9 workloads"),
        "{stderr}"
    );
    assert!(path.exists());
}

/// With Istio policies the check covers the authorization layer, in both
/// views.
#[test]
fn check_proves_the_mesh_tables_with_authorization() {
    let out = ambit(&["compile", "testdata/mesh", "--check", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "with the authorization of an L4 enforcer and of an L7 one for any HTTP request"
        ),
        "{stderr}"
    );
}
