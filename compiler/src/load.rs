//! Loading: paths → files → YAML documents → typed resources → the cluster
//! model, with a located diagnostic for every problem.
//!
//! Reading goes on after each problem: a bad object is dropped alone and the
//! rest of its file is still read, so one run reports every problem.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::networking::v1 as networking;
use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::de::DeserializeOwned;

use crate::admin::{self, AdminPolicy, AdminSource};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::istio;
use crate::labels::Labels;
use crate::model::{
    Cluster, ContainerPort, NAMESPACE_NAME_LABEL, Namespace, Protocol, Workload, WorkloadKind,
};
use crate::netpol::{self, Collector, Locate};
use crate::source::{Location, SourceFile};
use crate::yaml::{self, Object, Seg};

/// Options of loading.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The namespace of namespaced objects that name none.
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".to_owned(),
        }
    }
}

/// Read the inputs: files, directories (searched recursively for `*.yaml` and
/// `*.yml`, in name order) and `-` for standard input.
pub fn read_inputs(paths: &[PathBuf], diags: &mut Diagnostics) -> Vec<SourceFile> {
    let mut files = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut bytes = Vec::new();
            match std::io::stdin().read_to_end(&mut bytes) {
                Ok(_) => push_text(&mut files, "<stdin>".into(), bytes, diags),
                Err(e) => diags.push(unreadable("<stdin>", &e)),
            }
        } else if p.is_dir() {
            let mut found = Vec::new();
            walk_dir(p, &mut found, diags);
            found.sort();
            for f in found {
                read_file(&f, &mut files, diags);
            }
        } else {
            read_file(p, &mut files, diags);
        }
    }
    files
}

fn walk_dir(dir: &Path, found: &mut Vec<PathBuf>, diags: &mut Diagnostics) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(unreadable(&dir.display().to_string(), &e));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if path.is_dir() {
            if !hidden {
                walk_dir(&path, found, diags);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            found.push(path);
        }
    }
}

fn read_file(path: &Path, files: &mut Vec<SourceFile>, diags: &mut Diagnostics) {
    match std::fs::read(path) {
        Ok(bytes) => push_text(files, path.display().to_string(), bytes, diags),
        Err(e) => diags.push(unreadable(&path.display().to_string(), &e)),
    }
}

fn push_text(files: &mut Vec<SourceFile>, name: String, bytes: Vec<u8>, diags: &mut Diagnostics) {
    match String::from_utf8(bytes) {
        Ok(text) => files.push(SourceFile::new(name, text)),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let file = SourceFile::new(name, text);
            let (line, col) = file.line_col(valid);
            let offset = file.offset(line, col - 1);
            diags.push(
                Diagnostic::new(Code::YamlSyntax, "the file is not valid UTF-8")
                    .with_help("YAML input must be UTF-8 text")
                    .at(&file, crate::source::Span::new(offset, 1)),
            );
        }
    }
}

fn unreadable(name: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(Code::UnreadablePath, format!("cannot read `{name}`: {e}"))
        .with_help("check the path; directories are searched for *.yaml and *.yml files")
}

/// Load a cluster from source files.
pub fn load(files: &[SourceFile], options: &LoadOptions, diags: &mut Diagnostics) -> Cluster {
    let mut loader = Loader {
        options,
        diags,
        cluster: Cluster::default(),
        seen: HashMap::new(),
        pods: Vec::new(),
        controllers: Vec::new(),
        policies: Vec::new(),
        authz: Vec::new(),
        admin: Vec::new(),
    };
    // Parsing (about two thirds of loading) runs one file ahead of typing
    // and indexing, on a second thread: the files arrive in order, and at
    // most two parsed files wait, so memory stays that of a few files.
    std::thread::scope(|scope| {
        let (parsed, next) = std::sync::mpsc::sync_channel(2);
        scope.spawn(move || {
            for file in files {
                let mut syntax = Vec::new();
                let docs = yaml::documents(file, &mut syntax);
                if parsed.send((docs, syntax)).is_err() {
                    return;
                }
            }
        });
        for (docs, syntax) in next {
            loader.diags.extend(syntax);
            for doc in &docs {
                for obj in doc.objects() {
                    loader.object(&obj);
                }
            }
        }
    });
    loader.finish()
}

