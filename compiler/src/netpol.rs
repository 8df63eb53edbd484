//! Lowering `networking.k8s.io/v1` NetworkPolicy into the policy IR, with the
//! API server's validation rules and defaults.
//!
//! Defaults (`SetDefaults_NetworkPolicy`): `policyTypes` omitted or empty means
//! `[Ingress]`, plus `Egress` when `spec.egress` has at least one rule; a port's
//! protocol defaults to TCP. `from`/`to` omitted or empty means every peer;
//! `ports` omitted or empty means every port. Validation follows
//! `ValidateNetworkPolicy`: at most one of ipBlock and the selectors per peer,
//! valid CIDRs with `except` strictly inside, ports 1-65535 or IANA service
//! names, `endPort` only with a numeric `port` and not below it.

use ipnet::IpNet;
use k8s_openapi::api::networking::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::diag::{Code, Diagnostic};
use crate::labels::{self, Requirement, Selector};
use crate::model::{NetworkPolicy, Peer, PortSpec, Protocol, Rule};
use crate::source::Location;
use crate::yaml::Seg;

/// Maps a path in an object to a location in its file.
pub trait Locate {
    fn locate(&self, path: &[Seg]) -> Option<Location>;
}

/// For objects built in code (tests): no location.
#[derive(Debug)]
pub struct Nowhere;

impl Locate for Nowhere {
    fn locate(&self, _: &[Seg]) -> Option<Location> {
        None
    }
}

impl Locate for crate::yaml::Object<'_> {
    fn locate(&self, path: &[Seg]) -> Option<Location> {
        Some(Location {
            file: self.file().clone(),
            span: crate::yaml::Object::locate(self, path),
        })
    }
}

pub(crate) struct Ctx<'a> {
    pub(crate) at: &'a dyn Locate,
    pub(crate) diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub(crate) fn error(&mut self, code: Code, path: &[Seg], message: String, help: &str) {
        self.diags.push(
            Diagnostic::new(code, message)
                .with_help(help)
                .at_location(self.at.locate(path)),
        );
    }
}

pub(crate) fn path(base: &[Seg], more: impl IntoIterator<Item = Seg>) -> Vec<Seg> {
    base.iter().cloned().chain(more).collect()
}

/// Lower one NetworkPolicy. `namespace` is the effective namespace (after
/// defaulting). Every problem found is returned; the policy is returned only
/// when there is none.
pub fn lower(
    np: &k8s::NetworkPolicy,
    namespace: &str,
    at: &dyn Locate,
) -> Result<NetworkPolicy, Vec<Diagnostic>> {
    let mut cx = Ctx {
        at,
        diags: Vec::new(),
    };
    let name = np.metadata.name.clone().unwrap_or_default();
    let spec = np.spec.clone().unwrap_or_default();
    let spec_path = vec![Seg::Key("spec")];

    let pod_selector = selector(
        &mut cx,
        spec.pod_selector.as_ref(),
        &path(&spec_path, [Seg::Key("podSelector")]),
    );

    let (mut ingress_on, mut egress_on) = (false, false);
    match spec.policy_types.as_deref() {
        None | Some([]) => {
            ingress_on = true;
            egress_on = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
        }
        Some(types) => {
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => ingress_on = true,
                    "Egress" => egress_on = true,
                    other => cx.error(
                        Code::UnknownPolicyType,
                        &path(&spec_path, [Seg::Key("policyTypes"), Seg::Index(i)]),
                        format!("unknown policy type `{other}`"),
                        "policyTypes entries are `Ingress` or `Egress` (case-sensitive)",
                    ),
                }
            }
        }
    }

    let ingress = spec.ingress.unwrap_or_default();
    let ingress: Vec<Rule> = ingress
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let base = path(&spec_path, [Seg::Key("ingress"), Seg::Index(i)]);
            rule(
                &mut cx,
                r.from.as_deref(),
                r.ports.as_deref(),
                &base,
                "from",
            )
        })
        .collect();
    let egress = spec.egress.unwrap_or_default();
    let egress: Vec<Rule> = egress
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let base = path(&spec_path, [Seg::Key("egress"), Seg::Index(i)]);
            rule(&mut cx, r.to.as_deref(), r.ports.as_deref(), &base, "to")
        })
        .collect();

    if !cx.diags.is_empty() {
        return Err(cx.diags);
    }
    Ok(NetworkPolicy {
        namespace: namespace.to_owned(),
        name,
        pod_selector,
        ingress: ingress_on.then_some(ingress),
        egress: egress_on.then_some(egress),
    })
}

