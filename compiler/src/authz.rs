//! The authorization layer: Istio `AuthorizationPolicy` as policy IR, and its
//! evaluation in the two views ambit reports.
//!
//! # The IR
//!
//! A policy is an action, a scope and rules. A rule is `from` entries (ORed),
//! `to` entries (ORed) and `when` conditions (ANDed); the three parts are
//! ANDed, and an absent part constrains nothing. An entry is a list of
//! [`Field`]s, ANDed; a `when` condition is one field. A field is an attribute
//! with `values` (one must match, when there are any) and `not_values` (none
//! may match), so `principals` and `notPrincipals` of one source are one
//! field, exactly as Envoy and ztunnel evaluate them.
//!
//! # The views
//!
//! * [`View::Full`]: an L7-capable enforcer at the destination (a sidecar or
//!   a waypoint). With an HTTP request every attribute is evaluated. Without
//!   one the connection is opaque TCP and Istio's translation for Envoy's
//!   network filter applies: an ALLOW (or CUSTOM) rule with an HTTP-only
//!   attribute is skipped; in a DENY (or AUDIT) rule the HTTP-only fields are
//!   dropped, so the rule matches more (an entry left with nothing matches
//!   everything).
//! * [`View::L4`]: ambient's node proxy, ztunnel, after istiod's translation
//!   (`convertAuthorizationPolicy`): only principals, namespaces, service
//!   accounts, source IPs, destination ports and IPs exist. An ALLOW rule with
//!   any other attribute is dropped (its policy still counts as an ALLOW
//!   policy). In a DENY rule the other fields are removed; an entry left empty
//!   never matches, so a `from` or `to` list of only such entries, or a
//!   `when` condition on another key, makes the whole rule never match: that
//!   DENY fails open at L4. CUSTOM and AUDIT are not enforced; policies
//!   attached to waypoints (`targetRefs`) are not seen. Principals are
//!   compared as written (no trust-domain alias expansion).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::labels::Labels;

/// The default trust domain of a mesh.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The default root namespace of a mesh.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
/// Annotation that turns a policy into a dry run.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Allow,
    Deny,
    Audit,
    Custom,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        }
    }
}

/// A reference from a policy to a waypoint or gateway resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TargetRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub kind: String,
    pub name: String,
}

/// A lowered AuthorizationPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzPolicy {
    pub namespace: String,
    pub name: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `selector.matchLabels`; `None`: every workload of the namespace (or of
    /// the mesh, in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Labels>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<TargetRef>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub rules: Vec<AuthzRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthzRule {
    /// `None`: no `from` (every source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<Entry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<Entry>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Field>,
}

/// One `source` or `operation`: its fields are ANDed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Entry {
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub attr: Attr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Pattern>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<Pattern>,
}

/// What a field looks at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attr {
    /// The peer certificate's identity (`source.principal`, `principals`).
    Principal,
    /// `request.auth.principal`, `requestPrincipals`.
    RequestPrincipal,
    /// `source.namespace`, `namespaces`.
    Namespace,
    /// `serviceAccounts`: values are `namespace/name`.
    ServiceAccount,
    /// The connection's source address (`source.ip`, `ipBlocks`).
    SourceIp,
    /// The original client address (`remote.ip`, `remoteIpBlocks`).
    RemoteIp,
    DestinationIp,
    DestinationPort,
    /// `connection.sni`.
    Sni,
    Host,
    Method,
    Path,
    /// `request.headers[NAME]` (name lower-cased).
    Header(String),
    /// `request.auth.claims[...]`.
    Claim(String),
    Audience,
    Presenter,
    /// `experimental.envoy.filters.*`.
    EnvoyFilter(String),
}

impl Attr {
    /// Attributes only an HTTP request has (Envoy's network filter drops
    /// them for TCP).
    pub fn is_http_only(&self) -> bool {
        matches!(
            self,
            Attr::RequestPrincipal
                | Attr::Host
                | Attr::Method
                | Attr::Path
                | Attr::Header(_)
                | Attr::Claim(_)
                | Attr::Audience
                | Attr::Presenter
                | Attr::EnvoyFilter(_)
        )
    }

    /// Attributes ztunnel can see (istiod's translation keeps only these).
    pub fn is_l4(&self) -> bool {
        matches!(
            self,
            Attr::Principal
                | Attr::Namespace
                | Attr::ServiceAccount
                | Attr::SourceIp
                | Attr::DestinationIp
                | Attr::DestinationPort
        )
    }

