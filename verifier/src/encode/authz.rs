//! The authorization layer (Istio `AuthorizationPolicy`, `PeerAuthentication`)
//! as formulas: one function per construct of [`ambit_compiler::authz`], in
//! both of its views.
//!
//! Text attributes (principals, namespaces, service accounts, methods, paths,
//! hosts, header values) are Z3 strings: exact values, prefixes, suffixes and
//! presence are the string theory's equality, `prefix`, `suffix` and
//! non-emptiness; path templates and case-insensitive hosts are regular
//! expressions. Addresses are the [`Addr`] bit-vectors of the network layer.
//!
//! The connection is described by cases ([`Text`], [`Ip`]): a symbolic value
//! (a pod that may not exist yet, a free HTTP request) or, for an end the
//! tables know by its class, one concrete value per class. A concrete value
//! is matched with the same pattern functions, simplified by Z3 to a
//! constant, so the two sides of translation validation share every
//! matching rule and differ only in where the attributes come from: the
//! policy IR and the pods' labels ([`Semantics`]), or the compiled classes
//! ([`TableEncoding`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ambit_compiler::authz::{
    Action, Attr, AuthzPolicy, AuthzRule, Entry, Field, MeshMode, MtlsMode, Pattern, TrustDomains,
    View,
};
use ambit_compiler::labels::Labels as LabelMap;
use ambit_compiler::model::{Cluster, Protocol};
use ipnet::IpNet;
use z3::ast::{Ast, BV, Bool, Regexp, String as Str};

use super::{Addr, Identities, Labels, Pod, Semantics, Service, TableEncoding, TableEnd, idx};

/// Label keys Istio reads to place a pod in the mesh and behind a waypoint.
pub const INJECT_LABEL: &str = "sidecar.istio.io/inject";
pub const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
pub const INJECTION_NS_LABEL: &str = "istio-injection";
pub const REVISION_NS_LABEL: &str = "istio.io/rev";
pub const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";
pub const USE_WAYPOINT_NS_LABEL: &str = "istio.io/use-waypoint-namespace";

/// A mesh mode as an index.
pub fn mesh(m: MeshMode) -> BV {
    idx(match m {
        MeshMode::None => 0,
        MeshMode::Ambient => 1,
        MeshMode::Sidecar => 2,
    })
}

/// An mTLS mode as an index.
pub fn mtls(m: MtlsMode) -> BV {
    idx(m as u64)
}

/// Whether a cluster has an authorization layer at all: without
/// AuthorizationPolicies and PeerAuthentications every connection is
/// authorized, whatever the mesh.
pub fn has_authz(cluster: &Cluster) -> bool {
    !cluster.authorization_policies.is_empty() || !cluster.peer_authentications.is_empty()
}

/// Add the label keys and values the authorization layer reads.
pub fn add_vocabulary(
    pod: &mut BTreeMap<String, BTreeSet<String>>,
    namespace: &mut BTreeMap<String, BTreeSet<String>>,
    cluster: &Cluster,
) {
    let add = |m: &mut BTreeMap<String, BTreeSet<String>>, k: &str, vs: &[&str]| {
        m.entry(k.to_owned())
            .or_default()
            .extend(vs.iter().map(|v| (*v).to_owned()));
    };
    add(pod, INJECT_LABEL, &["true", "false"]);
    add(pod, DATAPLANE_MODE_LABEL, &["none", "ambient"]);
    add(pod, USE_WAYPOINT_LABEL, &["none"]);
    add(pod, USE_WAYPOINT_NS_LABEL, &[]);
    add(namespace, INJECTION_NS_LABEL, &["enabled", "disabled"]);
    add(namespace, REVISION_NS_LABEL, &[]);
    add(namespace, DATAPLANE_MODE_LABEL, &["ambient"]);
    add(namespace, USE_WAYPOINT_LABEL, &["none"]);
    let mut match_labels = |labels: &LabelMap| {
        for (k, v) in labels {
            add(pod, k, &[v]);
        }
    };
    for p in &cluster.authorization_policies {
        if let Some(sel) = &p.selector {
            match_labels(sel);
        }
    }
    for p in &cluster.peer_authentications {
        if let Some(sel) = &p.selector {
            match_labels(sel);
        }
    }
    for s in &cluster.services {
        if let Some(sel) = &s.selector {
            match_labels(sel);
        }
    }
    for p in &cluster.authorization_policies {
        for t in p.target_refs.iter().filter(|t| t.kind == "Gateway") {
            add(pod, USE_WAYPOINT_LABEL, &[&t.name]);
            add(namespace, USE_WAYPOINT_LABEL, &[&t.name]);
            add(pod, USE_WAYPOINT_NS_LABEL, &[&p.namespace]);
        }
    }
}

/// A Z3 string literal: backslashes and characters outside printable ASCII
/// as `\u{…}` escapes.
pub fn literal(s: &str) -> Str {
    Str::from(escape(s).as_str())
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' || !(' '..='~').contains(&c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn re_literal(s: &str) -> Regexp {
    Regexp::literal(&escape(s))
}

// ---------------------------------------------------------------------------
// The attributes of a connection.

/// One case of a text attribute.
#[derive(Debug, Clone)]
pub enum TextValue {
    /// A concatenation of literals and string variables (a principal is
    /// `TRUST_DOMAIN/ns/` + namespace + `/sa/` + service account).
    Parts(Vec<Part>),
    Known(String),
    /// No value (e.g. no principal without mTLS).
    Absent,
}

/// A piece of a symbolic text.
#[derive(Debug, Clone)]
pub enum Part {
    Literal(String),
    Variable(Str),
}

/// A text attribute by cases: exactly one condition holds.
#[derive(Debug, Clone)]
pub struct Text(pub Vec<(Bool, TextValue)>);

impl Text {
    pub fn symbolic(s: Str) -> Text {
        Text(vec![(
            Bool::from_bool(true),
            TextValue::Parts(vec![Part::Variable(s)]),
        )])
    }

    /// The value matches the pattern (never when absent).
    pub fn matches(&self, p: &Pattern, ignore_case: bool) -> Bool {
        let each: Vec<Bool> = self
            .0
            .iter()
            .filter_map(|(cond, v)| {
                let hit = match v {
                    TextValue::Parts(parts) => parts_pattern(p, parts, ignore_case),
                    TextValue::Known(k) => {
                        match known_matches(p, k, ignore_case) {
                            Some(false) => return None,
                            Some(true) => return Some(cond.clone()),
                            None => {}
                        }
                        let b = text_pattern(p, &literal(k), ignore_case).simplify();
                        match b.as_bool() {
                            Some(false) => return None,
                            Some(true) => return Some(cond.clone()),
                            None => b,
                        }
                    }
                    TextValue::Absent => return None,
                };
                Some(Bool::and(&[cond.clone(), hit]))
            })
            .collect();
        Bool::or(&each)
    }