fn rule(
    cx: &mut Ctx<'_>,
    peers: Option<&[k8s::NetworkPolicyPeer]>,
    ports: Option<&[k8s::NetworkPolicyPort]>,
    base: &[Seg],
    peers_key: &'static str,
) -> Rule {
    let peers = match peers {
        None | Some([]) => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .filter_map(|(i, p)| peer(cx, p, &path(base, [Seg::Key(peers_key), Seg::Index(i)])))
                .collect(),
        ),
    };
    let ports = match ports {
        None | Some([]) => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .filter_map(|(i, p)| port(cx, p, &path(base, [Seg::Key("ports"), Seg::Index(i)])))
                .collect(),
        ),
    };
    Rule { peers, ports }
}

fn peer(cx: &mut Ctx<'_>, p: &k8s::NetworkPolicyPeer, at: &[Seg]) -> Option<Peer> {
    let has_selectors = p.pod_selector.is_some() || p.namespace_selector.is_some();
    match (&p.ip_block, has_selectors) {
        (Some(_), true) => {
            cx.error(
                Code::InvalidPeer,
                at,
                "a peer may not combine `ipBlock` with `podSelector` or `namespaceSelector`".into(),
                "split it into two peers (list entries), which are ORed",
            );
            None
        }
        (None, false) => {
            cx.error(
                Code::InvalidPeer,
                at,
                "a peer must set `podSelector`, `namespaceSelector` or `ipBlock`".into(),
                "to admit every source, leave `from`/`to` out of the rule instead of listing an empty peer",
            );
            None
        }
        (Some(block), false) => ip_block(cx, block, &path(at, [Seg::Key("ipBlock")])),
        (None, true) => {
            let namespaces = p
                .namespace_selector
                .as_ref()
                .map(|s| selector(cx, Some(s), &path(at, [Seg::Key("namespaceSelector")])));
            let pods = selector(
                cx,
                p.pod_selector.as_ref(),
                &path(at, [Seg::Key("podSelector")]),
            );
            Some(Peer::Pods { namespaces, pods })
        }
    }
}

pub(crate) fn ip_block(cx: &mut Ctx<'_>, b: &k8s::IPBlock, at: &[Seg]) -> Option<Peer> {
    let cidr_path = path(at, [Seg::Key("cidr")]);
    if b.cidr.is_empty() {
        cx.error(
            Code::WrongType,
            at,
            "missing field `cidr`".into(),
            "an ipBlock needs `cidr`, e.g. `cidr: 10.0.0.0/16`",
        );
        return None;
    }
    let cidr = parse_cidr(cx, &b.cidr, &cidr_path)?;
    let mut except = Vec::new();
    let mut ok = true;
    for (i, e) in b.except.iter().flatten().enumerate() {
        let e_path = path(at, [Seg::Key("except"), Seg::Index(i)]);
        match parse_cidr(cx, e, &e_path) {
            Some(net) if cidr.contains(&net) && net.prefix_len() > cidr.prefix_len() => {
                except.push(net)
            }
            Some(net) => {
                ok = false;
                cx.error(
                    Code::ExceptOutsideCidr,
                    &e_path,
                    format!("except `{net}` is not strictly inside cidr `{cidr}`"),
                    "each except entry must be a proper subrange of the block's cidr",
                );
            }
            None => ok = false,
        }
    }
    ok.then_some(Peer::IpBlock { cidr, except })
}

