//! Istio resources: `AuthorizationPolicy` and `PeerAuthentication`
//! (`security.istio.io/v1` and `v1beta1`) and the mesh settings of the
//! `istio` ConfigMap, with our own serde types, lowered into the IR of
//! [`crate::authz`] with Istio's validation (`ValidateAuthorizationPolicy`,
//! `ValidatePeerAuthentication`) and located diagnostics.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::authz::{
    Action, Attr, AuthzPolicy, AuthzRule, DRY_RUN_ANNOTATION, Entry, Field, MeshSettings, MtlsMode,
    Pattern, PeerAuthn, TargetRef,
};
use crate::diag::{Code, Diagnostic};
use crate::labels::Labels;
use crate::netpol::{self, Collector, Locate};
use crate::yaml::Seg;

#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizationPolicy {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: AuthzSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthzSpec {
    pub selector: Option<WorkloadSelector>,
    pub target_ref: Option<TargetRefSpec>,
    pub target_refs: Option<Vec<TargetRefSpec>>,
    pub rules: Option<Vec<Option<RuleSpec>>>,
    pub action: Option<String>,
    pub provider: Option<ProviderSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    pub match_labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRefSpec {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderSpec {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    pub from: Option<Vec<Option<FromSpec>>>,
    pub to: Option<Vec<Option<ToSpec>>>,
    pub when: Option<Vec<Option<ConditionSpec>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromSpec {
    pub source: Option<SourceSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceSpec {
    pub principals: Option<Vec<String>>,
    pub not_principals: Option<Vec<String>>,
    pub request_principals: Option<Vec<String>>,
    pub not_request_principals: Option<Vec<String>>,
    pub namespaces: Option<Vec<String>>,
    pub not_namespaces: Option<Vec<String>>,
    pub service_accounts: Option<Vec<String>>,
    pub not_service_accounts: Option<Vec<String>>,
    pub ip_blocks: Option<Vec<String>>,
    pub not_ip_blocks: Option<Vec<String>>,
    pub remote_ip_blocks: Option<Vec<String>>,
    pub not_remote_ip_blocks: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToSpec {
    pub operation: Option<OperationSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationSpec {
    pub hosts: Option<Vec<String>>,
    pub not_hosts: Option<Vec<String>>,
    pub ports: Option<Vec<String>>,
    pub not_ports: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub not_methods: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub not_paths: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionSpec {
    pub key: Option<String>,
    pub values: Option<Vec<String>>,
    pub not_values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PeerAuthentication {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PeerAuthnSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthnSpec {
    pub selector: Option<WorkloadSelector>,
    pub mtls: Option<MtlsSpec>,
    pub port_level_mtls: Option<BTreeMap<String, MtlsSpec>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MtlsSpec {
    pub mode: Option<String>,
}

/// The fields of Istio's MeshConfig that decide authorization.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfigSpec {
    pub root_namespace: Option<String>,
    pub trust_domain: Option<String>,
    pub trust_domain_aliases: Option<Vec<String>>,
}

/// Every `when` key of the Istio reference ("Authorization Policy
/// Conditions"), and the prefixes of the keyed ones.
pub const CONDITION_KEYS: &[&str] = &[
    "request.headers[]",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[]",
    "destination.ip",
    "destination.port",
    "connection.sni",
    "experimental.envoy.filters.*",
];

struct Cx<'a> {
    at: &'a dyn Locate,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn error(&mut self, code: Code, path: &[Seg], message: String, help: impl Into<String>) {
        self.diags.push(
            Diagnostic::new(code, message)
                .with_help(help)
                .at_location(self.at.locate(path)),
        );
    }
}

fn p(base: &[Seg], more: impl IntoIterator<Item = Seg>) -> Vec<Seg> {
    base.iter().cloned().chain(more).collect()
}

/// Lower one AuthorizationPolicy (its namespace already defaulted).
pub fn lower_authz(
    ap: &AuthorizationPolicy,
    namespace: &str,
    at: &dyn Locate,
) -> Result<AuthzPolicy, Vec<Diagnostic>> {
    let mut cx = Cx {
        at,
        diags: Vec::new(),
    };
    let spec = &ap.spec;
    let sp = vec![Seg::Key("spec")];

    let action = match spec.action.as_deref() {
        None | Some("ALLOW") => Action::Allow,
        Some("DENY") => Action::Deny,
        Some("AUDIT") => Action::Audit,
        Some("CUSTOM") => Action::Custom,
        Some(other) => {
            let help = match other.to_ascii_uppercase().as_str() {
                u @ ("ALLOW" | "DENY" | "AUDIT" | "CUSTOM") => {
                    format!("actions are upper case: write `{u}`")
                }
                _ => "the action is ALLOW (the default), DENY, AUDIT or CUSTOM".to_owned(),
            };
            cx.error(
                Code::UnknownAction,
                &p(&sp, [Seg::Key("action")]),
                format!("unknown action `{other}`"),
                help,
            );
            Action::Allow
        }
    };
    let provider = spec
        .provider
        .as_ref()
        .map(|pr| pr.name.clone().unwrap_or_default());
    match (action, &provider) {
        (Action::Custom, None) => cx.error(
            Code::InvalidProvider,
            &p(&sp, [Seg::Key("action")]),
            "a CUSTOM policy needs a `provider`".to_owned(),
            "name the extension provider of the mesh config: `provider: {name: my-ext-authz}`",
        ),
        (Action::Custom, Some(name)) if name.is_empty() => cx.error(
            Code::InvalidProvider,
            &p(&sp, [Seg::Key("provider")]),
            "the provider has no `name`".to_owned(),
            "name the extension provider of the mesh config: `provider: {name: my-ext-authz}`",
        ),
        (Action::Allow | Action::Deny | Action::Audit, Some(_)) => cx.error(
            Code::InvalidProvider,
            &p(&sp, [Seg::Key("provider")]),
            format!("`provider` is set but the action is {}", action.as_str()),
            "a provider is only used with `action: CUSTOM`; remove it or set the action",
        ),
        _ => {}
    }

    let mut target_refs = Vec::new();
    if spec.target_ref.is_some() && spec.target_refs.is_some() {
        cx.error(
            Code::ConflictingTargets,
            &p(&sp, [Seg::Key("targetRef")]),
            "both `targetRef` and `targetRefs` are set".to_owned(),
            "use `targetRefs` only (`targetRef` is its deprecated single form)",
        );
    }
    let refs: Vec<(Vec<Seg>, &TargetRefSpec)> = match (&spec.target_ref, &spec.target_refs) {
        (Some(r), _) => vec![(p(&sp, [Seg::Key("targetRef")]), r)],
        (None, Some(rs)) => rs
            .iter()
            .enumerate()
            .map(|(i, r)| (p(&sp, [Seg::Key("targetRefs"), Seg::Index(i)]), r))
            .collect(),
        (None, None) => Vec::new(),
    };
    for (path, r) in refs {
        match (&r.kind, &r.name) {
            (Some(kind), Some(name)) if !kind.is_empty() && !name.is_empty() => {
                if r.namespace.as_deref().is_some_and(|n| n != namespace) {
                    cx.error(
                        Code::ConflictingTargets,
                        &p(&path, [Seg::Key("namespace")]),
                        "a targetRef may not name another namespace".to_owned(),
                        "remove `namespace`, or move the policy to that namespace",
                    );
                }
                target_refs.push(TargetRef {
                    group: r.group.clone().unwrap_or_default(),
                    kind: kind.clone(),
                    name: name.clone(),
                })
            }
            _ => cx.error(
                Code::WrongType,
                &path,
                "a targetRef needs `kind` and `name`".to_owned(),
                "e.g. `{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}`",
            ),
        }
    }
    target_refs.sort();
    target_refs.dedup();
    if spec.selector.is_some() && !target_refs.is_empty() {
        cx.error(
            Code::ConflictingTargets,
            &p(&sp, [Seg::Key("selector")]),
            "both `selector` and `targetRefs` are set".to_owned(),
            "a policy applies either to workloads (`selector`) or to waypoints and gateways (`targetRefs`), not both",
        );
    }
    let selector = spec
        .selector
        .as_ref()
        .map(|s| labels(&mut cx, s, &p(&sp, [Seg::Key("selector")])));

    let dry_run = dry_run(&mut cx, &ap.metadata);

    let mut rules = Vec::new();
    for (i, r) in spec.rules.iter().flatten().enumerate() {
        let rp = p(&sp, [Seg::Key("rules"), Seg::Index(i)]);
        match r {
            None => cx.error(
                Code::EmptyRuleField,
                &rp,
                "a rule is null".to_owned(),
                "write `{}` for a rule that matches everything",
            ),
            Some(r) => rules.push(rule(&mut cx, r, namespace, &rp)),
        }
    }

    if !cx.diags.is_empty() {
        return Err(cx.diags);
    }
    Ok(AuthzPolicy {
        namespace: namespace.to_owned(),
        name: ap.metadata.name.clone().unwrap_or_default(),
        action,
        provider: provider.filter(|_| action == Action::Custom),
        selector,
        target_refs,
        dry_run,
        rules,
    })
}

fn dry_run(cx: &mut Cx<'_>, meta: &ObjectMeta) -> bool {
    let Some(v) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(DRY_RUN_ANNOTATION))
    else {
        return false;
    };
    match v.as_str() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
        other => {
            cx.error(
                Code::WrongType,
                &[
                    Seg::Key("metadata"),
                    Seg::Key("annotations"),
                    Seg::Key(DRY_RUN_ANNOTATION),
                ],
                format!("`{DRY_RUN_ANNOTATION}` is `{other}`, not a boolean"),
                "write \"true\" or \"false\"",
            );
            false
        }
    }
}

fn labels(cx: &mut Cx<'_>, s: &WorkloadSelector, at: &[Seg]) -> Labels {
    let mut out = Labels::new();
    let mut c = Collector {
        at: cx.at,
        diags: &mut cx.diags,
    };
    for (k, v) in s.match_labels.iter().flatten() {
        let kp = p(at, [Seg::Key("matchLabels"), Seg::Owned(k.clone())]);
        if netpol::check_label(&mut c, k, Some(v), &kp) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

fn rule(cx: &mut Cx<'_>, r: &RuleSpec, namespace: &str, rp: &[Seg]) -> AuthzRule {
    let mut out = AuthzRule::default();
    if let Some(from) = &r.from {
        let fp = p(rp, [Seg::Key("from")]);
        if from.is_empty() {
            cx.error(
                Code::EmptyRuleField,
                &fp,
                "`from` is an empty list".to_owned(),
                "Istio rejects `from: []`; remove `from` to match every source",
            );
        }
        let mut entries = Vec::new();
        for (i, f) in from.iter().enumerate() {
            let ep = p(&fp, [Seg::Index(i)]);
            let Some(s) = f.as_ref().and_then(|f| f.source.as_ref()) else {
                cx.error(
                    Code::EmptyRuleField,
                    &ep,
                    "a `from` entry has no `source`".to_owned(),
                    "write `- source: {principals: [...]}`",
                );
                continue;
            };
            let sp = p(&ep, [Seg::Key("source")]);
            let mut fields = Vec::new();
            let mut f = |attr: Attr,
                         key: &'static str,
                         not_key: &'static str,
                         v: &Option<Vec<String>>,
                         nv: &Option<Vec<String>>| {
                if let Some(field) = field(cx, attr, namespace, &sp, (key, v), (not_key, nv)) {
                    fields.push(field);
                }
            };
            f(
                Attr::Principal,
                "principals",
                "notPrincipals",
                &s.principals,
                &s.not_principals,
            );
            f(
                Attr::RequestPrincipal,
                "requestPrincipals",
                "notRequestPrincipals",
                &s.request_principals,
                &s.not_request_principals,
            );
            f(
                Attr::Namespace,
                "namespaces",
                "notNamespaces",
                &s.namespaces,
                &s.not_namespaces,
            );
            f(
                Attr::ServiceAccount,
                "serviceAccounts",
                "notServiceAccounts",
                &s.service_accounts,
                &s.not_service_accounts,
            );
            f(
                Attr::SourceIp,
                "ipBlocks",
                "notIpBlocks",
                &s.ip_blocks,
                &s.not_ip_blocks,
            );
            f(
                Attr::RemoteIp,
                "remoteIpBlocks",
                "notRemoteIpBlocks",
                &s.remote_ip_blocks,
                &s.not_remote_ip_blocks,
            );
            let set = [
                &s.principals,
                &s.not_principals,
                &s.request_principals,
                &s.not_request_principals,
                &s.namespaces,
                &s.not_namespaces,
                &s.service_accounts,
                &s.not_service_accounts,
                &s.ip_blocks,
                &s.not_ip_blocks,
                &s.remote_ip_blocks,
                &s.not_remote_ip_blocks,
            ]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
            if !set {
                cx.error(
                    Code::EmptyRuleField,
                    &sp,
                    "the `source` sets no field".to_owned(),
                    "Istio rejects an empty source; remove the entry to match every source",
                );
            }
            entries.push(Entry { fields });
        }
        out.from = Some(entries);
    }
    if let Some(to) = &r.to {
        let tp = p(rp, [Seg::Key("to")]);
        if to.is_empty() {
            cx.error(
                Code::EmptyRuleField,
                &tp,
                "`to` is an empty list".to_owned(),
                "Istio rejects `to: []`; remove `to` to match every operation",
            );
        }
        let mut entries = Vec::new();
        for (i, t) in to.iter().enumerate() {
            let ep = p(&tp, [Seg::Index(i)]);
            let Some(o) = t.as_ref().and_then(|t| t.operation.as_ref()) else {
                cx.error(
                    Code::EmptyRuleField,
                    &ep,
                    "a `to` entry has no `operation`".to_owned(),
                    "write `- operation: {ports: [\"8080\"]}`",
                );
                continue;
            };
            let op = p(&ep, [Seg::Key("operation")]);
            let mut fields = Vec::new();
            let mut f = |attr: Attr,
                         key: &'static str,
                         not_key: &'static str,
                         v: &Option<Vec<String>>,
                         nv: &Option<Vec<String>>| {
                if let Some(field) = field(cx, attr, namespace, &op, (key, v), (not_key, nv)) {
                    fields.push(field);
                }
            };
            f(Attr::Host, "hosts", "notHosts", &o.hosts, &o.not_hosts);
            f(
                Attr::DestinationPort,
                "ports",
                "notPorts",
                &o.ports,
                &o.not_ports,
            );
            f(
                Attr::Method,
                "methods",
                "notMethods",
                &o.methods,
                &o.not_methods,
            );
            f(Attr::Path, "paths", "notPaths", &o.paths, &o.not_paths);
            let set = [
                &o.hosts,
                &o.not_hosts,
                &o.ports,
                &o.not_ports,
                &o.methods,
                &o.not_methods,
                &o.paths,
                &o.not_paths,
            ]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
            if !set {
                cx.error(
                    Code::EmptyRuleField,
                    &op,
                    "the `operation` sets no field".to_owned(),
                    "Istio rejects an empty operation; remove the entry to match every operation",
                );
            }
            entries.push(Entry { fields });
        }
        out.to = Some(entries);
    }
    for (i, c) in r.when.iter().flatten().enumerate() {
        let cp = p(rp, [Seg::Key("when"), Seg::Index(i)]);
        let Some(c) = c else {
            cx.error(
                Code::EmptyRuleField,
                &cp,
                "a `when` condition is null".to_owned(),
                "write `- key: source.ip` with `values` or `notValues`",
            );
            continue;
        };
        let key = c.key.clone().unwrap_or_default();
        if key.is_empty() {
            cx.error(
                Code::EmptyRuleField,
                &cp,
                "a `when` condition has no `key`".to_owned(),
                format!("keys: {}", CONDITION_KEYS.join(", ")),
            );
            continue;
        }
        let Some(attr) = condition_attr(&key) else {
            let closest = CONDITION_KEYS
                .iter()
                .map(|k| (strsim::jaro_winkler(k, &key), k))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .filter(|(s, _)| *s > 0.8)
                .map(|(_, k)| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            cx.error(
                Code::UnknownConditionKey,
                &p(&cp, [Seg::Key("key")]),
                format!("unknown condition key `{key}`"),
                format!("{closest}keys: {}", CONDITION_KEYS.join(", ")),
            );
            continue;
        };
        if c.values.as_ref().is_none_or(Vec::is_empty)
            && c.not_values.as_ref().is_none_or(Vec::is_empty)
        {
            cx.error(
                Code::EmptyRuleField,
                &cp,
                format!("the condition on `{key}` has no `values` and no `notValues`"),
                "Istio rejects it: give at least one of them",
            );
            continue;
        }
        if let Some(f) = field(
            cx,
            attr,
            namespace,
            &cp,
            ("values", &c.values),
            ("notValues", &c.not_values),
        ) {
            out.when.push(f);
        }
    }
    out
}

/// The attribute of a `when` key.
pub fn condition_attr(key: &str) -> Option<Attr> {
    let bracket = |prefix: &str| {
        key.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(']'))
            .filter(|inner| !inner.is_empty())
    };
    Some(match key {
        "source.ip" => Attr::SourceIp,
        "remote.ip" => Attr::RemoteIp,
        "source.namespace" => Attr::Namespace,
        "source.principal" => Attr::Principal,
        "request.auth.principal" => Attr::RequestPrincipal,
        "request.auth.audiences" => Attr::Audience,
        "request.auth.presenter" => Attr::Presenter,
        "destination.ip" => Attr::DestinationIp,
        "destination.port" => Attr::DestinationPort,
        "connection.sni" => Attr::Sni,
        _ => {
            if let Some(h) = bracket("request.headers[") {
                Attr::Header(h.to_ascii_lowercase())
            } else if let Some(c) = bracket("request.auth.claims[") {
                Attr::Claim(c.to_owned())
            } else if key.starts_with("experimental.envoy.filters.") {
                Attr::EnvoyFilter(key.to_owned())
            } else {
                return None;
            }
        }
    })
}

/// One field from its positive and negative lists; `None` when both are
/// absent or empty.
fn field(
    cx: &mut Cx<'_>,
    attr: Attr,
    namespace: &str,
    base: &[Seg],
    (key, values): (&'static str, &Option<Vec<String>>),
    (not_key, not_values): (&'static str, &Option<Vec<String>>),
) -> Option<Field> {
    let mut lower = |list: &Option<Vec<String>>, k: &'static str| -> Vec<Pattern> {
        let mut out = Vec::new();
        for (i, v) in list.iter().flatten().enumerate() {
            let vp = p(base, [Seg::Key(k), Seg::Index(i)]);
            if let Some(pat) = value(cx, &attr, namespace, v, &vp) {
                out.push(pat);
            }
        }
        out
    };
    let values = lower(values, key);
    let not_values = lower(not_values, not_key);
    (!values.is_empty() || !not_values.is_empty()).then_some(Field {
        attr,
        values,
        not_values,
    })
}

fn value(cx: &mut Cx<'_>, attr: &Attr, namespace: &str, v: &str, at: &[Seg]) -> Option<Pattern> {
    if v.is_empty() {
        cx.error(
            Code::EmptyRuleField,
            at,
            "an empty value".to_owned(),
            "Istio rejects empty strings in rules; use `*` to require any value",
        );
        return None;
    }
    match attr {
        Attr::SourceIp | Attr::RemoteIp | Attr::DestinationIp => match parse_ip_or_cidr(v) {
            Some(net) => Some(Pattern::Cidr(net)),
            None => {
                cx.error(
                    Code::InvalidCidr,
                    at,
                    format!("`{v}` is not an IP address or CIDR"),
                    "write an address (`10.0.0.1`, `2001:db8::1`) or a CIDR (`10.0.0.0/16`)",
                );
                None
            }
        },
        Attr::DestinationPort => match v.parse::<u16>() {
            Ok(port) => Some(Pattern::Port(port)),
            Err(_) => {
                cx.error(
                    Code::PortOutOfRange,
                    at,
                    format!("`{v}` is not a port number"),
                    "Istio ports are numbers from 0 to 65535, written as strings (\"8080\")",
                );
                None
            }
        },
        Attr::Principal => {
            if v.starts_with("spiffe://") {
                cx.error(
                    Code::InvalidPrincipal,
                    at,
                    format!("principal `{v}` starts with `spiffe://`"),
                    format!(
                        "Istio principals omit the scheme: write `{}`",
                        v.trim_start_matches("spiffe://")
                    ),
                );
                return None;
            }
            // A `*` past the first character and before the last (by
            // characters: a principal may start with any of them).
            if v.char_indices()
                .any(|(i, c)| c == '*' && i > 0 && i + 1 < v.len())
            {
                cx.error(
                    Code::InvalidPrincipal,
                    at,
                    format!("principal `{v}` has a `*` inside"),
                    "a principal matches exactly, by prefix (`abc*`), by suffix (`*abc`) or any (`*`); a `*` inside is literal and never matches an identity",
                );
                return None;
            }
            Some(Pattern::parse_string(v))
        }
        Attr::ServiceAccount => {
            let full = match v.split_once('/') {
                Some((ns, sa)) if !ns.is_empty() && !sa.is_empty() && !sa.contains('/') => {
                    v.to_owned()
                }
                None => format!("{namespace}/{v}"),
                _ => {
                    cx.error(
                        Code::InvalidPrincipal,
                        at,
                        format!("service account `{v}` is not `name` or `namespace/name`"),
                        "write `api` (the policy's namespace) or `shop/api`",
                    );
                    return None;
                }
            };
            if full.contains('*') {
                cx.error(
                    Code::InvalidPrincipal,
                    at,
                    format!("service account `{v}` has a wildcard"),
                    "serviceAccounts match exactly; use `principals` for prefix or suffix matches",
                );
                return None;
            }
            Some(Pattern::Exact(full))
        }
        Attr::Path if v.contains('{') || v.contains('}') => match check_template(v) {
            Ok(()) => Some(Pattern::Template(v.to_owned())),
            Err(why) => {
                cx.error(
                    Code::InvalidPathTemplate,
                    at,
                    format!("invalid path template `{v}`: {why}"),
                    "`{*}` matches one path segment and `{**}` the rest of the path; each is a whole segment and `{**}` comes last",
                );
                None
            }
        },
        _ => Some(Pattern::parse_string(v)),
    }
}

fn parse_ip_or_cidr(v: &str) -> Option<IpNet> {
    if v.contains('/') {
        v.parse::<IpNet>().ok()
    } else {
        v.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

/// Istio's rules for path templates: the path starts with `/`, `{*}` and
/// `{**}` are whole segments, `{**}` is the last operator, no other braces and
/// no `*` wildcard mixed in.
fn check_template(v: &str) -> Result<(), &'static str> {
    if !v.starts_with('/') {
        return Err("a template starts with `/`");
    }
    let segments: Vec<&str> = v[1..].split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        match *s {
            "{*}" => {}
            "{**}" if segments[i + 1..].iter().any(|s| s.contains('{')) => {
                return Err("`{**}` must be the last operator");
            }
            "{**}" => {}
            other if other.contains('{') || other.contains('}') => {
                return Err("`{*}` and `{**}` must be whole path segments");
            }
            other if other.contains('*') => {
                return Err("a template cannot also use `*` wildcards");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Lower one PeerAuthentication.
pub fn lower_peer_authn(
    pa: &PeerAuthentication,
    namespace: &str,
    at: &dyn Locate,
) -> Result<PeerAuthn, Vec<Diagnostic>> {
    let mut cx = Cx {
        at,
        diags: Vec::new(),
    };
    let sp = vec![Seg::Key("spec")];
    let selector = pa
        .spec
        .selector
        .as_ref()
        .map(|s| labels(&mut cx, s, &p(&sp, [Seg::Key("selector")])))
        .filter(|l| !l.is_empty());
    let mode = |cx: &mut Cx<'_>, m: &MtlsSpec, at: Vec<Seg>| -> MtlsMode {
        match m.mode.as_deref() {
            None => MtlsMode::Unset,
            Some(s) => MtlsMode::parse(s).unwrap_or_else(|| {
                cx.error(
                    Code::InvalidMtlsMode,
                    &p(&at, [Seg::Key("mode")]),
                    format!("unknown mTLS mode `{s}`"),
                    "modes are UNSET, DISABLE, PERMISSIVE and STRICT",
                );
                MtlsMode::Unset
            }),
        }
    };
    let top = match &pa.spec.mtls {
        Some(m) => mode(&mut cx, m, p(&sp, [Seg::Key("mtls")])),
        None => MtlsMode::Unset,
    };
    let mut port_level = BTreeMap::new();
    if let Some(ports) = &pa.spec.port_level_mtls {
        let pp = p(&sp, [Seg::Key("portLevelMtls")]);
        if selector.is_none() && !ports.is_empty() {
            cx.error(
                Code::InvalidMtlsMode,
                &pp,
                "`portLevelMtls` without a workload `selector`".to_owned(),
                "Istio accepts port-level mTLS only on policies that select workloads",
            );
        }
        for (k, m) in ports {
            let kp = p(&pp, [Seg::Owned(k.clone())]);
            match k.parse::<u16>() {
                Ok(port) if port >= 1 => {
                    let md = mode(&mut cx, m, kp);
                    port_level.insert(port, md);
                }
                _ => cx.error(
                    Code::PortOutOfRange,
                    &kp,
                    format!("`{k}` is not a port number from 1 to 65535"),
                    "portLevelMtls is keyed by the workload's port number",
                ),
            }
        }
    }
    if !cx.diags.is_empty() {
        return Err(cx.diags);
    }
    Ok(PeerAuthn {
        namespace: namespace.to_owned(),
        name: pa.metadata.name.clone().unwrap_or_default(),
        selector,
        mode: top,
        port_level,
        created: pa
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
    })
}

/// Read the mesh settings from the text of the `istio` ConfigMap's
/// `data.mesh`.
pub fn mesh_settings(text: &str) -> Result<MeshSettings, String> {
    if text.trim().is_empty() {
        return Ok(MeshSettings::default());
    }
    let spec: MeshConfigSpec = serde_saphyr::from_str(text).map_err(|e| {
        let m = e.to_string();
        m.trim_start_matches("error: ").to_owned()
    })?;
    Ok(MeshSettings {
        root_namespace: spec.root_namespace.filter(|s| !s.is_empty()),
        trust_domain: spec.trust_domain.filter(|s| !s.is_empty()),
        trust_domain_aliases: spec.trust_domain_aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A principal is read by characters: one that starts with a character
    /// of several bytes is checked like any other (found by fuzzing: it
    /// was cut inside the character).
    #[test]
    fn principals_are_checked_by_characters() {
        use crate::diag::Diagnostics;
        use crate::load::{LoadOptions, load};
        use crate::source::SourceFile;
        for (principal, inside) in [
            ("\u{797}luster.local/ns/foo/sa/web", false),
            ("é*x*", true),
            ("*é", false),
            ("é*", false),
        ] {
            let text = format!(
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: foo\nspec:\n  rules:\n  - from:\n    - source:\n        principals: [\"{principal}\"]\n"
            );
            let file = SourceFile::new("p.yaml", text.as_str());
            let mut diags = Diagnostics::default();
            load(
                std::slice::from_ref(&file),
                &LoadOptions::default(),
                &mut diags,
            );
            assert_eq!(
                diags.0.iter().any(|d| d.code == Code::InvalidPrincipal),
                inside,
                "{principal}: {:?}",
                diags.0
            );
        }
    }

    #[test]
    fn templates_follow_istio_rules() {
        assert!(check_template("/api/{*}/orders").is_ok());
        assert!(check_template("/files/{**}").is_ok());
        assert!(check_template("/files/{**}/x").is_ok());
        assert!(check_template("/a/{**}/{*}").is_err());
        assert!(check_template("/a{*}").is_err());
        assert!(check_template("/a/{x}").is_err());
        assert!(check_template("api/{*}").is_err());
        assert!(check_template("/a*/{*}").is_err());
    }

    #[test]
    fn condition_keys() {
        assert_eq!(
            condition_attr("request.headers[X-Tenant]"),
            Some(Attr::Header("x-tenant".into()))
        );
        assert_eq!(condition_attr("request.headers[]"), None);
        assert_eq!(condition_attr("source.ip"), Some(Attr::SourceIp));
        assert_eq!(condition_attr("source.ips"), None);
        assert!(matches!(
            condition_attr("experimental.envoy.filters.a.b[c]"),
            Some(Attr::EnvoyFilter(_))
        ));
    }

    #[test]
    fn mesh_config_text() {
        let m = mesh_settings(
            "trustDomain: example.org\ntrustDomainAliases: [old.org]\nenableTracing: true\n",
        )
        .unwrap();
        assert_eq!(m.trust_domain.as_deref(), Some("example.org"));
        assert_eq!(m.trust_domain_aliases, Some(vec!["old.org".to_owned()]));
        assert!(mesh_settings("trustDomain: [").is_err());
    }
}