    /// The field name as a policy writes it (for messages).
    pub fn describe(&self) -> String {
        match self {
            Attr::Principal => "principals".into(),
            Attr::RequestPrincipal => "requestPrincipals".into(),
            Attr::Namespace => "namespaces".into(),
            Attr::ServiceAccount => "serviceAccounts".into(),
            Attr::SourceIp => "ipBlocks".into(),
            Attr::RemoteIp => "remoteIpBlocks".into(),
            Attr::DestinationIp => "destination.ip".into(),
            Attr::DestinationPort => "ports".into(),
            Attr::Sni => "connection.sni".into(),
            Attr::Host => "hosts".into(),
            Attr::Method => "methods".into(),
            Attr::Path => "paths".into(),
            Attr::Header(h) => format!("request.headers[{h}]"),
            Attr::Claim(c) => format!("request.auth.claims[{c}]"),
            Attr::Audience => "request.auth.audiences".into(),
            Attr::Presenter => "request.auth.presenter".into(),
            Attr::EnvoyFilter(k) => k.clone(),
        }
    }
}

/// A value of a field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    Exact(String),
    /// `abc*`
    Prefix(String),
    /// `*abc`
    Suffix(String),
    /// `*`: any non-empty value.
    Presence,
    /// A path template with `{*}` / `{**}` segments.
    Template(String),
    Cidr(IpNet),
    Port(u16),
}

impl Pattern {
    /// The string forms: exact, `abc*`, `*abc`, `*`.
    pub fn parse_string(v: &str) -> Pattern {
        if v == "*" {
            Pattern::Presence
        } else if let Some(s) = v.strip_prefix('*') {
            Pattern::Suffix(s.to_owned())
        } else if let Some(p) = v.strip_suffix('*') {
            Pattern::Prefix(p.to_owned())
        } else {
            Pattern::Exact(v.to_owned())
        }
    }

    fn matches_str(&self, v: &str, ignore_case: bool) -> bool {
        let eq = |a: &str, b: &str| {
            if ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match self {
            Pattern::Exact(e) => eq(v, e),
            Pattern::Prefix(p) => {
                v.len() >= p.len() && v.is_char_boundary(p.len()) && eq(&v[..p.len()], p)
            }
            Pattern::Suffix(s) => {
                v.len() >= s.len()
                    && v.is_char_boundary(v.len() - s.len())
                    && eq(&v[v.len() - s.len()..], s)
            }
            Pattern::Presence => !v.is_empty(),
            Pattern::Template(t) => template_matches(t, v),
            Pattern::Cidr(_) | Pattern::Port(_) => false,
        }
    }
}

/// Does a path match a template of `{*}` (one non-empty segment) and `{**}`
/// (any rest, `/` included) segments?
pub fn template_matches(template: &str, path: &str) -> bool {
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some("{**}"), Some(_)) | (Some("{**}"), None) => return true,
            (Some("{*}"), Some(seg)) => {
                if seg.is_empty() {
                    return false;
                }
            }
            (Some(a), Some(b)) => {
                if a != b {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Who the source is, as the destination sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer<'a> {
    /// `TRUST_DOMAIN/ns/NS/sa/SA`; `None` without mTLS.
    pub principal: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub service_account: Option<&'a str>,
    pub ip: Option<IpAddr>,
}

/// An HTTP request on the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    /// Names lower-cased.
    pub headers: BTreeMap<String, String>,
}

/// Everything a rule can look at.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    pub peer: Peer<'a>,
    pub destination_ip: Option<IpAddr>,
    pub port: u16,
    pub request: Option<&'a Request>,
}

/// The trust domain of the mesh and its aliases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustDomains {
    pub trust_domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl Default for TrustDomains {
    fn default() -> Self {
        Self {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            aliases: Vec::new(),
        }
    }
}

impl TrustDomains {
    /// Envoy's principal match: a principal `TD/ns/N/sa/S` whose trust
    /// domain is `cluster.local`, the mesh's or an alias is matched as if
    /// written with each of them (istiod's `ReplaceTrustDomainAliases`).
    fn principal_matches(&self, pattern: &Pattern, principal: &str) -> bool {
        if pattern.matches_str(principal, false) {
            return true;
        }
        let text = match pattern {
            Pattern::Exact(s) | Pattern::Prefix(s) => s,
            _ => return false,
        };
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() != 5 || parts[0] == "*" {
            return false;
        }
        let td = parts[0];
        let known = td == DEFAULT_TRUST_DOMAIN
            || td == self.trust_domain
            || self.aliases.iter().any(|a| a == td);
        if !known {
            return false;
        }
        let rest = &text[td.len()..];
        std::iter::once(&self.trust_domain)
            .chain(&self.aliases)
            .any(|d| {
                principal
                    .strip_prefix(d.as_str())
                    .is_some_and(|p| match pattern {
                        Pattern::Exact(_) => p == rest,
                        _ => p.starts_with(rest),
                    })
            })
    }
}