    /// The value is `s`.
    pub fn is(&self, s: &str) -> Bool {
        self.matches(&Pattern::Exact(s.to_owned()), false)
    }
}

/// A string pattern against a known value, as [`text_pattern`] decides it
/// (ASCII letters alike in either case with `ignore_case`), for the forms
/// plain comparison settles; `None` for the rest (path templates). Built
/// once per class and pattern, this keeps a Z3 string literal and a
/// simplification out of every such pair.
fn known_matches(p: &Pattern, v: &str, ignore_case: bool) -> Option<bool> {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    // Byte offsets: a UTF-8 prefix or suffix that is itself whole
    // characters is a prefix or suffix of the characters.
    let head = |n: usize| v.is_char_boundary(n).then(|| &v[..n]);
    let tail = |n: usize| {
        let at = v.len().checked_sub(n)?;
        v.is_char_boundary(at).then(|| &v[at..])
    };
    Some(match p {
        Pattern::Exact(e) => eq(v, e),
        Pattern::Prefix(x) => head(x.len()).is_some_and(|h| eq(h, x)),
        Pattern::Suffix(x) => tail(x.len()).is_some_and(|t| eq(t, x)),
        Pattern::Presence => !v.is_empty(),
        Pattern::Cidr(_) | Pattern::Port(_) => false,
        Pattern::Template(_) => return None,
    })
}

/// A pattern against a concatenation. Exact values, prefixes and suffixes
/// are split over the pieces, so that the solver compares each variable
/// with a constant (equality, `prefixof`, `suffixof`) rather than solving
/// word equations over the concatenation; the rest goes to the string
/// theory whole.
fn parts_pattern(p: &Pattern, parts: &[Part], ignore_case: bool) -> Bool {
    if !ignore_case {
        match p {
            Pattern::Exact(e) => return exact(parts, e),
            Pattern::Prefix(x) => return prefix(parts, x),
            Pattern::Suffix(x) => return suffix(parts, x),
            Pattern::Presence => {
                let each: Vec<Bool> = parts
                    .iter()
                    .map(|part| match part {
                        Part::Literal(l) => Bool::from_bool(!l.is_empty()),
                        Part::Variable(v) => v.eq(literal("")).not(),
                    })
                    .collect();
                return Bool::or(&each);
            }
            _ => {}
        }
    }
    let whole: Vec<Str> = parts
        .iter()
        .map(|part| match part {
            Part::Literal(l) => literal(l),
            Part::Variable(v) => v.clone(),
        })
        .collect();
    let whole = match whole.len() {
        1 => whole[0].clone(),
        _ => Str::concat(&whole.iter().collect::<Vec<_>>()),
    };
    text_pattern(p, &whole, ignore_case)
}

/// Where a string can be cut (character boundaries, both ends included).
fn cuts(s: &str) -> impl Iterator<Item = usize> + '_ {
    s.char_indices().map(|(i, _)| i).chain([s.len()])
}

/// The concatenation is exactly `e`.
fn exact(parts: &[Part], e: &str) -> Bool {
    match parts.split_first() {
        None => Bool::from_bool(e.is_empty()),
        Some((Part::Literal(l), rest)) => match e.strip_prefix(l.as_str()) {
            Some(tail) => exact(rest, tail),
            None => Bool::from_bool(false),
        },
        Some((Part::Variable(v), [])) => v.eq(literal(e)),
        Some((Part::Variable(v), rest)) => {
            let each: Vec<Bool> = cuts(e)
                .map(|k| Bool::and(&[v.eq(literal(&e[..k])), exact(rest, &e[k..])]))
                .collect();
            Bool::or(&each)
        }
    }
}

/// The concatenation starts with `x`.
fn prefix(parts: &[Part], x: &str) -> Bool {
    if x.is_empty() {
        return Bool::from_bool(true);
    }
    match parts.split_first() {
        None => Bool::from_bool(false),
        Some((Part::Literal(l), rest)) => {
            if x.len() <= l.len() {
                Bool::from_bool(l.starts_with(x))
            } else {
                match x.strip_prefix(l.as_str()) {
                    Some(tail) => prefix(rest, tail),
                    None => Bool::from_bool(false),
                }
            }
        }
        Some((Part::Variable(v), rest)) => {
            // The variable holds all of `x`, or a proper start of it.
            let mut each = vec![literal(x).prefix(v)];
            each.extend(
                cuts(x)
                    .filter(|&k| k < x.len())
                    .map(|k| Bool::and(&[v.eq(literal(&x[..k])), prefix(rest, &x[k..])])),
            );
            Bool::or(&each)
        }
    }
}

/// The concatenation ends with `x`.
fn suffix(parts: &[Part], x: &str) -> Bool {
    if x.is_empty() {
        return Bool::from_bool(true);
    }
    match parts.split_last() {
        None => Bool::from_bool(false),
        Some((Part::Literal(l), init)) => {
            if x.len() <= l.len() {
                Bool::from_bool(l.ends_with(x))
            } else {
                match x.strip_suffix(l.as_str()) {
                    Some(head) => suffix(init, head),
                    None => Bool::from_bool(false),
                }
            }
        }
        Some((Part::Variable(v), init)) => {
            // The variable holds all of `x`, or a proper end of it.
            let mut each = vec![literal(x).suffix(v)];
            each.extend(
                cuts(x)
                    .filter(|&k| k > 0)
                    .map(|k| Bool::and(&[v.eq(literal(&x[k..])), suffix(init, &x[..k])])),
            );
            Bool::or(&each)
        }
    }
}

/// One case of an address attribute.
#[derive(Debug, Clone)]
pub enum IpValue {
    Symbolic(Addr),
    Known(Option<IpAddr>),
}

/// An address attribute by cases: exactly one condition holds.
#[derive(Debug, Clone)]
pub struct Ip(pub Vec<(Bool, IpValue)>);

impl Ip {
    pub fn in_cidr(&self, net: &IpNet) -> Bool {
        let each: Vec<Bool> = self
            .0
            .iter()
            .filter_map(|(cond, v)| match v {
                IpValue::Symbolic(a) => Some(Bool::and(&[cond.clone(), a.in_cidr(net)])),
                IpValue::Known(ip) => ip.is_some_and(|ip| net.contains(&ip)).then(|| cond.clone()),
            })
            .collect();
        Bool::or(&each)
    }
}

/// Who the source is, as the destination's enforcer sees it.
#[derive(Debug, Clone)]
pub struct AuthzSource {
    /// The source's mesh mode (an address outside the cluster: none).
    pub mesh: BV,
    pub principal: Text,
    pub namespace: Text,
    pub service_account: Text,
    pub ip: Ip,
}

/// What the destination's enforcer applies.
#[derive(Debug, Clone)]
pub struct AuthzDest {
    pub mesh: BV,
    /// The effective mTLS mode at the flow's port.
    pub mode: BV,
    /// Per policy: attached to the destination workload.
    pub attached: Vec<Bool>,
    /// Per policy: attached to its waypoint or Service (full view only).
    pub waypoint: Vec<Bool>,
    pub ip: Ip,
}