struct Loader<'a> {
    options: &'a LoadOptions,
    diags: &'a mut Diagnostics,
    cluster: Cluster,
    /// (kind, namespace, name) → where it was first defined.
    seen: HashMap<(String, String, String), Option<Location>>,
    pods: Vec<(Workload, Vec<OwnerReference>)>,
    controllers: Vec<(Workload, Vec<OwnerReference>)>,
    policies: Vec<(crate::model::NetworkPolicy, networking::NetworkPolicy)>,
    authz: Vec<(crate::authz::AuthzPolicy, istio::AuthorizationPolicy)>,
    /// Admin policies with where their priority is written.
    admin: Vec<(AdminPolicy, AdminSource, Option<Location>)>,
}

impl Loader<'_> {
    fn object(&mut self, obj: &Object<'_>) {
        let api_version = obj.str_at(&["apiVersion".into()]);
        let kind = obj.str_at(&["kind".into()]);
        if api_version.is_none() && kind.is_none() && obj.node_at(&["metadata".into()]).is_none() {
            // Not a Kubernetes object at all (Helm values, a probe list, ...).
            *self
                .cluster
                .skipped
                .entry("(not a Kubernetes object)".to_owned())
                .or_default() += 1;
            return;
        }
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            let missing = if api_version.is_none() {
                "apiVersion"
            } else {
                "kind"
            };
            self.diags.push(
                Diagnostic::new(Code::MissingField, format!("the object has no `{missing}`"))
                    .with_help("every Kubernetes object starts with `apiVersion` and `kind`")
                    .at(obj.file(), obj.span()),
            );
            return;
        };
        match (api_version, kind) {
            ("v1", "Namespace") => {
                self.typed::<core::Namespace>(obj, |l, ns, o| l.namespace(ns, o))
            }
            ("v1", "Pod") => self.typed::<core::Pod>(obj, |l, p, o| l.pod(p, o)),
            ("v1", "ServiceAccount") => self.typed::<core::ServiceAccount>(obj, |l, sa, o| {
                l.identify("ServiceAccount", &sa.metadata, o);
            }),
            ("v1", "Service") => self.typed::<core::Service>(obj, |l, s, o| l.service(s, o)),
            ("v1", "ConfigMap") => self.typed::<core::ConfigMap>(obj, |l, c, o| l.config_map(c, o)),
            ("security.istio.io/v1" | "security.istio.io/v1beta1", "AuthorizationPolicy") => {
                self.typed::<istio::AuthorizationPolicy>(obj, |l, ap, o| {
                    l.authorization_policy(ap, o)
                })
            }
            ("security.istio.io/v1" | "security.istio.io/v1beta1", "PeerAuthentication") => {
                self.typed::<istio::PeerAuthentication>(obj, |l, pa, o| {
                    l.peer_authentication(pa, o)
                })
            }
            ("apps/v1", "Deployment") => self.typed::<apps::Deployment>(obj, |l, d, o| {
                let t = Some(&d.spec.template);
                l.controller(
                    WorkloadKind::Deployment,
                    &d.metadata,
                    t,
                    o,
                    &["spec", "template"],
                );
            }),
            ("apps/v1", "StatefulSet") => self.typed::<apps::StatefulSet>(obj, |l, d, o| {
                let t = Some(&d.spec.template);
                l.controller(
                    WorkloadKind::StatefulSet,
                    &d.metadata,
                    t,
                    o,
                    &["spec", "template"],
                );
            }),
            ("apps/v1", "DaemonSet") => self.typed::<apps::DaemonSet>(obj, |l, d, o| {
                let t = Some(&d.spec.template);
                l.controller(
                    WorkloadKind::DaemonSet,
                    &d.metadata,
                    t,
                    o,
                    &["spec", "template"],
                );
            }),
            ("apps/v1", "ReplicaSet") => self.typed::<apps::ReplicaSet>(obj, |l, d, o| {
                let t = d.spec.template.as_ref();
                l.controller(
                    WorkloadKind::ReplicaSet,
                    &d.metadata,
                    t,
                    o,
                    &["spec", "template"],
                );
            }),
            ("batch/v1", "Job") => self.typed::<batch::Job>(obj, |l, d, o| {
                let t = d.spec.as_ref().map(|s| &s.template);
                l.controller(WorkloadKind::Job, &d.metadata, t, o, &["spec", "template"]);
            }),
            ("batch/v1", "CronJob") => self.typed::<batch::CronJob>(obj, |l, d, o| {
                let t = d.spec.job_template.spec.as_ref().map(|s| &s.template);
                l.controller(
                    WorkloadKind::CronJob,
                    &d.metadata,
                    t,
                    o,
                    &["spec", "jobTemplate", "spec", "template"],
                );
            }),
            ("v1", "Node") => self.typed::<core::Node>(obj, |l, n, o| l.node(n, o)),
            ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy") => {
                self.typed::<admin::ClusterNetworkPolicy>(obj, |l, p, o| {
                    let lowered = admin::lower_cnp(&p, o);
                    l.admin_policy("ClusterNetworkPolicy", &p.metadata, lowered, o, || {
                        AdminSource::Cluster(p.clone())
                    })
                })
            }
            ("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy") => {
                self.typed::<admin::AdminNetworkPolicy>(obj, |l, p, o| {
                    let lowered = admin::lower_anp(&p, o);
                    l.admin_policy("AdminNetworkPolicy", &p.metadata, lowered, o, || {
                        AdminSource::Admin(p.clone())
                    })
                })
            }
            ("policy.networking.k8s.io/v1alpha1", "BaselineAdminNetworkPolicy") => {
                self.typed::<admin::BaselineAdminNetworkPolicy>(obj, |l, p, o| {
                    let lowered = admin::lower_banp(&p, o);
                    l.admin_policy(
                        "BaselineAdminNetworkPolicy",
                        &p.metadata,
                        lowered,
                        o,
                        || AdminSource::Baseline(p.clone()),
                    )
                })
            }
            ("networking.k8s.io/v1", "NetworkPolicy") => {
                self.typed::<networking::NetworkPolicy>(obj, |l, np, o| l.network_policy(np, o))
            }
            _ => {
                *self
                    .cluster
                    .skipped
                    .entry(format!("{api_version}/{kind}"))
                    .or_default() += 1
            }
        }
    }

    fn typed<T: DeserializeOwned>(
        &mut self,
        obj: &Object<'_>,
        then: impl FnOnce(&mut Self, T, &Object<'_>),
    ) {
        match obj.typed::<T>() {
            Ok(t) => then(self, t, obj),
            Err(d) => self.diags.push(d),
        }
    }

    /// Check name and uniqueness; returns the effective namespace (empty for
    /// cluster-scoped kinds) when the object is to be kept.
    fn identify(&mut self, kind: &str, meta: &ObjectMeta, obj: &Object<'_>) -> Option<String> {
        *self.cluster.read.entry(kind.to_owned()).or_default() += 1;
        let Some(name) = meta.name.clone().filter(|n| !n.is_empty()) else {
            self.diags.push(
                Diagnostic::new(
                    Code::MissingField,
                    format!("the {kind} has no `metadata.name`"),
                )
                .with_help("give the object a name")
                .at(
                    obj.file(),
                    obj.locate_key(&["metadata".into(), "name".into()]),
                ),
            );
            return None;
        };
        let cluster_scoped = matches!(
            kind,
            "Namespace"
                | "Node"
                | "ClusterNetworkPolicy"
                | "AdminNetworkPolicy"
                | "BaselineAdminNetworkPolicy"
        );
        let namespace = if cluster_scoped {
            String::new()
        } else {
            meta.namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| self.options.default_namespace.clone())
        };
        let here = Locate::locate(obj, &["metadata".into(), "name".into()]);
        let key = (kind.to_owned(), namespace.clone(), name.clone());
        if let Some(first) = self.seen.get(&key) {
            let at = first
                .as_ref()
                .map(|l| format!(" (first defined at {})", l.display()));
            let what = if namespace.is_empty() {
                name
            } else {
                format!("{namespace}/{name}")
            };
            self.diags.push(
                Diagnostic::new(Code::DuplicateObject, format!("duplicate {kind} `{what}`"))
                    .with_help(format!(
                        "each kind/namespace/name must be unique in the input{}",
                        at.unwrap_or_default()
                    ))
                    .at_location(here),
            );
            return None;
        }
        self.seen.insert(key, here);
        self.check_labels(meta.labels.as_ref(), obj, &["metadata", "labels"]);
        if !namespace.is_empty() {
            self.cluster
                .namespaces
                .entry(namespace.clone())
                .or_insert_with(|| Namespace::implied(&namespace));
        }
        Some(namespace)
    }

    fn check_labels(
        &mut self,
        labels: Option<&Labels>,
        obj: &Object<'_>,
        at: &[&'static str],
    ) -> bool {
        let mut ok = true;
        let base: Vec<Seg> = at.iter().map(|s| Seg::Key(s)).collect();
        let mut c = Collector {
            at: obj,
            diags: &mut self.diags.0,
        };
        for (k, v) in labels.into_iter().flatten() {
            let mut p = base.clone();
            p.push(Seg::Owned(k.clone()));
            ok &= netpol::check_label(&mut c, k, Some(v), &p);
        }
        ok
    }

    fn namespace(&mut self, ns: core::Namespace, obj: &Object<'_>) {
        if self.identify("Namespace", &ns.metadata, obj).is_none() {
            return;
        }
        let name = ns.metadata.name.clone().unwrap_or_default();
        let mut labels = ns.metadata.labels.clone().unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.clone());
        self.cluster.namespaces.insert(
            name.clone(),
            Namespace {
                name,
                labels,
                declared: true,
            },
        );
    }

    fn pod(&mut self, pod: core::Pod, obj: &Object<'_>) {
        let Some(namespace) = self.identify("Pod", &pod.metadata, obj) else {
            return;
        };
        let mut w = workload(
            WorkloadKind::Pod,
            namespace,
            &pod.metadata,
            pod.metadata.labels.clone(),
            pod.metadata.annotations.as_ref(),
            pod.spec.as_ref(),
            obj,
        );
        if let Some(status) = &pod.status {
            let mut ips: Vec<&str> = status
                .pod_ips
                .iter()
                .flatten()
                .map(|p| p.ip.as_str())
                .collect();
            ips.extend(status.pod_ip.as_deref());
            w.ips = ips
                .iter()
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .collect();
            w.ips.sort();
            w.ips.dedup();
        }
        let owners = pod.metadata.owner_references.clone().unwrap_or_default();
        self.pods.push((w, owners));
    }

    fn controller(
        &mut self,
        kind: WorkloadKind,
        meta: &ObjectMeta,
        template: Option<&core::PodTemplateSpec>,
        obj: &Object<'_>,
        template_path: &[&'static str],
    ) {
        let Some(namespace) = self.identify(&format!("{kind:?}"), meta, obj) else {
            return;
        };
        let mut labels_path = template_path.to_vec();
        labels_path.extend(["metadata", "labels"]);
        let labels = template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone());
        if !self.check_labels(labels.as_ref(), obj, &labels_path) {
            return;
        }
        let spec = template.and_then(|t| t.spec.as_ref());
        let annotations = template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref());
        let w = workload(kind, namespace, meta, labels, annotations, spec, obj);
        let owners = meta.owner_references.clone().unwrap_or_default();
        self.controllers.push((w, owners));
    }

    fn service(&mut self, s: core::Service, obj: &Object<'_>) {
        let Some(namespace) = self.identify("Service", &s.metadata, obj) else {
            return;
        };
        let selector = s.spec.as_ref().and_then(|sp| sp.selector.clone());
        self.cluster.services.push(crate::model::Service {
            namespace,
            name: s.metadata.name.clone().unwrap_or_default(),
            selector,
        });
    }

    /// Only the `istio` ConfigMap of `istio-system` (the mesh config) matters.
    fn config_map(&mut self, c: core::ConfigMap, obj: &Object<'_>) {
        let is_mesh = c.metadata.name.as_deref() == Some("istio")
            && c.metadata.namespace.as_deref() == Some(crate::authz::DEFAULT_ROOT_NAMESPACE);
        if !is_mesh {
            *self
                .cluster
                .skipped
                .entry("v1/ConfigMap".to_owned())
                .or_default() += 1;
            return;
        }
        if self.identify("ConfigMap", &c.metadata, obj).is_none() {
            return;
        }
        let text = c
            .data
            .as_ref()
            .and_then(|d| d.get("mesh"))
            .cloned()
            .unwrap_or_default();
        match istio::mesh_settings(&text) {
            Ok(m) => self.cluster.mesh = m,
            Err(e) => self.diags.push(
                Diagnostic::new(
                    Code::InvalidMeshConfig,
                    format!("the mesh config in `data.mesh` is not valid: {e}"),
                )
                .with_help("`data.mesh` holds MeshConfig as YAML text (trustDomain, trustDomainAliases, rootNamespace, ...)")
                .at(obj.file(), obj.locate(&["data".into(), "mesh".into()])),
            ),
        }
    }

    fn authorization_policy(&mut self, ap: istio::AuthorizationPolicy, obj: &Object<'_>) {
        let Some(namespace) = self.identify("AuthorizationPolicy", &ap.metadata, obj) else {
            return;
        };
        match istio::lower_authz(&ap, &namespace, obj) {
            Ok(ir) => {
                let mut ap = ap;
                ap.metadata.namespace = Some(namespace);
                self.authz.push((ir, ap));
            }
            Err(ds) => self.diags.extend(ds),
        }
    }

    fn peer_authentication(&mut self, pa: istio::PeerAuthentication, obj: &Object<'_>) {
        let Some(namespace) = self.identify("PeerAuthentication", &pa.metadata, obj) else {
            return;
        };
        match istio::lower_peer_authn(&pa, &namespace, obj) {
            Ok(ir) => self.cluster.peer_authentications.push(ir),
            Err(ds) => self.diags.extend(ds),
        }
    }

    fn node(&mut self, n: core::Node, obj: &Object<'_>) {
        if self.identify("Node", &n.metadata, obj).is_none() {
            return;
        }
        let mut addresses: Vec<IpAddr> = n
            .status
            .iter()
            .flat_map(|s| s.addresses.iter().flatten())
            .filter_map(|a| a.address.parse().ok())
            .collect();
        addresses.sort();
        addresses.dedup();
        self.cluster.nodes.push(admin::Node {
            name: n.metadata.name.clone().unwrap_or_default(),
            labels: n.metadata.labels.clone().unwrap_or_default(),
            addresses,
        });
    }

    fn admin_policy(
        &mut self,
        kind: &str,
        meta: &ObjectMeta,
        (policy, diags): admin::Lowered,
        obj: &Object<'_>,
        source: impl FnOnce() -> AdminSource,
    ) {
        if self.identify(kind, meta, obj).is_none() {
            return;
        }
        self.diags.extend(diags);
        if let Some(policy) = policy {
            let at = Locate::locate(obj, &["spec".into(), "priority".into()]);
            self.admin.push((policy, source(), at));
        }
    }

    fn network_policy(&mut self, np: networking::NetworkPolicy, obj: &Object<'_>) {
        let Some(namespace) = self.identify("NetworkPolicy", &np.metadata, obj) else {
            return;
        };
        match netpol::lower(&np, &namespace, obj) {
            Ok(ir) => {
                let mut np = np;
                np.metadata.namespace = Some(namespace);
                self.policies.push((ir, np));
            }
            Err(ds) => self.diags.extend(ds),
        }
    }

    fn finish(mut self) -> Cluster {
        // A Pod (or ReplicaSet, or Job) owned by a controller that is also in
        // the input is the same workload: keep the controller, give it the
        // pod IPs.
        let mut by_name: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut workloads: Vec<Workload> = Vec::new();
        let mut owned: Vec<(Workload, Vec<OwnerReference>)> = Vec::new();
        let present: std::collections::HashSet<(String, String, String)> = self
            .controllers
            .iter()
            .map(|(w, _)| (format!("{:?}", w.kind), w.namespace.clone(), w.name.clone()))
            .collect();
        let owner_of = |w: &Workload, owners: &[OwnerReference]| {
            owners
                .iter()
                .find(|o| present.contains(&(o.kind.clone(), w.namespace.clone(), o.name.clone())))
                .map(|o| (o.kind.clone(), o.name.clone()))
        };
        let mut parent: HashMap<(String, String, String), (String, String)> = HashMap::new();
        for (w, owners) in self.controllers.drain(..) {
            if let Some(o) = owner_of(&w, &owners) {
                parent.insert(
                    (format!("{:?}", w.kind), w.namespace.clone(), w.name.clone()),
                    o,
                );
                owned.push((w, owners));
            } else {
                workloads.push(w);
            }
        }
        for (w, owners) in self.pods.drain(..) {
            if owner_of(&w, &owners).is_some() {
                owned.push((w, owners));
            } else {
                workloads.push(w);
            }
        }
        workloads
            .sort_by(|a, b| (&a.namespace, &a.name, a.kind).cmp(&(&b.namespace, &b.name, b.kind)));
        for (i, w) in workloads.iter().enumerate() {
            by_name
                .entry((w.namespace.clone(), w.name.clone()))
                .or_insert(i);
        }
        for (w, owners) in owned {
            // Follow the owner chain up to a top-level workload.
            let mut cur = owner_of(&w, &owners);
            let mut hops = 0;
            while let Some((kind, name)) = cur.clone() {
                match parent.get(&(kind, w.namespace.clone(), name)) {
                    Some(next) if hops < 8 => {
                        cur = Some(next.clone());
                        hops += 1;
                    }
                    _ => break,
                }
            }
            if let Some((_, name)) = cur
                && let Some(&i) = by_name.get(&(w.namespace.clone(), name))
            {
                workloads[i].ips.extend(w.ips);
                workloads[i].ips.sort();
                workloads[i].ips.dedup();
            }
        }
        // Workload names are what probes use: they must be unique per namespace.
        let mut kept: Vec<Workload> = Vec::with_capacity(workloads.len());
        for w in workloads {
            if let Some(prev) = kept.last()
                && prev.namespace == w.namespace
                && prev.name == w.name
            {
                self.diags.push(
                    Diagnostic::new(
                        Code::DuplicateObject,
                        format!(
                            "two workloads are named `{}`: a {:?} and a {:?}",
                            w.id(),
                            prev.kind,
                            w.kind
                        ),
                    )
                    .with_help("probes name workloads by namespace/name; rename one of them")
                    .at_location(w.location.clone()),
                );
                continue;
            }
            kept.push(w);
        }
        self.cluster.workloads = kept;

        self.policies
            .sort_by(|a, b| (&a.0.namespace, &a.0.name).cmp(&(&b.0.namespace, &b.0.name)));
        let (ir, typed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.policies).into_iter().unzip();
        self.cluster.network_policies = ir;
        self.cluster.network_policy_sources = typed;
        self.authz
            .sort_by(|a, b| (&a.0.namespace, &a.0.name).cmp(&(&b.0.namespace, &b.0.name)));
        let (ir, typed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.authz).into_iter().unzip();
        self.cluster.authorization_policies = ir;
        self.cluster.authorization_policy_sources = typed;
        self.admin
            .sort_by(|a, b| (a.0.tier, a.0.order_key()).cmp(&(b.0.tier, b.0.order_key())));
        self.priority_ties();
        let (ir, typed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.admin)
            .into_iter()
            .map(|(p, s, _)| (p, s))
            .unzip();
        self.cluster.admin_policies = ir;
        self.cluster.admin_policy_sources = typed;
        self.cluster.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        self.cluster
            .peer_authentications
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        self.cluster
            .services
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        self.cluster
    }
}

