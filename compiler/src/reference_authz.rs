//! The reference evaluator of authorization, written apart from
//! [`crate::authz`] and from the raw AuthorizationPolicy specs, the way the
//! two real enforcers get their configuration:
//!
//! * the full view builds Envoy-style RBAC policies as istiod's
//!   `authz/model` does: per rule, principals (one per `from` entry, with the
//!   principal-side `when` conditions merged in) and permissions (one per
//!   `to` entry, with the permission-side conditions), where generating an
//!   HTTP-only key for TCP fails: the rule is dropped from ALLOW and CUSTOM
//!   policies, and the key is left out in DENY and AUDIT policies;
//! * the L4 view translates each rule as istiod's ambient
//!   `convertAuthorizationPolicy` / `handleRule` does into ztunnel's
//!   rule → clauses → matches, then evaluates it as ztunnel's `rbac.rs`.
//!
//! It is slow and plain on purpose: the tables are held to it by a property
//! test.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::authz::{MeshSettings, MtlsMode, PeerAuthn};
use crate::istio::{AuthorizationPolicy, ConditionSpec, OperationSpec, SourceSpec};
use crate::labels::Labels;
use crate::model::{Namespace, Service, Workload};

/// What the reference needs besides the NetworkPolicy world.
#[derive(Debug, Clone, Copy)]
pub struct MeshWorld<'a> {
    pub namespaces: &'a std::collections::BTreeMap<String, Namespace>,
    pub policies: &'a [AuthorizationPolicy],
    pub peer_authentications: &'a [PeerAuthn],
    pub services: &'a [Service],
    pub mesh: &'a MeshSettings,
}

/// An HTTP request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Http<'a> {
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    pub host: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
}

#[derive(Debug, Clone, Copy)]
pub enum Src<'a> {
    Pod(&'a Workload),
    Ip(IpAddr),
}

fn in_mesh(world: MeshWorld<'_>, w: &Workload) -> Option<&'static str> {
    if w.host_network {
        return None;
    }
    let ns = world.namespaces.get(&w.namespace).map(|n| &n.labels);
    let nsl = |k: &str| ns.and_then(|l| l.get(k)).map(String::as_str);
    let inject = w
        .labels
        .get("sidecar.istio.io/inject")
        .map(String::as_str)
        .or(w.inject_annotation.as_deref());
    let sidecar = if inject == Some("false") {
        false
    } else if inject == Some("true") {
        nsl("istio-injection") != Some("disabled")
    } else if let Some(v) = nsl("istio-injection") {
        v == "enabled"
    } else {
        nsl("istio.io/rev").is_some()
    };
    if sidecar {
        return Some("sidecar");
    }
    let pod_mode = w.labels.get("istio.io/dataplane-mode").map(String::as_str);
    if pod_mode == Some("ambient")
        || (pod_mode != Some("none") && nsl("istio.io/dataplane-mode") == Some("ambient"))
    {
        Some("ambient")
    } else {
        None
    }
}

fn labels_match(sel: &std::collections::BTreeMap<String, String>, l: &Labels) -> bool {
    sel.iter().all(|(k, v)| l.get(k) == Some(v))
}

/// The effective mTLS mode at a workload's port.
fn mtls_mode(world: MeshWorld<'_>, w: &Workload, port: u16) -> MtlsMode {
    let root = world.mesh.root_namespace();
    let pick = |f: &dyn Fn(&PeerAuthn) -> bool| {
        let mut c: Vec<&PeerAuthn> = world.peer_authentications.iter().filter(|p| f(p)).collect();
        c.sort_by(|a, b| {
            (a.created.is_none(), &a.created, &a.name).cmp(&(
                b.created.is_none(),
                &b.created,
                &b.name,
            ))
        });
        c.first().copied()
    };
    let mesh = pick(&|p| p.namespace == root && p.selector.is_none());
    let ns = if w.namespace == root {
        None
    } else {
        pick(&|p| p.namespace == w.namespace && p.selector.is_none())
    };
    let wl = if w.namespace == root {
        None
    } else {
        pick(&|p| {
            p.namespace == w.namespace
                && p.selector
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|(k, v)| w.labels.get(k) == Some(v)))
        })
    };
    let mut mode = MtlsMode::Permissive;
    for p in [mesh, ns, wl].into_iter().flatten() {
        if p.mode != MtlsMode::Unset {
            mode = p.mode;
        }
    }
    if let Some(p) = wl
        && let Some(&m) = p.port_level.get(&port)
        && m != MtlsMode::Unset
    {
        mode = m;
    }
    mode
}