/// Which enforcer is deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Full,
    L4,
}

/// How a rule fared, with the transformation the view applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOutcome {
    Matches,
    NoMatch,
    /// Full view, TCP: an ALLOW/CUSTOM rule with HTTP-only attributes.
    SkippedHttpOnly,
    /// Full view, TCP: a DENY rule matched once its HTTP-only fields were
    /// dropped.
    MatchesWidened,
    /// L4: an ALLOW rule with L7 attributes, dropped by istiod.
    DroppedL7,
    /// L4: a DENY rule matched once its L7 fields were removed.
    MatchesWithoutL7,
    /// L4: a DENY rule whose `from`, `to` or a `when` condition is only L7:
    /// it never matches (fails open).
    FailsOpenL7,
}

impl RuleOutcome {
    pub fn matched(self) -> bool {
        matches!(
            self,
            RuleOutcome::Matches | RuleOutcome::MatchesWidened | RuleOutcome::MatchesWithoutL7
        )
    }
}

impl AuthzRule {
    /// Every field of the rule: `from`, `to` and `when`.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.from
            .iter()
            .flatten()
            .chain(self.to.iter().flatten())
            .flat_map(|e| e.fields.iter())
            .chain(&self.when)
    }

    pub fn has_http_only(&self) -> bool {
        self.fields().any(|f| f.attr.is_http_only())
    }

    pub fn has_l7(&self) -> bool {
        self.fields().any(|f| !f.attr.is_l4())
    }

    /// Evaluate the rule of a policy with `action` in a view.
    pub fn evaluate(
        &self,
        action: Action,
        view: View,
        conn: &Connection<'_>,
        trust: &TrustDomains,
    ) -> RuleOutcome {
        let permissive_action = matches!(action, Action::Allow | Action::Custom);
        match view {
            View::Full if conn.request.is_none() => {
                if !self.has_http_only() {
                    return outcome(self.matches_with(conn, trust, view, |_| true));
                }
                if permissive_action {
                    return RuleOutcome::SkippedHttpOnly;
                }
                if self.matches_with(conn, trust, view, |f| !f.attr.is_http_only()) {
                    RuleOutcome::MatchesWidened
                } else {
                    RuleOutcome::NoMatch
                }
            }
            View::Full => outcome(self.matches_with(conn, trust, view, |_| true)),
            View::L4 => {
                if !self.has_l7() {
                    return outcome(self.matches_with(conn, trust, view, |_| true));
                }
                if permissive_action {
                    return RuleOutcome::DroppedL7;
                }
                let only_l7 = |list: &Option<Vec<Entry>>| {
                    list.as_ref()
                        .is_some_and(|l| l.iter().all(|e| e.fields.iter().all(|f| !f.attr.is_l4())))
                };
                if only_l7(&self.from)
                    || only_l7(&self.to)
                    || self.when.iter().any(|f| !f.attr.is_l4())
                {
                    return RuleOutcome::FailsOpenL7;
                }
                // Entries reduced to nothing never match at L4.
                let l4_list = |list: &Option<Vec<Entry>>| {
                    list.as_ref().is_none_or(|l| {
                        l.iter().any(|e| {
                            e.fields.iter().any(|f| f.attr.is_l4())
                                && e.fields
                                    .iter()
                                    .filter(|f| f.attr.is_l4())
                                    .all(|f| f.matches(conn, trust, view))
                        })
                    })
                };
                if l4_list(&self.from)
                    && l4_list(&self.to)
                    && self.when.iter().all(|f| f.matches(conn, trust, view))
                {
                    RuleOutcome::MatchesWithoutL7
                } else {
                    RuleOutcome::NoMatch
                }
            }
        }
    }

    /// Match with only the fields `keep` keeps; an entry left with nothing
    /// matches everything.
    fn matches_with(
        &self,
        conn: &Connection<'_>,
        trust: &TrustDomains,
        view: View,
        keep: impl Fn(&Field) -> bool + Copy,
    ) -> bool {
        let list = |l: &Option<Vec<Entry>>| {
            l.as_ref().is_none_or(|l| {
                l.iter().any(|e| {
                    e.fields
                        .iter()
                        .filter(|f| keep(f))
                        .all(|f| f.matches(conn, trust, view))
                })
            })
        };
        list(&self.from)
            && list(&self.to)
            && self
                .when
                .iter()
                .filter(|f| keep(f))
                .all(|f| f.matches(conn, trust, view))
    }
}