fn parse_cidr(cx: &mut Ctx<'_>, s: &str, at: &[Seg]) -> Option<IpNet> {
    match s.parse::<IpNet>() {
        // The API accepts a CIDR with host bits set (it masks them).
        Ok(net) => Some(net.trunc()),
        Err(_) => {
            let help = if s.parse::<std::net::IpAddr>().is_ok() {
                "add a prefix length, e.g. `/32` for one IPv4 address or `/128` for IPv6"
            } else {
                "write an IPv4 or IPv6 network in CIDR notation, e.g. `10.0.0.0/16`"
            };
            cx.error(Code::InvalidCidr, at, format!("invalid CIDR `{s}`"), help);
            None
        }
    }
}

pub(crate) fn port(cx: &mut Ctx<'_>, p: &k8s::NetworkPolicyPort, at: &[Seg]) -> Option<PortSpec> {
    let protocol = match p.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(s) => match Protocol::parse(s) {
            Some(proto) => proto,
            None => {
                cx.error(
                    Code::UnknownProtocol,
                    &path(at, [Seg::Key("protocol")]),
                    format!("unknown protocol `{s}`"),
                    "use `TCP`, `UDP` or `SCTP` (upper case)",
                );
                return None;
            }
        },
    };
    let port_path = path(at, [Seg::Key("port")]);
    let end_path = path(at, [Seg::Key("endPort")]);
    match (&p.port, p.end_port) {
        (None, None) => Some(PortSpec::AnyPort(protocol)),
        (None, Some(_)) => {
            cx.error(
                Code::InvalidEndPort,
                &end_path,
                "`endPort` without `port`".into(),
                "set `port` to the first port of the range",
            );
            None
        }
        (Some(IntOrString::Int(n)), end) => {
            let start = check_port_number(cx, *n, &port_path)?;
            let end = match end {
                None => start,
                Some(e) => {
                    let e = check_port_number(cx, e, &end_path)?;
                    if e < start {
                        cx.error(
                            Code::InvalidEndPort,
                            &end_path,
                            format!("`endPort` {e} is below `port` {start}"),
                            "endPort must be greater than or equal to port",
                        );
                        return None;
                    }
                    e
                }
            };
            Some(PortSpec::Range {
                protocol,
                start,
                end,
            })
        }
        (Some(IntOrString::String(name)), end) => {
            if end.is_some() {
                cx.error(
                    Code::InvalidEndPort,
                    &end_path,
                    format!("`endPort` cannot be used with the named port `{name}`"),
                    "use a numeric `port` for a range, or drop `endPort`",
                );
                return None;
            }
            if let Err(why) = check_port_name(name) {
                cx.error(
                    Code::PortOutOfRange,
                    &port_path,
                    format!("invalid named port `{name}`: {why}"),
                    "a port is a number from 1 to 65535 or an IANA service name (e.g. `http`)",
                );
                return None;
            }
            Some(PortSpec::Named {
                protocol,
                name: name.clone(),
            })
        }
    }
}

fn check_port_number(cx: &mut Ctx<'_>, n: i32, at: &[Seg]) -> Option<u16> {
    match u16::try_from(n) {
        Ok(p) if p >= 1 => Some(p),
        _ => {
            cx.error(
                Code::PortOutOfRange,
                at,
                format!("port {n} is out of range"),
                "ports are numbers from 1 to 65535",
            );
            None
        }
    }
}

/// `IsValidPortName`: an IANA service name.
pub fn check_port_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 15 {
        return Err("must be 1 to 15 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("may contain only lowercase letters, digits and `-`");
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        return Err("must contain at least one letter");
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err("must not begin or end with `-` or contain `--`");
    }
    Ok(())
}