impl Loader<'_> {
    /// Warn about policies of one tier and priority that select common pods
    /// in one direction: the API leaves their order undefined.
    fn priority_ties(&mut self) {
        let ns_labels = |ns: &str| self.cluster.namespaces.get(ns).map(|n| &n.labels);
        let selects = |p: &AdminPolicy, w: &Workload| {
            !w.host_network
                && p.subject.pods.matches(&w.labels)
                && ns_labels(&w.namespace).is_some_and(|l| p.subject.namespaces.matches(l))
        };
        for (i, (b, _, at)) in self.admin.iter().enumerate() {
            let Some(earlier) = self.admin[..i].iter().find(|(a, _, _)| {
                a.tier == b.tier
                    && a.priority.is_some()
                    && a.priority == b.priority
                    && ((!a.ingress.is_empty() && !b.ingress.is_empty())
                        || (!a.egress.is_empty() && !b.egress.is_empty()))
                    && self
                        .cluster
                        .workloads
                        .iter()
                        .any(|w| selects(a, w) && selects(b, w))
            }) else {
                continue;
            };
            let a = &earlier.0;
            self.diags.push(
                Diagnostic::new(
                    Code::PriorityTie,
                    format!(
                        "{} `{}` and {} `{}` are both {} tier, priority {}, and select common pods",
                        a.kind.as_str(),
                        a.name,
                        b.kind.as_str(),
                        b.name,
                        b.tier.as_str(),
                        b.priority.unwrap_or_default()
                    ),
                )
                .with_help(format!(
                    "the API leaves their order undefined; ambit evaluates `{}` first (by name). Give them distinct priorities",
                    a.name
                ))
                .at_location(at.clone()),
            );
        }
    }
}