fn outcome(matched: bool) -> RuleOutcome {
    if matched {
        RuleOutcome::Matches
    } else {
        RuleOutcome::NoMatch
    }
}

impl Field {
    pub fn matches(&self, conn: &Connection<'_>, trust: &TrustDomains, view: View) -> bool {
        let any = |ps: &[Pattern]| ps.iter().any(|p| self.value_matches(p, conn, trust, view));
        (self.values.is_empty() || any(&self.values))
            && (self.not_values.is_empty() || !any(&self.not_values))
    }

    fn value_matches(
        &self,
        pattern: &Pattern,
        conn: &Connection<'_>,
        trust: &TrustDomains,
        view: View,
    ) -> bool {
        let peer = &conn.peer;
        let req = conn.request;
        let ip_in = |ip: Option<IpAddr>| match (pattern, ip) {
            (Pattern::Cidr(net), Some(ip)) => net.contains(&ip),
            _ => false,
        };
        match &self.attr {
            Attr::Principal => peer.principal.is_some_and(|p| match view {
                View::Full => trust.principal_matches(pattern, p),
                View::L4 => pattern.matches_str(p, false),
            }),
            Attr::Namespace => peer
                .namespace
                .is_some_and(|n| pattern.matches_str(n, false)),
            Attr::ServiceAccount => match (peer.namespace, peer.service_account, pattern) {
                (Some(ns), Some(sa), Pattern::Exact(want)) => want
                    .split_once('/')
                    .is_some_and(|(wns, wsa)| wns == ns && wsa == sa),
                _ => false,
            },
            Attr::SourceIp | Attr::RemoteIp => ip_in(peer.ip),
            Attr::DestinationIp => ip_in(conn.destination_ip),
            Attr::DestinationPort => matches!(pattern, Pattern::Port(p) if *p == conn.port),
            Attr::Host => req
                .and_then(|r| r.host.as_deref())
                .is_some_and(|h| pattern.matches_str(h, true)),
            Attr::Method => req
                .map(|r| r.method.as_deref().unwrap_or("GET"))
                .is_some_and(|m| pattern.matches_str(m, false)),
            Attr::Path => req
                .map(|r| {
                    let p = r.path.as_deref().unwrap_or("/");
                    p.split_once('?').map_or(p, |(p, _)| p)
                })
                .is_some_and(|p| pattern.matches_str(p, false)),
            Attr::Header(name) => req
                .and_then(|r| r.headers.get(name))
                .is_some_and(|v| pattern.matches_str(v, false)),
            // Probes carry no JWT and no SNI: these values are absent.
            Attr::RequestPrincipal
            | Attr::Claim(_)
            | Attr::Audience
            | Attr::Presenter
            | Attr::Sni
            | Attr::EnvoyFilter(_) => false,
        }
    }
}

/// The mutual-TLS mode of a PeerAuthentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MtlsMode {
    Unset,
    Disable,
    Permissive,
    Strict,
}

impl MtlsMode {
    pub fn parse(s: &str) -> Option<MtlsMode> {
        Some(match s {
            "UNSET" => MtlsMode::Unset,
            "DISABLE" => MtlsMode::Disable,
            "PERMISSIVE" => MtlsMode::Permissive,
            "STRICT" => MtlsMode::Strict,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MtlsMode::Unset => "UNSET",
            MtlsMode::Disable => "DISABLE",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Strict => "STRICT",
        }
    }
}

/// A lowered PeerAuthentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAuthn {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Labels>,
    pub mode: MtlsMode,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level: BTreeMap<u16, MtlsMode>,
    /// `metadata.creationTimestamp`, for precedence among policies of one
    /// level (the oldest wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// How a workload takes part in the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshMode {
    /// Not in the mesh: no proxy, no identity, no authorization.
    None,
    Ambient,
    Sidecar,
}

/// The mesh settings (`istio` ConfigMap, command-line overrides).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MeshSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain_aliases: Option<Vec<String>>,
}