/// Does authorization at `dst` admit the TCP connection, in the full view
/// (`l4 == false`) or ztunnel's (`l4 == true`)?
#[allow(clippy::too_many_arguments)]
pub fn authz_allowed(
    world: MeshWorld<'_>,
    src: Src<'_>,
    dst: &Workload,
    port: u16,
    http: Option<Http<'_>>,
    ext_authz: Option<bool>,
    l4: bool,
) -> bool {
    let Some(dst_mode) = in_mesh(world, dst) else {
        return true;
    };
    let td = world
        .mesh
        .trust_domain
        .clone()
        .unwrap_or_else(|| "cluster.local".to_owned());
    let mode = mtls_mode(world, dst, port);
    let (src_ip, identity) = match src {
        Src::Ip(ip) => (Some(ip), None),
        Src::Pod(w) => {
            let mtls = in_mesh(world, w).is_some()
                && !(dst_mode == "sidecar" && mode == MtlsMode::Disable);
            (
                w.ips.first().copied(),
                mtls.then(|| (w.namespace.clone(), w.service_account.clone())),
            )
        }
    };
    if identity.is_none() && mode == MtlsMode::Strict {
        return false;
    }
    let facts = Facts {
        principal: identity
            .as_ref()
            .map(|(ns, sa)| format!("{td}/ns/{ns}/sa/{sa}")),
        identity: identity.clone(),
        src_ip,
        dst_ip: dst.ips.first().copied(),
        port,
        http,
    };
    let root = world.mesh.root_namespace();
    let applies = |ap: &AuthorizationPolicy| {
        let ns = ap.metadata.namespace.as_deref().unwrap_or("default");
        let refs: Vec<_> = ap
            .spec
            .target_ref
            .iter()
            .chain(ap.spec.target_refs.iter().flatten())
            .collect();
        if !refs.is_empty() {
            if l4 {
                return false;
            }
            return refs.iter().any(|r| match r.kind.as_deref() {
                Some("Service") => {
                    ns == dst.namespace
                        && world.services.iter().any(|s| {
                            s.namespace == ns
                                && Some(&s.name) == r.name.as_ref()
                                && s.selector.as_ref().is_some_and(|sel| {
                                    !sel.is_empty()
                                        && sel.iter().all(|(k, v)| dst.labels.get(k) == Some(v))
                                })
                        })
                }
                Some("Gateway") => {
                    let wp = dst.labels.get("istio.io/use-waypoint").or_else(|| {
                        world
                            .namespaces
                            .get(&dst.namespace)
                            .and_then(|n| n.labels.get("istio.io/use-waypoint"))
                    });
                    let wns = dst
                        .labels
                        .get("istio.io/use-waypoint-namespace")
                        .cloned()
                        .unwrap_or_else(|| dst.namespace.clone());
                    wp.is_some_and(|w| w != "none" && Some(w) == r.name.as_ref()) && wns == ns
                }
                Some("GatewayClass") => {
                    ns == root
                        && r.name.as_deref() == Some("istio-waypoint")
                        && dst
                            .labels
                            .get("istio.io/use-waypoint")
                            .or_else(|| {
                                world
                                    .namespaces
                                    .get(&dst.namespace)
                                    .and_then(|n| n.labels.get("istio.io/use-waypoint"))
                            })
                            .is_some_and(|w| w != "none")
                }
                _ => false,
            });
        }
        (ns == dst.namespace || ns == root)
            && ap
                .spec
                .selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .is_none_or(|ml| labels_match(ml, &dst.labels))
    };
    let dry = |ap: &AuthorizationPolicy| {
        ap.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("istio.io/dry-run"))
            .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
    };
    let action =
        |ap: &AuthorizationPolicy| ap.spec.action.clone().unwrap_or_else(|| "ALLOW".into());
    let live: Vec<&AuthorizationPolicy> = world
        .policies
        .iter()
        .filter(|ap| applies(ap) && !dry(ap))
        .collect();
    let matches = |ap: &AuthorizationPolicy| {
        if l4 {
            ztunnel_matches(ap, &facts)
        } else {
            envoy_matches(ap, &facts, world.mesh)
        }
    };
    if !l4 {
        for ap in live.iter().filter(|ap| action(ap) == "CUSTOM") {
            if matches(ap) && ext_authz != Some(true) {
                return false;
            }
        }
    }
    if live
        .iter()
        .filter(|ap| action(ap) == "DENY")
        .any(|ap| matches(ap))
    {
        return false;
    }
    let allows: Vec<_> = live.iter().filter(|ap| action(ap) == "ALLOW").collect();
    allows.is_empty() || allows.iter().any(|ap| matches(ap))
}