/// An HTTP request on the connection, free: any method, path (without its
/// query), host, and value of each header the policies read.
#[derive(Debug, Clone)]
pub struct Request {
    pub present: Bool,
    pub method: Str,
    pub path: Str,
    pub host: Str,
    pub headers: BTreeMap<String, (Bool, Str)>,
    /// Some rule looks at the path.
    paths: bool,
}

/// Some rule of `policies` looks at the request's path.
pub fn looks_at_paths<'p>(policies: impl IntoIterator<Item = &'p AuthzPolicy>) -> bool {
    policies
        .into_iter()
        .flat_map(|p| &p.rules)
        .flat_map(|r| r.fields())
        .any(|f| f.attr == Attr::Path)
}

impl Request {
    pub fn new(prefix: &str, policies: &[AuthzPolicy]) -> Request {
        let headers = policies
            .iter()
            .flat_map(|p| &p.rules)
            .flat_map(|r| r.fields())
            .filter_map(|f| match &f.attr {
                Attr::Header(h) => Some(h.clone()),
                _ => None,
            })
            .collect::<BTreeSet<String>>()
            .into_iter()
            .map(|h| {
                let v = (
                    Bool::new_const(format!("{prefix}.header[{h}]")),
                    Str::new_const(format!("{prefix}.header[{h}].value")),
                );
                (h, v)
            })
            .collect();
        let paths = looks_at_paths(policies);
        Request {
            present: Bool::new_const(format!("{prefix}.present")),
            method: Str::new_const(format!("{prefix}.method")),
            path: Str::new_const(format!("{prefix}.path")),
            host: Str::new_const(format!("{prefix}.host")),
            headers,
            paths,
        }
    }

    /// A path is what precedes the query. (When no rule looks at the
    /// path, nothing is said of it: the formula keeps no text for it.)
    pub fn well_formed(&self) -> Bool {
        if !self.paths {
            return Bool::from_bool(true);
        }
        literal("?").contains(&self.path).not()
    }

    /// The request of a model (`None`: opaque TCP).
    pub fn value_in(&self, model: &z3::Model) -> Option<ambit_compiler::authz::Request> {
        let text = |s: &Str| model.eval(s, true).and_then(|v| v.as_string());
        if !model.eval(&self.present, true)?.as_bool()? {
            return None;
        }
        Some(ambit_compiler::authz::Request {
            method: text(&self.method),
            path: text(&self.path),
            host: text(&self.host),
            headers: self
                .headers
                .iter()
                .filter(|(_, (present, _))| {
                    model
                        .eval(present, true)
                        .and_then(|b| b.as_bool())
                        .unwrap_or_default()
                })
                .filter_map(|(h, (_, v))| Some((h.clone(), text(v)?)))
                .collect(),
        })
    }
}

/// Everything a rule can look at.
struct Conn<'a> {
    src: &'a AuthzSource,
    /// The source's identity reaches the enforcer (mTLS).
    identity: Bool,
    dst_ip: &'a Ip,
    port: &'a BV,
    request: Option<&'a Request>,
    trust: &'a TrustDomains,
    view: View,
}

// ---------------------------------------------------------------------------
// Deciding.

/// The destination's authorization admits the connection (a TCP one to a
/// workload: the caller asks only then), as
/// [`ambit_compiler::authz::AuthzTables::authorize`] with an external
/// authorizer whose answer is unknown (counted as denied).
#[allow(clippy::too_many_arguments)]
pub fn authorize(
    policies: &[AuthzPolicy],
    trust: &TrustDomains,
    view: View,
    src: &AuthzSource,
    dst: &AuthzDest,
    svc: &Service,
    request: Option<&Request>,
) -> Bool {
    let in_mesh = dst.mesh.eq(mesh(MeshMode::None)).not();
    let identity = identity(src, dst);
    let strict_refuses = Bool::and(&[identity.not(), dst.mode.eq(mtls(MtlsMode::Strict))]);
    let conn = Conn {
        src,
        identity,
        dst_ip: &dst.ip,
        port: &svc.port,
        request: request.filter(|_| view == View::Full),
        trust,
        view,
    };
    let applies = |i: usize| match view {
        View::Full => Bool::or(&[dst.attached[i].clone(), dst.waypoint[i].clone()]),
        View::L4 => dst.attached[i].clone(),
    };
    let mut custom = Vec::new();
    let mut deny = Vec::new();
    let mut allow_any = Vec::new();
    let mut allow = Vec::new();
    for (i, p) in policies.iter().enumerate() {
        // A policy that applies to no destination of the formula adds
        // nothing to it.
        let never = |b: &Bool| b.as_bool() == Some(false);
        if p.dry_run || never(&dst.attached[i]) && (view == View::L4 || never(&dst.waypoint[i])) {
            continue;
        }
        match p.action {
            Action::Custom if view == View::Full => {
                custom.push(Bool::and(&[applies(i), policy(p, &conn)]));
            }
            Action::Deny => deny.push(Bool::and(&[applies(i), policy(p, &conn)])),
            Action::Allow => {
                allow_any.push(applies(i));
                allow.push(Bool::and(&[applies(i), policy(p, &conn)]));
            }
            Action::Custom | Action::Audit => {}
        }
    }
    Bool::or(&[
        in_mesh.not(),
        Bool::and(&[
            strict_refuses.not(),
            Bool::or(&custom).not(),
            Bool::or(&deny).not(),
            Bool::or(&[Bool::or(&allow_any).not(), Bool::or(&allow)]),
        ]),
    ])
}

/// For an L7-capable enforcer (the full view, with the request when
/// present): whether rule `rule` of the ALLOW policy `policies[allow]`
/// applies to the destination and matches the connection, and whether a
/// DENY policy applying there matches it.
#[allow(clippy::too_many_arguments)]
pub fn allow_rule_and_deny(
    policies: &[AuthzPolicy],
    trust: &TrustDomains,
    src: &AuthzSource,
    dst: &AuthzDest,
    svc: &Service,
    request: &Request,
    allow: usize,
    rule: usize,
) -> (Bool, Bool) {
    let identity = identity(src, dst);
    let conn = Conn {
        src,
        identity,
        dst_ip: &dst.ip,
        port: &svc.port,
        request: Some(request),
        trust,
        view: View::Full,
    };
    let applies = |i: usize| Bool::or(&[dst.attached[i].clone(), dst.waypoint[i].clone()]);
    let p = &policies[allow];
    let matches = Bool::and(&[applies(allow), self::rule(&p.rules[rule], p.action, &conn)]);
    let denied: Vec<Bool> = policies
        .iter()
        .enumerate()
        .filter(|(_, d)| d.action == Action::Deny && !d.dry_run)
        .map(|(i, d)| Bool::and(&[applies(i), policy(d, &conn)]))
        .collect();
    (matches, Bool::or(&denied))
}