impl MeshSettings {
    /// `self` where set, else `base`.
    pub fn over(&self, base: &MeshSettings) -> MeshSettings {
        MeshSettings {
            root_namespace: self
                .root_namespace
                .clone()
                .or_else(|| base.root_namespace.clone()),
            trust_domain: self
                .trust_domain
                .clone()
                .or_else(|| base.trust_domain.clone()),
            trust_domain_aliases: self
                .trust_domain_aliases
                .clone()
                .or_else(|| base.trust_domain_aliases.clone()),
        }
    }

    pub fn root_namespace(&self) -> &str {
        self.root_namespace
            .as_deref()
            .unwrap_or(DEFAULT_ROOT_NAMESPACE)
    }

    pub fn trust_domains(&self) -> TrustDomains {
        TrustDomains {
            trust_domain: self
                .trust_domain
                .clone()
                .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.to_owned()),
            aliases: self.trust_domain_aliases.clone().unwrap_or_default(),
        }
    }
}

/// Mesh membership from the pod's and its namespace's labels (and the
/// pod's `sidecar.istio.io/inject` annotation).
pub fn mesh_mode(
    pod_labels: &Labels,
    inject_annotation: Option<&str>,
    namespace_labels: Option<&Labels>,
    host_network: bool,
) -> MeshMode {
    if host_network {
        return MeshMode::None;
    }
    let ns = |k: &str| namespace_labels.and_then(|l| l.get(k)).map(String::as_str);
    let pod_inject = pod_labels
        .get("sidecar.istio.io/inject")
        .map(String::as_str)
        .or(inject_annotation);
    let ns_injection = ns("istio-injection");
    let injected = match pod_inject {
        Some("false") => false,
        Some("true") => ns_injection != Some("disabled"),
        _ => {
            ns_injection == Some("enabled")
                || (ns_injection.is_none() && ns("istio.io/rev").is_some())
        }
    };
    if injected {
        return MeshMode::Sidecar;
    }
    match pod_labels
        .get("istio.io/dataplane-mode")
        .map(String::as_str)
    {
        Some("none") => MeshMode::None,
        Some("ambient") => MeshMode::Ambient,
        _ if ns("istio.io/dataplane-mode") == Some("ambient") => MeshMode::Ambient,
        _ => MeshMode::None,
    }
}

/// The authorization layer of the decision tables.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthzTables {
    pub trust: TrustDomains,
    pub root_namespace: String,
    /// Every AuthorizationPolicy, sorted by namespace and name.
    pub policies: Vec<AuthzPolicy>,
    /// Every PeerAuthentication, as `(namespace, name)`, sorted.
    pub peer_authentications: Vec<(String, String)>,
    /// One entry per class.
    pub classes: Vec<AuthzClass>,
}

/// What authorization needs to know of a class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzClass {
    pub mesh: MeshMode,
    /// `TRUST_DOMAIN/ns/NS/sa/SA`, for classes in the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Policies attached to the workloads (selector, namespace, root
    /// namespace), by index, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<u32>,
    /// Policies attached with `targetRefs` to the waypoint or Service in front
    /// of the workloads: decided in the full view only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waypoint_policies: Vec<u32>,
    pub mtls: Mtls,
}

/// The effective mutual-TLS mode of a class (never `Unset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mtls {
    pub mode: MtlsMode,
    /// The PeerAuthentication that set it (`None`: the PERMISSIVE default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// Port-level overrides: `(port, mode, PeerAuthentication)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<(u16, MtlsMode, u32)>,
}

impl Default for Mtls {
    fn default() -> Self {
        Self {
            mode: MtlsMode::Permissive,
            from: None,
            ports: Vec::new(),
        }
    }
}

impl Mtls {
    /// The mode at a port and the PeerAuthentication that set it.
    pub fn at(&self, port: u16) -> (MtlsMode, Option<u32>) {
        self.ports
            .iter()
            .find(|(p, _, _)| *p == port)
            .map_or((self.mode, self.from), |&(_, m, pa)| (m, Some(pa)))
    }
}

/// The source of a connection as authorization sees it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub mesh: MeshMode,
    pub principal: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub service_account: Option<&'a str>,
    pub ip: Option<IpAddr>,
}

/// Why authorization decided as it did: one line of `decided_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub rule: String,
    pub effect: String,
}

/// What the external authorizer of CUSTOM policies answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtAuthz {
    Unknown,
    Allow,
    Deny,
}

struct Notes<'a>(Option<&'a mut Vec<Note>>);