fn workload(
    kind: WorkloadKind,
    namespace: String,
    meta: &ObjectMeta,
    labels: Option<Labels>,
    annotations: Option<&BTreeMap<String, String>>,
    spec: Option<&core::PodSpec>,
    obj: &Object<'_>,
) -> Workload {
    #[allow(deprecated)]
    let service_account = spec
        .and_then(|s| {
            s.service_account_name
                .clone()
                .or_else(|| s.service_account.clone())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let mut ports = Vec::new();
    if let Some(spec) = spec {
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        for c in spec.containers.iter().chain(sidecars) {
            for p in c.ports.iter().flatten() {
                let protocol = p
                    .protocol
                    .as_deref()
                    .and_then(Protocol::parse)
                    .unwrap_or(Protocol::Tcp);
                if let Ok(port) = u16::try_from(p.container_port)
                    && port > 0
                {
                    ports.push(ContainerPort {
                        name: p.name.clone(),
                        protocol,
                        port,
                    });
                }
            }
        }
    }
    ports.sort();
    ports.dedup();
    Workload {
        namespace,
        name: meta.name.clone().unwrap_or_default(),
        kind,
        labels: labels.unwrap_or_default(),
        service_account,
        ports,
        ips: Vec::new(),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        inject_annotation: annotations
            .and_then(|a| a.get("sidecar.istio.io/inject"))
            .cloned(),
        location: Locate::locate(obj, &["metadata".into(), "name".into()]),
    }
}

/// Read the YAML files under `paths` (relative to the current directory,
/// which must be inside a git repository) as they are at revision `rev`,
/// from git's object store: the working tree is not touched. Each file is
/// named `REV:path` (the path from the repository's root).
pub fn read_git_inputs(rev: &str, paths: &[PathBuf], diags: &mut Diagnostics) -> Vec<SourceFile> {
    let git = |args: &[&std::ffi::OsStr]| std::process::Command::new("git").args(args).output();
    let fail = |message: String, help: &str| {
        Diagnostic::new(Code::UnreadablePath, message).with_help(help.to_owned())
    };
    let commit = format!("{rev}^{{commit}}");
    match git(&[
        "rev-parse".as_ref(),
        "--verify".as_ref(),
        "--quiet".as_ref(),
        commit.as_ref(),
    ]) {
        Ok(out) if out.status.success() => {}
        Ok(_) => {
            diags.push(fail(
                format!("`{rev}` is not a revision of this git repository"),
                "name a branch, tag or commit (`git log --oneline` lists them)",
            ));
            return Vec::new();
        }
        Err(e) => {
            diags.push(fail(
                format!("cannot run git: {e}"),
                "install git, or pass directories",
            ));
            return Vec::new();
        }
    }
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "ls-tree".as_ref(),
        "-r".as_ref(),
        "-z".as_ref(),
        "--full-name".as_ref(),
        "--name-only".as_ref(),
        rev.as_ref(),
        "--".as_ref(),
    ];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let listing = match git(&args) {
        Ok(out) if out.status.success() => out.stdout,
        Ok(out) => {
            diags.push(fail(
                format!(
                    "cannot list `{rev}`: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "run ambit inside the repository",
            ));
            return Vec::new();
        }
        Err(e) => {
            diags.push(fail(format!("cannot run git: {e}"), "install git"));
            return Vec::new();
        }
    };
    let mut names: Vec<String> = listing
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .filter(|n| {
            let hidden = n.split('/').any(|part| part.starts_with('.'));
            !hidden && (n.ends_with(".yaml") || n.ends_with(".yml"))
        })
        .collect();
    names.sort();
    if names.is_empty() {
        for p in paths {
            diags.push(fail(
                format!("`{}` holds no YAML file at `{rev}`", p.display()),
                "check the path and the revision",
            ));
        }
    }
    let mut files = Vec::new();
    for name in names {
        let object = format!("{rev}:{name}");
        match git(&["cat-file".as_ref(), "blob".as_ref(), object.as_ref()]) {
            Ok(out) if out.status.success() => push_text(&mut files, object, out.stdout, diags),
            _ => diags.push(fail(
                format!("cannot read `{object}`"),
                "check the revision",
            )),
        }
    }
    files
}

/// Load everything from paths: the one call the CLI makes.
pub fn load_paths(
    paths: &[PathBuf],
    options: &LoadOptions,
) -> (Cluster, Vec<SourceFile>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let files = read_inputs(paths, &mut diags);
    let cluster = load(&files, options, &mut diags);
    diags.sort();
    (cluster, files, diags)
}