/// The source's identity reaches the destination's enforcer: the source is
/// in the mesh, and a sidecar destination does not disable mTLS.
fn identity(src: &AuthzSource, dst: &AuthzDest) -> Bool {
    Bool::and(&[
        src.mesh.eq(mesh(MeshMode::None)).not(),
        Bool::and(&[
            dst.mesh.eq(mesh(MeshMode::Sidecar)),
            dst.mode.eq(mtls(MtlsMode::Disable)),
        ])
        .not(),
    ])
}

/// Some rule of the policy matches.
fn policy(p: &AuthzPolicy, conn: &Conn<'_>) -> Bool {
    let each: Vec<Bool> = p.rules.iter().map(|r| rule(r, p.action, conn)).collect();
    Bool::or(&each)
}

/// A rule matches, in the view of the connection: with an HTTP request
/// every attribute counts; on opaque TCP an ALLOW (CUSTOM) rule with an
/// HTTP-only attribute is skipped and a DENY (AUDIT) rule loses those
/// fields; at L4 an ALLOW rule with an L7 attribute is dropped and a DENY
/// rule keeps its L4 fields, failing open when a part is left with none.
fn rule(r: &AuthzRule, action: Action, conn: &Conn<'_>) -> Bool {
    let permissive = matches!(action, Action::Allow | Action::Custom);
    let all = |_: &Field| true;
    match conn.view {
        View::Full => {
            let opaque = if !r.has_http_only() {
                matches_with(r, conn, all)
            } else if permissive {
                Bool::from_bool(false)
            } else {
                matches_with(r, conn, |f| !f.attr.is_http_only())
            };
            match conn.request {
                Some(req) => req.present.ite(&matches_with(r, conn, all), &opaque),
                None => opaque,
            }
        }
        View::L4 => {
            if !r.has_l7() {
                return matches_with(r, conn, all);
            }
            let only_l7 = |list: &Option<Vec<Entry>>| {
                list.as_ref()
                    .is_some_and(|l| l.iter().all(|e| e.fields.iter().all(|f| !f.attr.is_l4())))
            };
            if permissive
                || only_l7(&r.from)
                || only_l7(&r.to)
                || r.when.iter().any(|f| !f.attr.is_l4())
            {
                return Bool::from_bool(false);
            }
            // An entry left with no L4 field never matches.
            let list = |l: &Option<Vec<Entry>>| match l {
                None => Bool::from_bool(true),
                Some(l) => {
                    let each: Vec<Bool> = l
                        .iter()
                        .filter(|e| e.fields.iter().any(|f| f.attr.is_l4()))
                        .map(|e| entry(e, conn, |f| f.attr.is_l4()))
                        .collect();
                    Bool::or(&each)
                }
            };
            let when: Vec<Bool> = r.when.iter().map(|f| field(f, conn)).collect();
            Bool::and(&[list(&r.from), list(&r.to), Bool::and(&when)])
        }
    }
}

/// `from`, `to` and `when` with only the fields `keep` keeps (an entry left
/// with nothing matches everything; an absent list constrains nothing).
fn matches_with(r: &AuthzRule, conn: &Conn<'_>, keep: impl Fn(&Field) -> bool + Copy) -> Bool {
    let list = |l: &Option<Vec<Entry>>| match l {
        None => Bool::from_bool(true),
        Some(l) => {
            let each: Vec<Bool> = l.iter().map(|e| entry(e, conn, keep)).collect();
            Bool::or(&each)
        }
    };
    let when: Vec<Bool> = r
        .when
        .iter()
        .filter(|f| keep(f))
        .map(|f| field(f, conn))
        .collect();
    Bool::and(&[list(&r.from), list(&r.to), Bool::and(&when)])
}

/// A `source` or `operation`: its fields ANDed.
fn entry(e: &Entry, conn: &Conn<'_>, keep: impl Fn(&Field) -> bool) -> Bool {
    let each: Vec<Bool> = e
        .fields
        .iter()
        .filter(|f| keep(f))
        .map(|f| field(f, conn))
        .collect();
    Bool::and(&each)
}

/// A field: one of `values` (when any) and none of `not_values`.
fn field(f: &Field, conn: &Conn<'_>) -> Bool {
    let any = |ps: &[Pattern]| {
        let each: Vec<Bool> = ps.iter().map(|p| value(&f.attr, p, conn)).collect();
        Bool::or(&each)
    };
    let mut parts = Vec::new();
    if !f.values.is_empty() {
        parts.push(any(&f.values));
    }
    if !f.not_values.is_empty() {
        parts.push(any(&f.not_values).not());
    }
    Bool::and(&parts)
}

/// One value of a field against the connection.
fn value(attr: &Attr, p: &Pattern, conn: &Conn<'_>) -> Bool {
    let src = conn.src;
    let with_identity = |b: Bool| Bool::and(&[conn.identity.clone(), b]);
    let request = |f: &dyn Fn(&Request) -> Bool| match conn.request {
        Some(r) => Bool::and(&[r.present.clone(), f(r)]),
        None => Bool::from_bool(false),
    };
    let cidr = |ip: &Ip| match p {
        Pattern::Cidr(net) => ip.in_cidr(net),
        _ => Bool::from_bool(false),
    };
    match attr {
        Attr::Principal => with_identity(principal(p, &src.principal, conn)),
        Attr::Namespace => with_identity(src.namespace.matches(p, false)),
        Attr::ServiceAccount => match p {
            Pattern::Exact(want) => match want.split_once('/') {
                Some((ns, sa)) => with_identity(Bool::and(&[
                    src.namespace.is(ns),
                    src.service_account.is(sa),
                ])),
                None => Bool::from_bool(false),
            },
            _ => Bool::from_bool(false),
        },
        Attr::SourceIp | Attr::RemoteIp => cidr(&src.ip),
        Attr::DestinationIp => cidr(conn.dst_ip),
        Attr::DestinationPort => match p {
            Pattern::Port(n) => conn.port.eq(BV::from_u64(*n as u64, 16)),
            _ => Bool::from_bool(false),
        },
        Attr::Host => request(&|r| text_pattern(p, &r.host, true)),
        Attr::Method => request(&|r| text_pattern(p, &r.method, false)),
        Attr::Path => request(&|r| text_pattern(p, &r.path, false)),
        Attr::Header(h) => request(&|r| match r.headers.get(h) {
            Some((present, v)) => Bool::and(&[present.clone(), text_pattern(p, v, false)]),
            None => Bool::from_bool(false),
        }),
        // Probes carry no JWT and no SNI.
        Attr::RequestPrincipal
        | Attr::Claim(_)
        | Attr::Audience
        | Attr::Presenter
        | Attr::Sni
        | Attr::EnvoyFilter(_) => Bool::from_bool(false),
    }
}