impl Notes<'_> {
    fn push(&mut self, make: impl FnOnce() -> Note) {
        if let Some(v) = self.0.as_mut() {
            v.push(make());
        }
    }
}

impl AuthzTables {
    fn note(&self, policy: u32, rule: Option<usize>, effect: impl Into<String>) -> Note {
        let p = &self.policies[policy as usize];
        Note {
            kind: "AuthorizationPolicy",
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            rule: rule.map(|i| format!("rules[{i}]")).unwrap_or_default(),
            effect: effect.into(),
        }
    }

    /// Does the destination's authorization admit a TCP connection (and its
    /// request, when given)? `notes`, when given, receives what decided.
    /// Allocation-free when `notes` is `None`.
    #[allow(clippy::too_many_arguments)]
    pub fn authorize(
        &self,
        src: &Source<'_>,
        dst: &AuthzClass,
        destination_ip: Option<IpAddr>,
        port: u16,
        request: Option<&Request>,
        ext_authz: ExtAuthz,
        view: View,
        notes: Option<&mut Vec<Note>>,
    ) -> bool {
        let mut notes = Notes(notes);
        if dst.mesh == MeshMode::None {
            return true;
        }
        let (mode, mode_from) = dst.mtls.at(port);
        let identity = src.mesh != MeshMode::None
            && !(dst.mesh == MeshMode::Sidecar && mode == MtlsMode::Disable);
        if !identity && mode == MtlsMode::Strict {
            notes.push(|| {
                let (namespace, name) = mode_from
                    .and_then(|i| self.peer_authentications.get(i as usize).cloned())
                    .unwrap_or_default();
                Note {
                    kind: "PeerAuthentication",
                    namespace,
                    name,
                    rule: "mtls".into(),
                    effect: "STRICT mTLS refuses a source without mesh identity".into(),
                }
            });
            return false;
        }
        let conn = Connection {
            peer: Peer {
                principal: src.principal.filter(|_| identity),
                namespace: src.namespace.filter(|_| identity),
                service_account: src.service_account.filter(|_| identity),
                ip: src.ip,
            },
            destination_ip,
            port,
            request,
        };
        let waypoint: &[u32] = match view {
            View::Full => &dst.waypoint_policies,
            View::L4 => &[],
        };
        let applying = || {
            dst.policies
                .iter()
                .chain(waypoint)
                .map(|&i| (i, &self.policies[i as usize]))
        };
        let first_match = |p: &AuthzPolicy| {
            p.rules.iter().enumerate().find_map(|(i, r)| {
                let o = r.evaluate(p.action, view, &conn, &self.trust);
                o.matched().then_some((i, o))
            })
        };

        // CUSTOM: an external authorizer; ztunnel does not enforce it.
        if view == View::Full {
            for (pi, p) in applying().filter(|(_, p)| p.action == Action::Custom) {
                let Some((ri, _)) = first_match(p) else {
                    continue;
                };
                let provider = p.provider.as_deref().unwrap_or("");
                if p.dry_run {
                    notes.push(|| {
                        self.note(
                            pi,
                            Some(ri),
                            format!("dry-run: would ask provider `{provider}`"),
                        )
                    });
                    continue;
                }
                match ext_authz {
                    ExtAuthz::Allow => notes.push(|| {
                        self.note(
                            pi,
                            Some(ri),
                            format!("provider `{provider}` allows (ext_authz)"),
                        )
                    }),
                    ExtAuthz::Deny => {
                        notes.push(|| {
                            self.note(
                                pi,
                                Some(ri),
                                format!("provider `{provider}` denies (ext_authz)"),
                            )
                        });
                        return false;
                    }
                    ExtAuthz::Unknown => {
                        notes.push(|| {
                            self.note(
                                pi,
                                Some(ri),
                                format!("depends on provider `{provider}`: unknown statically, counted as denied (give the probe `ext_authz`)"),
                            )
                        });
                        return false;
                    }
                }
            }
        }

        // DENY.
        let mut denied = false;
        for (pi, p) in applying().filter(|(_, p)| p.action == Action::Deny) {
            for (ri, r) in p.rules.iter().enumerate() {
                let o = r.evaluate(p.action, view, &conn, &self.trust);
                let effect = match o {
                    RuleOutcome::Matches => "denies",
                    RuleOutcome::MatchesWidened => {
                        "denies (HTTP-only attributes ignored on TCP: the deny widens)"
                    }
                    RuleOutcome::MatchesWithoutL7 => {
                        "denies at L4 (ztunnel drops the L7 attributes: the deny widens)"
                    }
                    RuleOutcome::FailsOpenL7 => {
                        notes.push(|| self.note(pi, Some(ri), "ignored at L4: only L7 attributes, ztunnel never matches it (the deny fails open)"));
                        continue;
                    }
                    _ => continue,
                };
                if p.dry_run {
                    notes.push(|| {
                        self.note(pi, Some(ri), format!("dry-run: would deny ({effect})"))
                    });
                    continue;
                }
                notes.push(|| self.note(pi, Some(ri), effect));
                denied = true;
                break;
            }
            if denied && notes.0.is_none() {
                return false;
            }
        }
        if denied {
            return false;
        }

        // ALLOW.
        let allow: Vec<(u32, &AuthzPolicy)> = if notes.0.is_some() {
            applying()
                .filter(|(_, p)| p.action == Action::Allow)
                .collect()
        } else {
            Vec::new()
        };
        let mut any_allow = false;
        let mut allowed = false;
        for (pi, p) in applying().filter(|(_, p)| p.action == Action::Allow) {
            let hit = first_match(p);
            if p.dry_run {
                match hit {
                    Some((ri, _)) => notes.push(|| self.note(pi, Some(ri), "dry-run: would allow")),
                    None => notes.push(|| self.note(pi, None, "dry-run: no rule would allow")),
                }
                continue;
            }
            any_allow = true;
            if let Some((ri, _)) = hit {
                notes.push(|| self.note(pi, Some(ri), "allows"));
                allowed = true;
                if notes.0.is_none() {
                    return true;
                }
            }
        }
        if !any_allow || allowed {
            return true;
        }
        for (pi, p) in allow.into_iter().filter(|(_, p)| !p.dry_run) {
            let skipped: Vec<usize> = p
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    matches!(
                        r.evaluate(p.action, view, &conn, &self.trust),
                        RuleOutcome::SkippedHttpOnly | RuleOutcome::DroppedL7
                    )
                })
                .map(|(i, _)| i)
                .collect();
            let effect = if p.rules.is_empty() {
                "no rules: allows nothing".to_owned()
            } else if skipped.is_empty() {
                "no rule allows".to_owned()
            } else {
                let list = skipped
                    .iter()
                    .map(|i| format!("rules[{i}]"))
                    .collect::<Vec<_>>()
                    .join(", ");
                match view {
                    View::Full => {
                        format!("no rule allows ({list} skipped on TCP: HTTP-only attributes)")
                    }
                    View::L4 => {
                        format!("no rule allows at L4 ({list} dropped by ztunnel: L7 attributes)")
                    }
                }
            };
            notes.push(|| self.note(pi, None, effect));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(attr: Attr, values: &[&str]) -> Field {
        Field {
            attr,
            values: values.iter().map(|v| Pattern::parse_string(v)).collect(),
            not_values: Vec::new(),
        }
    }