struct Facts<'a> {
    principal: Option<String>,
    identity: Option<(String, String)>,
    src_ip: Option<IpAddr>,
    dst_ip: Option<IpAddr>,
    port: u16,
    http: Option<Http<'a>>,
}

/// Istio's string match: `*` presence, `*x` suffix, `x*` prefix, exact.
fn str_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (p, v) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), value.to_owned())
    };
    if p == "*" {
        !v.is_empty()
    } else if let Some(s) = p.strip_prefix('*') {
        v.ends_with(s)
    } else if let Some(s) = p.strip_suffix('*') {
        v.starts_with(s)
    } else {
        v == p
    }
}

/// Path templates, by recursion over segments.
fn path_match(pattern: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or("");
    if !pattern.contains("{*}") && !pattern.contains("{**}") {
        return str_match(pattern, path, false);
    }
    fn go(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"{**}"), _) => true,
            (Some(&"{*}"), Some(seg)) => !seg.is_empty() && go(&p[1..], &s[1..]),
            (Some(lit), Some(seg)) => lit == seg && go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    go(&p, &s)
}

fn cidr(v: &str) -> Option<IpNet> {
    if v.contains('/') {
        v.parse().ok()
    } else {
        v.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

fn ip_in(values: &[String], ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| {
        values
            .iter()
            .filter_map(|v| cidr(v))
            .any(|n| n.contains(&ip))
    })
}

/// istiod's `ReplaceTrustDomainAliases` (Envoy only).
fn expand_principals(values: &[String], mesh: &MeshSettings) -> Vec<String> {
    let t = mesh.trust_domains();
    let mut domains = vec![t.trust_domain.clone()];
    domains.extend(t.aliases.iter().cloned());
    let mut out = Vec::new();
    for v in values {
        let parts: Vec<&str> = v.split('/').collect();
        if parts.len() != 5 || parts[0] == "*" {
            out.push(v.clone());
            continue;
        }
        if parts[0] == "cluster.local" || domains.iter().any(|d| d == parts[0]) {
            for d in &domains {
                let n = format!("{d}/{}", parts[1..].join("/"));
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        } else {
            out.push(v.clone());
        }
    }
    out
}

/// Does one value match the connection?
type Test = Box<dyn Fn(&str) -> bool>;

/// One Envoy-style key with its values, and whether it is HTTP-only.
struct Key {
    http_only: bool,
    test: Test,
    values: Vec<String>,
    not_values: Vec<String>,
}

impl Key {
    fn eval(&self) -> bool {
        (self.values.is_empty() || self.values.iter().any(|v| (self.test)(v)))
            && (self.not_values.is_empty() || !self.not_values.iter().any(|v| (self.test)(v)))
    }
}

fn opt(v: &Option<Vec<String>>) -> Vec<String> {
    v.clone().unwrap_or_default()
}

fn key_for(attr: &str, facts: &Facts<'_>, mesh: &MeshSettings, l4: bool) -> (bool, Test) {
    let principal = facts.principal.clone();
    let ns = facts.identity.as_ref().map(|(n, _)| n.clone());
    let ident = facts.identity.clone();
    let src_ip = facts.src_ip;
    let dst_ip = facts.dst_ip;
    let port = facts.port;
    let http = facts.http.map(|h| {
        (
            h.method.unwrap_or("GET").to_owned(),
            h.path.unwrap_or("/").to_owned(),
            h.host.map(str::to_owned),
            h.headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    });
    let _ = (mesh, l4);
    match attr {
        "principal" => (
            false,
            Box::new(move |v| principal.as_deref().is_some_and(|p| str_match(v, p, false))),
        ),
        "namespace" => (
            false,
            Box::new(move |v| ns.as_deref().is_some_and(|n| str_match(v, n, false))),
        ),
        "sa" => (
            false,
            Box::new(move |v| ident.as_ref().is_some_and(|(n, s)| v == format!("{n}/{s}"))),
        ),
        "source.ip" | "remote.ip" => (false, Box::new(move |v| ip_in(&[v.to_owned()], src_ip))),
        "destination.ip" => (false, Box::new(move |v| ip_in(&[v.to_owned()], dst_ip))),
        "destination.port" => (
            false,
            Box::new(move |v| v.parse::<u16>().ok() == Some(port)),
        ),
        "connection.sni" => (false, Box::new(|_| false)),
        "host" => (
            true,
            Box::new(move |v| {
                http.as_ref()
                    .and_then(|h| h.2.as_deref())
                    .is_some_and(|h| str_match(v, h, true))
            }),
        ),
        "method" => (
            true,
            Box::new(move |v| http.as_ref().is_some_and(|h| str_match(v, &h.0, false))),
        ),
        "path" => (
            true,
            Box::new(move |v| http.as_ref().is_some_and(|h| path_match(v, &h.1))),
        ),
        a if a.starts_with("request.headers[") => {
            let inner = &a["request.headers[".len()..];
            let name = inner
                .strip_suffix(']')
                .unwrap_or(inner)
                .to_ascii_lowercase();
            (
                true,
                Box::new(move |v| {
                    http.as_ref()
                        .and_then(|h| h.3.iter().find(|(k, _)| *k == name))
                        .is_some_and(|(_, val)| str_match(v, val, false))
                }),
            )
        }
        // request principals, JWT claims, envoy filters: absent in probes.
        _ => (true, Box::new(|_| false)),
    }
}

fn condition_attr(key: &str) -> &str {
    match key {
        "source.principal" => "principal",
        "source.namespace" => "namespace",
        k => k,
    }
}

fn is_permission_key(key: &str) -> bool {
    matches!(
        key,
        "destination.ip" | "destination.port" | "connection.sni"
    ) || key.starts_with("experimental.envoy.filters.")
}

fn source_keys(s: &SourceSpec, ns: &str, facts: &Facts<'_>, mesh: &MeshSettings) -> Vec<Key> {
    let sa = |v: &Option<Vec<String>>| -> Vec<String> {
        opt(v)
            .into_iter()
            .map(|x| {
                if x.contains('/') {
                    x
                } else {
                    format!("{ns}/{x}")
                }
            })
            .collect()
    };
    let mut keys = Vec::new();
    let mut push = |attr: &str, values: Vec<String>, not_values: Vec<String>| {
        if values.is_empty() && not_values.is_empty() {
            return;
        }
        let (http_only, test) = key_for(attr, facts, mesh, false);
        keys.push(Key {
            http_only,
            test,
            values,
            not_values,
        });
    };
    push(
        "principal",
        expand_principals(&opt(&s.principals), mesh),
        expand_principals(&opt(&s.not_principals), mesh),
    );
    push(
        "request.auth.principal",
        opt(&s.request_principals),
        opt(&s.not_request_principals),
    );
    push("namespace", opt(&s.namespaces), opt(&s.not_namespaces));
    push("sa", sa(&s.service_accounts), sa(&s.not_service_accounts));
    push("source.ip", opt(&s.ip_blocks), opt(&s.not_ip_blocks));
    push(
        "remote.ip",
        opt(&s.remote_ip_blocks),
        opt(&s.not_remote_ip_blocks),
    );
    keys
}

fn operation_keys(o: &OperationSpec, facts: &Facts<'_>, mesh: &MeshSettings) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut push = |attr: &str, values: Vec<String>, not_values: Vec<String>| {
        if values.is_empty() && not_values.is_empty() {
            return;
        }
        let (http_only, test) = key_for(attr, facts, mesh, false);
        keys.push(Key {
            http_only,
            test,
            values,
            not_values,
        });
    };
    push("host", opt(&o.hosts), opt(&o.not_hosts));
    push("destination.port", opt(&o.ports), opt(&o.not_ports));
    push("method", opt(&o.methods), opt(&o.not_methods));
    push("path", opt(&o.paths), opt(&o.not_paths));
    keys
}

fn condition_key(c: &ConditionSpec, facts: &Facts<'_>, mesh: &MeshSettings) -> Key {
    let key = c.key.clone().unwrap_or_default();
    let attr = condition_attr(&key);
    let (http_only, test) = key_for(attr, facts, mesh, false);
    let mut values = opt(&c.values);
    let mut not_values = opt(&c.not_values);
    if attr == "principal" {
        values = expand_principals(&values, mesh);
        not_values = expand_principals(&not_values, mesh);
    }
    Key {
        http_only,
        test,
        values,
        not_values,
    }
}

/// Envoy: a rule is (any principal entry) AND (any permission entry); on TCP
/// an HTTP-only key fails generation.
fn envoy_matches(ap: &AuthorizationPolicy, facts: &Facts<'_>, mesh: &MeshSettings) -> bool {
    let ns = ap.metadata.namespace.as_deref().unwrap_or("default");
    let action = ap.spec.action.clone().unwrap_or_else(|| "ALLOW".into());
    let strict = matches!(action.as_str(), "ALLOW" | "CUSTOM");
    let tcp = facts.http.is_none();
    ap.spec.rules.iter().flatten().flatten().any(|rule| {
        let whens: Vec<&ConditionSpec> = rule.when.iter().flatten().flatten().collect();
        let base_principal: Vec<Key> = whens
            .iter()
            .filter(|c| !is_permission_key(c.key.as_deref().unwrap_or("")))
            .map(|c| condition_key(c, facts, mesh))
            .collect();
        let base_permission: Vec<Key> = whens
            .iter()
            .filter(|c| is_permission_key(c.key.as_deref().unwrap_or("")))
            .map(|c| condition_key(c, facts, mesh))
            .collect();
        let mut principals: Vec<Vec<Key>> = Vec::new();
        match &rule.from {
            None => principals.push(base_principal),
            Some(froms) => {
                for f in froms.iter().flatten() {
                    let mut keys = source_keys(
                        f.source.as_ref().unwrap_or(&SourceSpec::default()),
                        ns,
                        facts,
                        mesh,
                    );
                    keys.extend(
                        whens
                            .iter()
                            .filter(|c| !is_permission_key(c.key.as_deref().unwrap_or("")))
                            .map(|c| condition_key(c, facts, mesh)),
                    );
                    principals.push(keys);
                }
            }
        }
        let mut permissions: Vec<Vec<Key>> = Vec::new();
        match &rule.to {
            None => permissions.push(base_permission),
            Some(tos) => {
                for t in tos.iter().flatten() {
                    let mut keys = operation_keys(
                        t.operation.as_ref().unwrap_or(&OperationSpec::default()),
                        facts,
                        mesh,
                    );
                    keys.extend(
                        whens
                            .iter()
                            .filter(|c| is_permission_key(c.key.as_deref().unwrap_or("")))
                            .map(|c| condition_key(c, facts, mesh)),
                    );
                    permissions.push(keys);
                }
            }
        }
        let all = principals.iter().chain(&permissions).flatten();
        if tcp && strict && all.clone().any(|k| k.http_only) {
            return false; // generation failed: the rule is dropped
        }
        let entry_ok =
            |keys: &Vec<Key>| keys.iter().filter(|k| !(tcp && k.http_only)).all(Key::eval);
        principals.iter().any(entry_ok) && permissions.iter().any(entry_ok)
    })
}

/// ztunnel's match of one `RbacMatch`.
#[derive(Default)]
struct ZMatch {
    namespaces: Vec<String>,
    not_namespaces: Vec<String>,
    service_accounts: Vec<String>,
    not_service_accounts: Vec<String>,
    principals: Vec<String>,
    not_principals: Vec<String>,
    source_ips: Vec<String>,
    not_source_ips: Vec<String>,
    destination_ips: Vec<String>,
    not_destination_ips: Vec<String>,
    destination_ports: Vec<String>,
    not_destination_ports: Vec<String>,
}

impl ZMatch {
    fn is_empty(&self) -> bool {
        [
            &self.namespaces,
            &self.not_namespaces,
            &self.service_accounts,
            &self.not_service_accounts,
            &self.principals,
            &self.not_principals,
            &self.source_ips,
            &self.not_source_ips,
            &self.destination_ips,
            &self.not_destination_ips,
            &self.destination_ports,
            &self.not_destination_ports,
        ]
        .iter()
        .all(|v| v.is_empty())
    }

    fn matches(&self, f: &Facts<'_>) -> bool {
        fn m(pos: &[String], neg: &[String], pred: impl Fn(&str) -> bool) -> bool {
            (pos.is_empty() || pos.iter().any(|v| pred(v)))
                && (neg.is_empty() || !neg.iter().any(|v| pred(v)))
        }
        let id = f.principal.clone().unwrap_or_default();
        let ns = f
            .identity
            .as_ref()
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        m(&self.destination_ips, &self.not_destination_ips, |v| {
            ip_in(&[v.to_owned()], f.dst_ip)
        }) && m(&self.source_ips, &self.not_source_ips, |v| {
            ip_in(&[v.to_owned()], f.src_ip)
        }) && m(&self.destination_ports, &self.not_destination_ports, |v| {
            v.parse::<u16>().ok() == Some(f.port)
        }) && m(&self.service_accounts, &self.not_service_accounts, |v| {
            f.identity
                .as_ref()
                .is_some_and(|(n, s)| v == format!("{n}/{s}"))
        }) && m(&self.principals, &self.not_principals, |v| {
            !id.is_empty() && str_match(v, &id, false)
        }) && m(&self.namespaces, &self.not_namespaces, |v| {
            str_match(v, &ns, false)
        })
    }
}

/// istiod's ambient translation of a policy, then ztunnel's evaluation.
fn ztunnel_matches(ap: &AuthorizationPolicy, facts: &Facts<'_>) -> bool {
    let action = ap.spec.action.clone().unwrap_or_else(|| "ALLOW".into());
    if !matches!(action.as_str(), "ALLOW" | "DENY") {
        return false;
    }
    let ns = ap.metadata.namespace.as_deref().unwrap_or("default");
    let sa = |v: &Option<Vec<String>>| -> Vec<String> {
        opt(v)
            .into_iter()
            .map(|x| {
                if x.contains('/') {
                    x
                } else {
                    format!("{ns}/{x}")
                }
            })
            .collect()
    };
    let mut rules: Vec<Vec<Vec<ZMatch>>> = Vec::new();
    for rule in ap.spec.rules.iter().flatten().flatten() {
        let mut l7 = false;
        let mut clauses: Vec<Vec<ZMatch>> = Vec::new();
        let mut to = Vec::new();
        for t in rule.to.iter().flatten().flatten() {
            let o = t.operation.clone().unwrap_or_default();
            l7 |= [
                &o.hosts,
                &o.not_hosts,
                &o.methods,
                &o.not_methods,
                &o.paths,
                &o.not_paths,
            ]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
            to.push(ZMatch {
                destination_ports: opt(&o.ports),
                not_destination_ports: opt(&o.not_ports),
                ..ZMatch::default()
            });
        }
        let mut from = Vec::new();
        for f in rule.from.iter().flatten().flatten() {
            let s = f.source.clone().unwrap_or_default();
            l7 |= [
                &s.remote_ip_blocks,
                &s.not_remote_ip_blocks,
                &s.request_principals,
                &s.not_request_principals,
            ]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
            from.push(ZMatch {
                source_ips: opt(&s.ip_blocks),
                not_source_ips: opt(&s.not_ip_blocks),
                namespaces: opt(&s.namespaces),
                not_namespaces: opt(&s.not_namespaces),
                service_accounts: sa(&s.service_accounts),
                not_service_accounts: sa(&s.not_service_accounts),
                principals: opt(&s.principals),
                not_principals: opt(&s.not_principals),
                ..ZMatch::default()
            });
        }
        if !to.is_empty() {
            clauses.push(to);
        }
        if !from.is_empty() {
            clauses.push(from);
        }
        for c in rule.when.iter().flatten().flatten() {
            let key = c.key.clone().unwrap_or_default();
            let (v, nv) = (opt(&c.values), opt(&c.not_values));
            let mut z = ZMatch::default();
            match key.as_str() {
                "source.namespace" => (z.namespaces, z.not_namespaces) = (v, nv),
                "source.principal" => (z.principals, z.not_principals) = (v, nv),
                "source.ip" => (z.source_ips, z.not_source_ips) = (v, nv),
                "destination.port" => (z.destination_ports, z.not_destination_ports) = (v, nv),
                "destination.ip" => (z.destination_ips, z.not_destination_ips) = (v, nv),
                _ => l7 = true,
            }
            clauses.push(vec![z]);
        }
        if action == "ALLOW" && l7 {
            continue;
        }
        rules.push(clauses);
    }
    if rules.is_empty() {
        return false;
    }
    rules.iter().any(|clauses| {
        clauses.iter().all(|clause| {
            clause.is_empty() || clause.iter().any(|m| !m.is_empty() && m.matches(facts))
        })
    })
}