/// A principal pattern. An L7 enforcer (Envoy) also matches a pattern
/// written with `cluster.local`, the mesh's trust domain or an alias as if
/// written with each of them; ztunnel compares as written.
fn principal(p: &Pattern, principal: &Text, conn: &Conn<'_>) -> Bool {
    let mut each = vec![principal.matches(p, false)];
    if conn.view == View::Full {
        each.extend(
            alias_forms(p, conn.trust)
                .iter()
                .map(|q| principal.matches(q, false)),
        );
    }
    Bool::or(&each)
}

/// The patterns a principal pattern also stands for in Envoy
/// (`ReplaceTrustDomainAliases`): `TD/ns/N/sa/S` with every trust domain of
/// the mesh in place of a known `TD`.
fn alias_forms(p: &Pattern, trust: &TrustDomains) -> Vec<Pattern> {
    let (text, exact) = match p {
        Pattern::Exact(s) => (s, true),
        Pattern::Prefix(s) => (s, false),
        _ => return Vec::new(),
    };
    let parts: Vec<&str> = text.split('/').collect();
    if parts.len() != 5 || parts[0] == "*" {
        return Vec::new();
    }
    let td = parts[0];
    let known = td == ambit_compiler::authz::DEFAULT_TRUST_DOMAIN
        || td == trust.trust_domain
        || trust.aliases.iter().any(|a| a == td);
    if !known {
        return Vec::new();
    }
    let rest = &text[td.len()..];
    std::iter::once(&trust.trust_domain)
        .chain(&trust.aliases)
        .map(|d| {
            let s = format!("{d}{rest}");
            if exact {
                Pattern::Exact(s)
            } else {
                Pattern::Prefix(s)
            }
        })
        .collect()
}

/// A string pattern: exact, `abc*`, `*abc`, `*` (non-empty), a path
/// template; `ignore_case` for hosts (ASCII letters).
pub fn text_pattern(p: &Pattern, v: &Str, ignore_case: bool) -> Bool {
    if ignore_case {
        let re = match p {
            Pattern::Exact(e) => case_insensitive(e),
            Pattern::Prefix(s) => Regexp::concat(&[&case_insensitive(s), &Regexp::full()]),
            Pattern::Suffix(s) => Regexp::concat(&[&Regexp::full(), &case_insensitive(s)]),
            Pattern::Presence => non_empty(),
            Pattern::Template(t) => template(t),
            Pattern::Cidr(_) | Pattern::Port(_) => return Bool::from_bool(false),
        };
        return v.regex_matches(&re);
    }
    match p {
        Pattern::Exact(e) => v.eq(literal(e)),
        Pattern::Prefix(s) => literal(s).prefix(v),
        Pattern::Suffix(s) => literal(s).suffix(v),
        Pattern::Presence => v.eq(literal("")).not(),
        Pattern::Template(t) => v.regex_matches(&template(t)),
        Pattern::Cidr(_) | Pattern::Port(_) => Bool::from_bool(false),
    }
}

fn non_empty() -> Regexp {
    re_literal("").complement()
}

fn case_insensitive(s: &str) -> Regexp {
    let chars: Vec<Regexp> = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                Regexp::union(&[
                    &re_literal(&c.to_ascii_lowercase().to_string()),
                    &re_literal(&c.to_ascii_uppercase().to_string()),
                ])
            } else {
                re_literal(&c.to_string())
            }
        })
        .collect();
    if chars.is_empty() {
        return re_literal("");
    }
    Regexp::concat(&chars.iter().collect::<Vec<_>>())
}

/// A path template: `{*}` is one non-empty segment, `{**}` the rest of the
/// path (or nothing, the path ending before it).
fn template(t: &str) -> Regexp {
    let segment = Regexp::intersect(&[
        &Regexp::concat(&[&Regexp::full(), &re_literal("/"), &Regexp::full()]).complement(),
        &non_empty(),
    ]);
    let mut parts: Vec<Regexp> = Vec::new();
    for (i, s) in t.split('/').enumerate() {
        if s == "{**}" {
            if i == 0 {
                return Regexp::full();
            }
            parts.push(Regexp::concat(&[&re_literal("/"), &Regexp::full()]).option());
            break;
        }
        if i > 0 {
            parts.push(re_literal("/"));
        }
        parts.push(if s == "{*}" {
            segment.clone()
        } else {
            re_literal(s)
        });
    }
    Regexp::concat(&parts.iter().collect::<Vec<_>>())
}

// ---------------------------------------------------------------------------
// The authorization IR over pods: mesh membership from labels, the policies
// a pod's labels attach, the PeerAuthentication chain.