    #[test]
    fn string_forms() {
        assert_eq!(Pattern::parse_string("*"), Pattern::Presence);
        assert_eq!(
            Pattern::parse_string("*.com"),
            Pattern::Suffix(".com".into())
        );
        assert_eq!(
            Pattern::parse_string("/api/*"),
            Pattern::Prefix("/api/".into())
        );
        assert!(Pattern::parse_string("/api/*").matches_str("/api/", false));
        assert!(!Pattern::Presence.matches_str("", false));
        assert!(Pattern::parse_string("*.EXAMPLE.com").matches_str("a.example.COM", true));
    }

    #[test]
    fn templates() {
        assert!(template_matches("/api/{*}/orders", "/api/v1/orders"));
        assert!(!template_matches("/api/{*}/orders", "/api/v1/x/orders"));
        assert!(!template_matches("/api/{*}/orders", "/api//orders"));
        assert!(template_matches("/files/{**}", "/files/a/b/c.txt"));
        assert!(template_matches("/files/{**}", "/files/"));
        assert!(!template_matches("/files/{**}", "/other/a"));
        assert!(template_matches("/{*}", "/x"));
        assert!(!template_matches("/{*}", "/x/y"));
    }

    #[test]
    fn trust_domain_expansion_is_envoy_only() {
        let trust = TrustDomains {
            trust_domain: "example.org".into(),
            aliases: vec!["old.org".into()],
        };
        let conn = Connection {
            peer: Peer {
                principal: Some("example.org/ns/foo/sa/web"),
                namespace: Some("foo"),
                service_account: Some("web"),
                ip: None,
            },
            destination_ip: None,
            port: 80,
            request: None,
        };
        for written in [
            "cluster.local/ns/foo/sa/web",
            "old.org/ns/foo/sa/web",
            "cluster.local/ns/foo/sa/*",
        ] {
            let f = field(Attr::Principal, &[written]);
            assert!(f.matches(&conn, &trust, View::Full), "{written}");
            assert!(!f.matches(&conn, &trust, View::L4), "{written}");
        }
        let f = field(Attr::Principal, &["other.org/ns/foo/sa/web"]);
        assert!(!f.matches(&conn, &trust, View::Full));
    }