/// Lower a label selector, reporting invalid syntax. `None` (the field is
/// omitted) selects everything, as `{}` does.
pub(crate) fn selector(
    cx_: &mut dyn SelectorErrors,
    s: Option<&LabelSelector>,
    at: &[Seg],
) -> Selector {
    let mut requirements = Vec::new();
    let Some(s) = s else {
        return Selector::everything();
    };
    for (k, v) in s.match_labels.iter().flatten() {
        let key_path = path(at, [Seg::Key("matchLabels"), Seg::Owned(k.clone())]);
        if check_label(cx_, k, Some(v), &key_path) {
            requirements.push(Requirement::In {
                key: k.clone(),
                values: [v.clone()].into(),
            });
        }
    }
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let e_path = path(at, [Seg::Key("matchExpressions"), Seg::Index(i)]);
        let values = e.values.clone().unwrap_or_default();
        let key_ok = check_label(cx_, &e.key, None, &path(&e_path, [Seg::Key("key")]));
        let mut values_ok = true;
        for (j, v) in values.iter().enumerate() {
            values_ok &= check_label(
                cx_,
                &e.key,
                Some(v),
                &path(&e_path, [Seg::Key("values"), Seg::Index(j)]),
            );
        }
        let req = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                cx_.selector_error(
                    &path(&e_path, [Seg::Key("operator")]),
                    format!("operator `{}` needs at least one value", e.operator),
                    "list the values to match in `values`",
                );
                None
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                cx_.selector_error(
                    &path(&e_path, [Seg::Key("values")]),
                    format!("operator `{}` takes no values", e.operator),
                    "remove `values`, or use `In`/`NotIn` to match specific values",
                );
                None
            }
            "In" => Some(Requirement::In {
                key: e.key.clone(),
                values: values.into_iter().collect(),
            }),
            "NotIn" => Some(Requirement::NotIn {
                key: e.key.clone(),
                values: values.into_iter().collect(),
            }),
            "Exists" => Some(Requirement::Exists { key: e.key.clone() }),
            "DoesNotExist" => Some(Requirement::DoesNotExist { key: e.key.clone() }),
            other => {
                cx_.selector_error(
                    &path(&e_path, [Seg::Key("operator")]),
                    format!("unknown selector operator `{other}`"),
                    "operators are `In`, `NotIn`, `Exists` and `DoesNotExist` (case-sensitive)",
                );
                None
            }
        };
        if let Some(r) = req.filter(|_| key_ok && values_ok) {
            requirements.push(r);
        }
    }
    requirements.sort();
    requirements.dedup();
    Selector { requirements }
}

/// Validate a label key (and value, when given); report and return false when
/// invalid.
pub(crate) fn check_label(
    cx: &mut dyn SelectorErrors,
    key: &str,
    value: Option<&str>,
    at: &[Seg],
) -> bool {
    if let Err(why) = labels::check_key(key) {
        cx.label_error(at, format!("invalid label key `{key}`: {why}"));
        return false;
    }
    if let Some(v) = value
        && let Err(why) = labels::check_value(v)
    {
        cx.label_error(at, format!("invalid label value `{v}` for `{key}`: {why}"));
        return false;
    }
    true
}

/// Where selector and label errors go (policies and inventory objects alike).
pub(crate) trait SelectorErrors {
    fn selector_error(&mut self, at: &[Seg], message: String, help: &str);
    fn label_error(&mut self, at: &[Seg], message: String);
}

impl SelectorErrors for Ctx<'_> {
    fn selector_error(&mut self, at: &[Seg], message: String, help: &str) {
        self.error(Code::InvalidSelector, at, message, help);
    }

    fn label_error(&mut self, at: &[Seg], message: String) {
        self.error(
            Code::InvalidLabel,
            at,
            message,
            "label keys are `[prefix/]name`, names and values at most 63 characters of letters, digits, `-`, `_`, `.`, beginning and ending with a letter or digit",
        );
    }
}

/// Collects selector/label errors for objects other than policies.
pub(crate) struct Collector<'a> {
    pub at: &'a dyn Locate,
    pub diags: &'a mut Vec<Diagnostic>,
}

impl SelectorErrors for Collector<'_> {
    fn selector_error(&mut self, at: &[Seg], message: String, help: &str) {
        self.diags.push(
            Diagnostic::new(Code::InvalidSelector, message)
                .with_help(help)
                .at_location(self.at.locate(at)),
        );
    }

    fn label_error(&mut self, at: &[Seg], message: String) {
        let mut cx = Ctx {
            at: self.at,
            diags: Vec::new(),
        };
        cx.label_error(at, message);
        self.diags.extend(cx.diags);
    }
}