impl Semantics<'_> {
    /// Istio's injection and ambient labels (a host-network pod is never in
    /// the mesh; an address outside the cluster neither).
    pub fn mesh_mode(&self, pod: &Pod) -> BV {
        let l = &pod.labels;
        let ns = &pod.namespace_labels;
        let has_label = l.exists(INJECT_LABEL);
        let inject_true = Bool::or(&[
            one(l, INJECT_LABEL, "true"),
            Bool::and(&[has_label.not(), pod.inject.eq(BV::from_u64(1, 2))]),
        ]);
        let inject_false = Bool::or(&[
            one(l, INJECT_LABEL, "false"),
            Bool::and(&[has_label.not(), pod.inject.eq(BV::from_u64(2, 2))]),
        ]);
        let by_namespace = Bool::or(&[
            one(ns, INJECTION_NS_LABEL, "enabled"),
            Bool::and(&[
                ns.exists(INJECTION_NS_LABEL).not(),
                ns.exists(REVISION_NS_LABEL),
            ]),
        ]);
        let injected = inject_false.ite(
            &Bool::from_bool(false),
            &inject_true.ite(
                &one(ns, INJECTION_NS_LABEL, "disabled").not(),
                &by_namespace,
            ),
        );
        let none = mesh(MeshMode::None);
        let ambient = mesh(MeshMode::Ambient);
        let dataplane = one(l, DATAPLANE_MODE_LABEL, "none").ite(
            &none,
            &one(l, DATAPLANE_MODE_LABEL, "ambient").ite(
                &ambient,
                &one(ns, DATAPLANE_MODE_LABEL, "ambient").ite(&ambient, &none),
            ),
        );
        Bool::or(&[pod.host_network.clone(), pod.external.clone()])
            .ite(&none, &injected.ite(&mesh(MeshMode::Sidecar), &dataplane))
    }

    /// The pod's namespace name, by cases (a new namespace: its symbolic
    /// name). An end of the inventory (its identities known) is in a known
    /// namespace or is the outside address, which has no identity and so
    /// no namespace.
    fn namespace_name(&self, pod: &Pod) -> Vec<(Bool, TextValue)> {
        let mut cases: Vec<(Bool, TextValue)> = self
            .namespaces
            .names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                (
                    pod.namespace.eq(idx(j as u64)),
                    TextValue::Known(name.clone()),
                )
            })
            .collect();
        cases.push((
            pod.namespace.bvuge(idx(self.namespaces.names.len() as u64)),
            match pod.identities {
                Some(_) => TextValue::Absent,
                None => TextValue::Parts(vec![Part::Variable(pod.namespace_name.clone())]),
            },
        ));
        cases
    }

    /// The source as authorization sees it.
    pub fn authz_source(&self, pod: &Pod) -> AuthzSource {
        let (principal, service_account) = match &pod.identities {
            Some(ids) => self.known_identity(ids),
            None => (
                self.symbolic_principal(pod),
                Text::symbolic(pod.service_account.clone()),
            ),
        };
        AuthzSource {
            mesh: self.mesh_mode(pod),
            principal,
            namespace: Text(self.namespace_name(pod)),
            service_account,
            ip: Ip(vec![(
                Bool::from_bool(true),
                IpValue::Symbolic(pod.ips[0].clone()),
            )]),
        }
    }

    /// The principal and the service account of an end that is one of
    /// `ids`: known texts, one case per identity.
    fn known_identity(&self, ids: &Identities) -> (Text, Text) {
        let td = self.trust().trust_domain;
        let (principal, service_account) = ids
            .names
            .iter()
            .enumerate()
            .map(|(k, (ns, sa))| {
                let is = ids.is(k);
                (
                    (
                        is.clone(),
                        TextValue::Known(format!("{td}/ns/{ns}/sa/{sa}")),
                    ),
                    (is, TextValue::Known(sa.clone())),
                )
            })
            .unzip();
        (Text(principal), Text(service_account))
    }

    /// The principal of any pod: its namespace's name and its service
    /// account, symbolic.
    fn symbolic_principal(&self, pod: &Pod) -> Text {
        let td = self.trust().trust_domain;
        let principal = self
            .namespace_name(pod)
            .into_iter()
            .map(|(cond, ns)| {
                let parts = match ns {
                    TextValue::Known(n) => vec![
                        Part::Literal(format!("{td}/ns/{n}/sa/")),
                        Part::Variable(pod.service_account.clone()),
                    ],
                    TextValue::Parts(mut name) => {
                        let mut parts = vec![Part::Literal(format!("{td}/ns/"))];
                        parts.append(&mut name);
                        parts.push(Part::Literal("/sa/".to_owned()));
                        parts.push(Part::Variable(pod.service_account.clone()));
                        parts
                    }
                    TextValue::Absent => unreachable!("a namespace has a name"),
                };
                (cond, TextValue::Parts(parts))
            })
            .collect();
        Text(principal)
    }

    pub fn trust(&self) -> TrustDomains {
        self.mesh.trust_domains()
    }

    /// What the destination pod's enforcer applies.
    pub fn authz_dest(&self, pod: &Pod, svc: &Service) -> AuthzDest {
        let policies = &self.cluster.authorization_policies;
        AuthzDest {
            mesh: self.mesh_mode(pod),
            mode: self.mtls_mode(pod, svc),
            attached: policies
                .iter()
                .map(|p| match self.local_out_of_scope(p) {
                    true => Bool::from_bool(false),
                    false => self.attached(p, pod),
                })
                .collect(),
            waypoint: policies
                .iter()
                .map(|p| match p.target_refs.is_empty() {
                    true => Bool::from_bool(false),
                    false => self.waypoint_attached(p, pod),
                })
                .collect(),
            ip: Ip(vec![(
                Bool::from_bool(true),
                IpValue::Symbolic(pod.ips[0].clone()),
            )]),
        }
    }

    /// A policy without `targetRefs` outside the root namespace, of a
    /// namespace the destination cannot be in ([`Semantics::among`]): it
    /// applies to no destination.
    fn local_out_of_scope(&self, p: &AuthzPolicy) -> bool {
        p.target_refs.is_empty()
            && p.namespace != self.mesh.root_namespace()
            && !self.can_be_in(1, &p.namespace)
    }

    /// A policy without `targetRefs` applies to the pods of its namespace
    /// (the root namespace: of every namespace) its `matchLabels` select.
    pub fn attached(&self, p: &AuthzPolicy, pod: &Pod) -> Bool {
        if !p.target_refs.is_empty() {
            return Bool::from_bool(false);
        }
        let ns = if p.namespace == self.mesh.root_namespace() {
            Bool::from_bool(true)
        } else {
            self.namespaces.is(pod, &p.namespace)
        };
        let sel = match &p.selector {
            None => Bool::from_bool(true),
            Some(labels) => match_labels(labels, &pod.labels),
        };
        Bool::and(&[ns, sel])
    }

    /// A policy with `targetRefs` applies at the pod's waypoint: a Service
    /// of its namespace selecting the pod, the Gateway the pod (or its
    /// namespace) names with `istio.io/use-waypoint`, or every waypoint
    /// (`GatewayClass` `istio-waypoint`, from the root namespace).
    pub fn waypoint_attached(&self, p: &AuthzPolicy, pod: &Pod) -> Bool {
        let (l, ns) = (&pod.labels, &pod.namespace_labels);
        // The waypoint the pod uses: its label, else its namespace's; `none`
        // is no waypoint.
        let uses = |name: &str| {
            l.exists(USE_WAYPOINT_LABEL).ite(
                &one(l, USE_WAYPOINT_LABEL, name),
                &one(ns, USE_WAYPOINT_LABEL, name),
            )
        };
        let any_waypoint = l.exists(USE_WAYPOINT_LABEL).ite(
            &one(l, USE_WAYPOINT_LABEL, "none").not(),
            &Bool::and(&[
                ns.exists(USE_WAYPOINT_LABEL),
                one(ns, USE_WAYPOINT_LABEL, "none").not(),
            ]),
        );
        let waypoint_ns = l.exists(USE_WAYPOINT_NS_LABEL).ite(
            &one(l, USE_WAYPOINT_NS_LABEL, &p.namespace),
            &self.namespaces.is(pod, &p.namespace),
        );
        let each: Vec<Bool> = p
            .target_refs
            .iter()
            .map(|t| match t.kind.as_str() {
                "Service" => {
                    let services: Vec<Bool> = self
                        .cluster
                        .services
                        .iter()
                        .filter(|s| s.namespace == p.namespace && s.name == t.name)
                        .filter_map(|s| s.selector.as_ref().filter(|sel| !sel.is_empty()))
                        .map(|sel| match_labels(sel, l))
                        .collect();
                    Bool::and(&[self.namespaces.is(pod, &p.namespace), Bool::or(&services)])
                }
                "Gateway" if t.name != "none" => Bool::and(&[uses(&t.name), waypoint_ns.clone()]),
                "GatewayClass" => Bool::from_bool(
                    p.namespace == self.mesh.root_namespace() && t.name == "istio-waypoint",
                )
                .ite(&any_waypoint, &Bool::from_bool(false)),
                _ => Bool::from_bool(false),
            })
            .collect();
        Bool::or(&each)
    }

    /// The effective mTLS mode at the flow's port: the root namespace's
    /// PeerAuthentication, then the namespace's, then the oldest one whose
    /// selector matches the pod (with its port-level modes); `UNSET`
    /// inherits, the default is PERMISSIVE.
    pub fn mtls_mode(&self, pod: &Pod, svc: &Service) -> BV {
        let pas = &self.cluster.peer_authentications;
        let root = self.mesh.root_namespace();
        let age = |i: &usize| {
            let p = &pas[*i];
            (p.created.is_none(), p.created.clone(), p.name.clone())
        };
        let oldest_wide = |ns: &str| {
            pas.iter()
                .enumerate()
                .filter(|(_, p)| p.namespace == ns && p.selector.is_none())
                .map(|(i, _)| i)
                .min_by_key(age)
        };
        let over = |base: MtlsMode, i: Option<usize>| match i.map(|i| pas[i].mode) {
            Some(m) if m != MtlsMode::Unset => m,
            _ => base,
        };
        let mesh_wide = over(MtlsMode::Permissive, oldest_wide(root));
        // A namespace that does not exist yet has no PeerAuthentication.
        let mut mode = mtls(mesh_wide);
        for (j, name) in self.namespaces.names.iter().enumerate().rev() {
            let here = if name == root {
                mtls(mesh_wide)
            } else {
                let base = over(mesh_wide, oldest_wide(name));
                let mut workload: Vec<usize> = pas
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.namespace == *name && p.selector.is_some())
                    .map(|(i, _)| i)
                    .collect();
                workload.sort_by_key(age);
                let mut m = mtls(base);
                for &i in workload.iter().rev() {
                    let pa = &pas[i];
                    let own = over(base, Some(i));
                    let mut at_port = mtls(own);
                    for (&port, &pm) in pa.port_level.iter().rev() {
                        if pm != MtlsMode::Unset {
                            at_port = svc
                                .port
                                .eq(BV::from_u64(port as u64, 16))
                                .ite(&mtls(pm), &at_port);
                        }
                    }
                    let selects =
                        match_labels(pa.selector.as_ref().expect("selected"), &pod.labels);
                    m = selects.ite(&at_port, &m);
                }
                m
            };
            mode = pod.namespace.eq(idx(j as u64)).ite(&here, &mode);
        }
        mode
    }

    /// The authorization layer of a flow: only TCP to a pod is subject to
    /// it.
    pub fn authz_allows(
        &self,
        src: &Pod,
        dst: &Pod,
        svc: &Service,
        view: View,
        request: Option<&Request>,
    ) -> Bool {
        if !has_authz(self.cluster) {
            return Bool::from_bool(true);
        }
        Bool::or(&[
            svc.is_protocol(Protocol::Tcp).not(),
            dst.external.clone(),
            authorize(
                &self.cluster.authorization_policies,
                &self.trust(),
                view,
                &self.authz_source(src),
                &self.authz_dest(dst, svc),
                svc,
                request,
            ),
        ])
    }
}