    #[test]
    fn l4_view_of_deny_rules() {
        let trust = TrustDomains::default();
        let conn = Connection {
            peer: Peer::default(),
            destination_ip: None,
            port: 8080,
            request: None,
        };
        let methods_only = AuthzRule {
            to: Some(vec![Entry {
                fields: vec![field(Attr::Method, &["POST"])],
            }]),
            ..AuthzRule::default()
        };
        assert_eq!(
            methods_only.evaluate(Action::Deny, View::L4, &conn, &trust),
            RuleOutcome::FailsOpenL7
        );
        assert_eq!(
            methods_only.evaluate(Action::Deny, View::Full, &conn, &trust),
            RuleOutcome::MatchesWidened
        );
        assert_eq!(
            methods_only.evaluate(Action::Allow, View::Full, &conn, &trust),
            RuleOutcome::SkippedHttpOnly
        );
        assert_eq!(
            methods_only.evaluate(Action::Allow, View::L4, &conn, &trust),
            RuleOutcome::DroppedL7
        );
        let mut port = Field {
            attr: Attr::DestinationPort,
            values: vec![Pattern::Port(8080)],
            not_values: Vec::new(),
        };
        let with_port = AuthzRule {
            to: Some(vec![Entry {
                fields: vec![port.clone(), field(Attr::Method, &["POST"])],
            }]),
            ..AuthzRule::default()
        };
        assert_eq!(
            with_port.evaluate(Action::Deny, View::L4, &conn, &trust),
            RuleOutcome::MatchesWithoutL7
        );
        port.values = vec![Pattern::Port(9090)];
        let other_port = AuthzRule {
            to: Some(vec![Entry {
                fields: vec![port, field(Attr::Method, &["POST"])],
            }]),
            ..AuthzRule::default()
        };
        assert_eq!(
            other_port.evaluate(Action::Deny, View::L4, &conn, &trust),
            RuleOutcome::NoMatch
        );
    }

    #[test]
    fn no_identity_never_matches_positive_and_always_not_forms() {
        let trust = TrustDomains::default();
        let conn = Connection {
            peer: Peer::default(),
            destination_ip: None,
            port: 1,
            request: None,
        };
        for attr in [Attr::Principal, Attr::Namespace] {
            let f = field(attr.clone(), &["*"]);
            assert!(!f.matches(&conn, &trust, View::Full));
            let not = Field {
                attr,
                values: Vec::new(),
                not_values: vec![Pattern::Presence],
            };
            assert!(not.matches(&conn, &trust, View::L4));
        }
    }

    #[test]
    fn membership() {
        let l = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ambient = l(&[("istio.io/dataplane-mode", "ambient")]);
        let inject = l(&[("istio-injection", "enabled")]);
        assert_eq!(
            mesh_mode(&l(&[]), None, Some(&ambient), false),
            MeshMode::Ambient
        );
        assert_eq!(
            mesh_mode(
                &l(&[("istio.io/dataplane-mode", "none")]),
                None,
                Some(&ambient),
                false
            ),
            MeshMode::None
        );
        assert_eq!(
            mesh_mode(&l(&[]), None, Some(&inject), false),
            MeshMode::Sidecar
        );
        assert_eq!(
            mesh_mode(&l(&[]), Some("false"), Some(&inject), false),
            MeshMode::None
        );
        assert_eq!(
            mesh_mode(
                &l(&[("sidecar.istio.io/inject", "true")]),
                None,
                None,
                false
            ),
            MeshMode::Sidecar
        );
        assert_eq!(
            mesh_mode(
                &l(&[]),
                None,
                Some(&l(&[("istio.io/rev", "canary")])),
                false
            ),
            MeshMode::Sidecar
        );
        assert_eq!(
            mesh_mode(&l(&[]), None, Some(&ambient), true),
            MeshMode::None
        );
        assert_eq!(mesh_mode(&l(&[]), None, None, false), MeshMode::None);
    }
}