/// The label `k` has the value `v`.
fn one(labels: &Labels, k: &str, v: &str) -> Bool {
    labels.is_in(k, &[v.to_owned()].into())
}

/// `matchLabels`: every pair is a label of the pod.
pub fn match_labels(want: &LabelMap, labels: &Labels) -> Bool {
    let each: Vec<Bool> = want.iter().map(|(k, v)| one(labels, k, v)).collect();
    Bool::and(&each)
}

// ---------------------------------------------------------------------------
// The authorization layer of the tables: per class.

impl TableEncoding<'_> {
    /// The first address of a workload of each class (authorization's CIDRs
    /// hold it for all workloads of a class or for none).
    fn class_ip(&self, c: usize) -> Option<IpAddr> {
        self.tables
            .workloads
            .iter()
            .find(|w| w.class as usize == c)
            .and_then(|w| w.ips.first().copied())
    }

    /// The source end as the destination's enforcer sees it.
    pub fn authz_source(&self, end: &TableEnd, classes: &BTreeSet<u32>) -> AuthzSource {
        let authz = &self.tables.authz;
        let mut mesh_mode = mesh(MeshMode::None);
        let (mut principal, mut namespace, mut sa, mut ip) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let internal = end.external.not();
        for &c in classes {
            let here = Bool::and(&[internal.clone(), end.class.eq(idx(c as u64))]);
            let a = &authz.classes[c as usize];
            let class = &self.tables.classes[c as usize];
            mesh_mode = here.ite(&mesh(a.mesh), &mesh_mode);
            principal.push((
                here.clone(),
                match &a.principal {
                    Some(p) => TextValue::Known(p.clone()),
                    None => TextValue::Absent,
                },
            ));
            namespace.push((here.clone(), TextValue::Known(class.namespace.clone())));
            sa.push((
                here.clone(),
                TextValue::Known(class.service_account.clone()),
            ));
            ip.push((here, IpValue::Known(self.class_ip(c as usize))));
        }
        ip.push((end.external.clone(), IpValue::Symbolic(end.addr.clone())));
        AuthzSource {
            mesh: mesh_mode,
            principal: Text(principal),
            namespace: Text(namespace),
            service_account: Text(sa),
            ip: Ip(ip),
        }
    }

    /// What the destination class's enforcer applies.
    pub fn authz_dest(&self, end: &TableEnd, svc: &Service, classes: &BTreeSet<u32>) -> AuthzDest {
        let authz = &self.tables.authz;
        let n = authz.policies.len();
        let mut mesh_mode = mesh(MeshMode::None);
        let mut mode = mtls(MtlsMode::Permissive);
        let mut attached: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut waypoint: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut ip = Vec::new();
        for &c in classes {
            let here = end.class.eq(idx(c as u64));
            let a = &authz.classes[c as usize];
            mesh_mode = here.ite(&mesh(a.mesh), &mesh_mode);
            let mut at_port = mtls(a.mtls.mode);
            for &(port, m, _) in a.mtls.ports.iter().rev() {
                at_port = svc
                    .port
                    .eq(BV::from_u64(port as u64, 16))
                    .ite(&mtls(m), &at_port);
            }
            mode = here.ite(&at_port, &mode);
            for &p in &a.policies {
                attached[p as usize].push(c);
            }
            for &p in &a.waypoint_policies {
                waypoint[p as usize].push(c);
            }
            ip.push((here, IpValue::Known(self.class_ip(c as usize))));
        }
        let of = |ids: &[u32]| super::in_ranges(ids, &end.class);
        AuthzDest {
            mesh: mesh_mode,
            mode,
            attached: attached.iter().map(|ids| of(ids)).collect(),
            waypoint: waypoint.iter().map(|ids| of(ids)).collect(),
            ip: Ip(ip),
        }
    }

    /// The authorization layer of a flow between two ends.
    pub fn authz_allows(
        &self,
        src: &TableEnd,
        dst: &TableEnd,
        svc: &Service,
        classes: [&BTreeSet<u32>; 2],
        view: View,
        request: Option<&Request>,
    ) -> Bool {
        let authz = &self.tables.authz;
        if authz.policies.is_empty() && authz.peer_authentications.is_empty() {
            return Bool::from_bool(true);
        }
        Bool::or(&[
            svc.is_protocol(Protocol::Tcp).not(),
            dst.external.clone(),
            authorize(
                &authz.policies,
                &authz.trust,
                view,
                &self.authz_source(src, classes[0]),
                &self.authz_dest(dst, svc, classes[1]),
                svc,
                request,
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use z3::{SatResult, Solver};

    fn always(b: &Bool) -> bool {
        let s = Solver::new();
        s.assert(b.not());
        s.check() == SatResult::Unsat
    }

    fn matches(p: &Pattern, v: &str, ignore_case: bool) -> bool {
        text_pattern(p, &literal(v), ignore_case)
            .simplify()
            .as_bool()
            .unwrap_or_else(|| always(&text_pattern(p, &literal(v), ignore_case)))
    }

    #[test]
    fn string_patterns_agree_with_the_compiler() {
        let cases = [
            ("cluster.local/ns/a/sa/b", "cluster.local/ns/a/sa/b"),
            ("cluster.local/*", "cluster.local/ns/a/sa/b"),
            ("*/sa/b", "cluster.local/ns/a/sa/b"),
            ("*", ""),
            ("*", "x"),
            ("a*", "b"),
            ("*a", "ba"),
            ("ünï\\code", "ünï\\code"),
        ];
        for (p, v) in cases {
            let pat = Pattern::parse_string(p);
            let want = {
                let f = Field {
                    attr: Attr::Namespace,
                    values: vec![pat.clone()],
                    not_values: Vec::new(),
                };
                let conn = ambit_compiler::authz::Connection {
                    peer: ambit_compiler::authz::Peer {
                        namespace: Some(v),
                        ..Default::default()
                    },
                    destination_ip: None,
                    port: 80,
                    request: None,
                };
                f.matches(&conn, &TrustDomains::default(), View::L4)
            };
            assert_eq!(matches(&pat, v, false), want, "{p} against {v:?}");
        }
    }

    /// Exact, prefix, suffix and presence split over a concatenation with
    /// variables agree with matching the whole string.
    #[test]
    fn split_patterns_agree_with_whole_strings() {
        let patterns = [
            "cluster.local/ns/bar/sa/client",
            "cluster.local/ns/bar/*",
            "cluster.local/ns/b*",
            "cluster.local/n*",
            "*/ns/bar/sa/client",
            "*r/sa/client",
            "*client",
            "*t",
            "*",
            "other/*",
            "*/sa/",
        ];
        let values = [
            ("bar", "client"),
            ("bar", "clientx"),
            ("ba", "client"),
            ("foo", ""),
            ("", "t"),
            ("bar/sa/x", "client"),
        ];
        for p in patterns {
            let pat = Pattern::parse_string(p);
            for (ns, sa) in values {
                let whole = format!("cluster.local/ns/{ns}/sa/{sa}");
                let want = matches(&pat, &whole, false);
                let (n, a) = (Str::new_const("n"), Str::new_const("a"));
                let parts = [
                    Part::Literal("cluster.local/ns/".into()),
                    Part::Variable(n.clone()),
                    Part::Literal("/sa/".into()),
                    Part::Variable(a.clone()),
                ];
                let s = Solver::new();
                s.assert(n.eq(literal(ns)));
                s.assert(a.eq(literal(sa)));
                s.assert(parts_pattern(&pat, &parts, false));
                let got = s.check() == SatResult::Sat;
                assert_eq!(got, want, "{p} against {whole}");
            }
        }
    }

    /// The plain comparison of known values decides as the string theory.
    #[test]
    fn known_values_match_as_the_solver_does() {
        let patterns = [
            "cluster.local/ns/a/sa/b",
            "cluster.local/*",
            "*/sa/b",
            "*",
            "a*",
            "*a",
            "Shop.Example",
            "ü*",
            "*é",
            "",
        ];
        let values = [
            "cluster.local/ns/a/sa/b",
            "CLUSTER.local/ns/a/sa/B",
            "",
            "a",
            "A",
            "ba",
            "shop.EXAMPLE",
            "üx",
            "xé",
            "xÉ",
            "ünï\\code",
        ];
        for p in patterns {
            let mut pats = vec![Pattern::parse_string(p), Pattern::Exact(p.to_owned())];
            pats.push(Pattern::Cidr("10.0.0.0/8".parse().unwrap()));
            for pat in &pats {
                for v in values {
                    for ignore_case in [false, true] {
                        let b = text_pattern(pat, &literal(v), ignore_case);
                        let z3 = b.simplify().as_bool().unwrap_or_else(|| always(&b));
                        assert_eq!(
                            known_matches(pat, v, ignore_case),
                            Some(z3),
                            "{pat:?} against {v:?}, ignore case {ignore_case}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            known_matches(&Pattern::Template("/v1/{*}".into()), "/v1/x", false),
            None
        );
    }

    #[test]
    fn hosts_ignore_case_and_templates_match_segments() {
        assert!(matches(
            &Pattern::Exact("Shop.Example".into()),
            "shop.EXAMPLE",
            true
        ));
        assert!(!matches(&Pattern::Exact("shop".into()), "shopx", true));
        assert!(matches(&Pattern::Suffix(".com".into()), "a.COM", true));
        for (t, path) in [
            ("/v1/{*}/items", "/v1/x/items"),
            ("/v1/{*}/items", "/v1//items"),
            ("/v1/{*}/items", "/v1/x/y/items"),
            ("/v1/{**}", "/v1"),
            ("/v1/{**}", "/v1/a/b"),
            ("/v1/{**}", "/v2/a"),
            ("{**}", "/anything"),
            ("/a/{*}", "/a/"),
        ] {
            let want = ambit_compiler::authz::template_matches(t, path);
            assert_eq!(
                matches(&Pattern::Template(t.into()), path, false),
                want,
                "{t} against {path}"
            );
        }
    }

    #[test]
    fn a_free_path_is_found_for_a_template() {
        let s = Solver::new();
        let v = Str::new_const("path");
        s.assert(text_pattern(
            &Pattern::Template("/v1/{*}/items".into()),
            &v,
            false,
        ));
        assert_eq!(s.check(), SatResult::Sat);
        let model = s.get_model().expect("a model");
        let path = model
            .eval(&v, true)
            .and_then(|x| x.as_string())
            .expect("a string");
        assert!(
            ambit_compiler::authz::template_matches("/v1/{*}/items", &path),
            "{path}"
        );
    }
}
