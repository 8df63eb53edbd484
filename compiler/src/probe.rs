//! Probes: the what-if questions of `ambit query`, and their answers.
//!
//! The probe format and the JSON answer are a stable contract (DESIGN.md):
//!
//! ```yaml
//! - from: shop/web          # "namespace/name" of a workload, or "ip:203.0.113.9"
//!   to: pay/db
//!   port: 5432
//!   protocol: TCP           # TCP (default), UDP or SCTP
//! ```
//!
//! Unknown keys are ignored, so an expectations file is also a probe file.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::admin::Action;
use crate::authz::{ExtAuthz, Note, Request, View};
use crate::diag::{Code, Diagnostic};
use crate::model::{Direction, Protocol};
use crate::source::{Location, SourceFile};
use crate::table::{Endpoint, Tables, Verdict};
use crate::yaml;

/// A probe as written.
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeSpec {
    pub from: String,
    pub to: String,
    pub port: i64,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub http: Option<HttpSpec>,
    #[serde(default)]
    pub ext_authz: Option<String>,
}

/// The HTTP request of a probe (decided by the authorization layer).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HttpSpec {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// A probe resolved against the tables.
#[derive(Debug, Clone)]
pub struct Probe {
    pub from_name: String,
    pub to_name: String,
    pub from: Endpoint,
    pub to: Endpoint,
    pub port: u16,
    pub protocol: Protocol,
    /// The HTTP request on the connection, if the probe gives one.
    pub request: Option<Request>,
    pub ext_authz: ExtAuthz,
}

/// One entry of `decided_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecidedBy {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub rule: String,
    pub effect: String,
    /// The tier of an admin policy (`Admin` or `Baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The priority of an admin policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// The answer to a probe: the JSON object of the contract.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: Protocol,
    pub allowed: bool,
    pub l4_allowed: bool,
    pub decided_by: Vec<DecidedBy>,
    /// For human output only.
    #[serde(skip)]
    pub explanation: crate::table::Explanation,
}

/// Parse a probe file (a YAML or JSON list of probes) and resolve every probe.
/// All problems are reported.
pub fn read_probe_file(file: &SourceFile, tables: &Tables) -> Result<Vec<Probe>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let docs = yaml::documents(file, &mut diags);
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut probes = Vec::new();
    let mut any_list = false;
    for doc in &docs {
        let Some(items) = doc.sequence_items() else {
            let root = doc.root();
            diags.push(
                Diagnostic::new(Code::InvalidProbe, "a probe file is a list of probes")
                    .with_help("write `- {from: ns/a, to: ns/b, port: 80}` entries, one per probe")
                    .at(file, root.span()),
            );
            continue;
        };
        any_list = true;
        for item in items {
            match item.typed::<ProbeSpec>() {
                Ok(spec) => match resolve(&spec, tables, |path| {
                    Some(Location {
                        file: file.clone(),
                        span: item.locate(&[path.into()]),
                    })
                }) {
                    Ok(p) => probes.push(p),
                    Err(d) => diags.push(d),
                },
                Err(mut d) => {
                    d.code = Code::InvalidProbe;
                    d.help =
                        Some("a probe has `from`, `to`, `port` and optionally `protocol`".into());
                    diags.push(d);
                }
            }
        }
    }
    if !any_list && diags.is_empty() {
        diags.push(
            Diagnostic::new(Code::InvalidProbe, "the probe file is empty")
                .with_help("write a list of probes"),
        );
    }
    if diags.is_empty() {
        Ok(probes)
    } else {
        Err(diags)
    }
}

/// Resolve one probe; `at` locates a field of it for diagnostics.
pub fn resolve(
    spec: &ProbeSpec,
    tables: &Tables,
    at: impl Fn(&'static str) -> Option<Location>,
) -> Result<Probe, Diagnostic> {
    let from = endpoint(&spec.from, tables).map_err(|d| d.at_location(at("from")))?;
    let to = endpoint(&spec.to, tables).map_err(|d| d.at_location(at("to")))?;
    if matches!((from, to), (Endpoint::Ip(_), Endpoint::Ip(_))) {
        return Err(Diagnostic::new(
            Code::InvalidProbe,
            "a probe needs a workload at one end at least",
        )
        .with_help("`ip:` addresses are outside the inventory; no policy selects them")
        .at_location(at("to")));
    }
    let port = u16::try_from(spec.port)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            Diagnostic::new(
                Code::InvalidProbe,
                format!("port {} is out of range", spec.port),
            )
            .with_help("a port is a number from 1 to 65535")
            .at_location(at("port"))
        })?;
    let protocol = match spec.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(p) => Protocol::parse(&p.to_ascii_uppercase()).ok_or_else(|| {
            Diagnostic::new(Code::InvalidProbe, format!("unknown protocol `{p}`"))
                .with_help("use TCP, UDP or SCTP")
                .at_location(at("protocol"))
        })?,
    };
    let ext_authz = match spec
        .ext_authz
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => ExtAuthz::Unknown,
        Some("allow") => ExtAuthz::Allow,
        Some("deny") => ExtAuthz::Deny,
        Some(other) => {
            return Err(Diagnostic::new(
                Code::InvalidProbe,
                format!("`ext_authz: {other}` is neither `allow` nor `deny`"),
            )
            .with_help("`ext_authz` says what a CUSTOM policy's external authorizer answers")
            .at_location(at("ext_authz")));
        }
    };
    let request = spec.http.as_ref().map(|h| Request {
        method: h.method.clone(),
        path: h.path.clone(),
        host: h.host.clone(),
        headers: h
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
    });
    Ok(Probe {
        from_name: spec.from.clone(),
        to_name: spec.to.clone(),
        from,
        to,
        port,
        protocol,
        request,
        ext_authz,
    })
}

/// `namespace/name` or `ip:ADDRESS`.
pub fn endpoint(name: &str, tables: &Tables) -> Result<Endpoint, Diagnostic> {
    if let Some(addr) = name.strip_prefix("ip:") {
        return addr.parse::<IpAddr>().map(Endpoint::Ip).map_err(|_| {
            Diagnostic::new(Code::InvalidProbe, format!("`{addr}` is not an IP address"))
                .with_help("write `ip:203.0.113.9` or `ip:2001:db8::1`")
        });
    }
    let Some((ns, wl)) = name.split_once('/') else {
        return Err(Diagnostic::new(
            Code::InvalidProbe,
            format!("`{name}` is not `namespace/name`"),
        )
        .with_help("name a workload as `namespace/name`, or an address as `ip:ADDRESS`"));
    };
    tables
        .workload_index(ns, wl)
        .map(Endpoint::Workload)
        .ok_or_else(|| {
            let mut near: Vec<(f64, String)> = tables
                .workloads
                .iter()
                .map(|w| {
                    let id = format!("{}/{}", w.namespace, w.name);
                    (strsim::jaro_winkler(name, &id), id)
                })
                .filter(|(s, _)| *s > 0.7)
                .collect();
            near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let help = if near.is_empty() {
                "workloads are Pods and the pod templates of controllers, named `namespace/name`"
                    .to_owned()
            } else {
                let names: Vec<String> =
                    near.iter().take(3).map(|(_, n)| format!("`{n}`")).collect();
                format!("did you mean {}?", names.join(" or "))
            };
            Diagnostic::new(
                Code::UnknownWorkload,
                format!("no workload `{name}` in the cluster"),
            )
            .with_help(help)
        })
}

/// Decide a probe from the tables.
pub fn answer(tables: &Tables, p: &Probe) -> Answer {
    let explanation = tables.explain(p.from, p.to, p.protocol, p.port);
    let mut decided_by = Vec::new();
    for (direction, verdict, trail, remote, own) in [
        (
            Direction::Egress,
            &explanation.egress,
            &explanation.egress_trail,
            p.to,
            p.from,
        ),
        (
            Direction::Ingress,
            &explanation.ingress,
            &explanation.ingress_trail,
            p.from,
            p.to,
        ),
    ] {
        for &r in trail {
            decided_by.push(tier_entry(tables, r, own, false));
        }
        decided_by.extend(decided_by_entries(tables, direction, verdict, remote, own));
    }
    let (mut full_notes, mut l4_notes) = (Vec::new(), Vec::new());
    let authorize = |view, notes| {
        tables.authorize(
            p.from,
            p.to,
            p.protocol,
            p.port,
            p.request.as_ref(),
            p.ext_authz,
            view,
            Some(notes),
        )
    };
    let full = authorize(View::Full, &mut full_notes);
    let l4 = authorize(View::L4, &mut l4_notes);
    let as_entry = |n: Note| DecidedBy {
        kind: n.kind.to_owned(),
        namespace: n.namespace,
        name: n.name,
        rule: n.rule,
        effect: n.effect,
        tier: None,
        priority: None,
    };
    let full_entries: Vec<DecidedBy> = full_notes.into_iter().map(as_entry).collect();
    let l4_entries: Vec<DecidedBy> = l4_notes
        .into_iter()
        .map(as_entry)
        .filter(|e| !full_entries.contains(e))
        .map(|mut e| {
            if !e.effect.contains("L4") {
                e.effect = format!("at L4 (ztunnel): {}", e.effect);
            }
            e
        })
        .collect();
    decided_by.extend(full_entries);
    decided_by.extend(l4_entries);
    if explanation.self_traffic {
        decided_by.clear();
    }
    let own = explanation.self_traffic;
    Answer {
        from: p.from_name.clone(),
        to: p.to_name.clone(),
        port: p.port,
        protocol: p.protocol,
        allowed: explanation.allowed && (own || full),
        l4_allowed: explanation.allowed && (own || l4),
        decided_by,
        explanation,
    }
}

/// The entry of an Admin- or Baseline-tier rule: one that decided, a Pass
/// that matched, or (`decided` false) a domainNames rule that could not
/// match. `own` is the endpoint whose side the rule is on.
fn tier_entry(tables: &Tables, rule: u32, own: Endpoint, decided: bool) -> DecidedBy {
    let r = &tables.rules[rule as usize];
    let pol = &tables.policies[r.policy as usize];
    let accept = if pol.kind == "ClusterNetworkPolicy" {
        "Accept"
    } else {
        "Allow"
    };
    let effect = match r.action {
        Some(Action::Pass) => {
            let target = match own {
                Endpoint::Workload(w) => {
                    tables.pass_target(rule, tables.workloads[w as usize].class)
                }
                Endpoint::Ip(_) => "default allow",
            };
            format!("Pass -> {target}")
        }
        Some(_) if r.fail_closed => format!(
            "{} (fail closed: a peer of the rule sets no field)",
            if r.action == Some(Action::Accept) {
                "matches nothing"
            } else {
                "Deny"
            }
        ),
        Some(Action::Accept) if r.domain_names && !decided => {
            format!(
                "not matched: domainNames are not resolved to addresses in a static analysis ({accept} rule)"
            )
        }
        Some(Action::Accept) => accept.to_owned(),
        Some(Action::Deny) => "Deny".to_owned(),
        None => "allows".to_owned(),
    };
    DecidedBy {
        kind: pol.kind.clone(),
        namespace: pol.namespace.clone(),
        name: pol.name.clone(),
        rule: r.label(),
        effect,
        tier: pol.tier.map(|t| t.as_str().to_owned()),
        priority: pol.priority,
    }
}

fn decided_by_entries(
    tables: &Tables,
    direction: Direction,
    verdict: &Verdict,
    remote: Endpoint,
    own: Endpoint,
) -> Vec<DecidedBy> {
    let entry = |policy: u32, rule: String, effect: &str| {
        let pol = &tables.policies[policy as usize];
        DecidedBy {
            kind: pol.kind.clone(),
            namespace: pol.namespace.clone(),
            name: pol.name.clone(),
            rule,
            effect: effect.to_owned(),
            tier: None,
            priority: None,
        }
    };
    match verdict {
        Verdict::NotApplicable | Verdict::NotIsolated => Vec::new(),
        Verdict::Rule { rule, .. } => vec![tier_entry(tables, *rule, own, true)],
        Verdict::Allowed(rules) => rules
            .iter()
            .map(|&r| {
                let rule = &tables.rules[r as usize];
                let effect = if tables.admitted_by_pod_ip(r, remote) {
                    "allows (ipBlock matched a pod IP)"
                } else {
                    "allows"
                };
                entry(
                    rule.policy,
                    format!("{}[{}]", direction.as_str(), rule.index),
                    effect,
                )
            })
            .collect(),
        Verdict::Denied(policies) => policies
            .iter()
            .flat_map(|&pid| {
                let rules: Vec<&crate::table::TableRule> = tables
                    .rules
                    .iter()
                    .filter(|r| r.policy == pid && r.direction == direction)
                    .collect();
                if rules.is_empty() {
                    vec![entry(pid, direction.as_str().to_owned(), "no rule admits")]
                } else {
                    rules
                        .iter()
                        .map(|r| {
                            entry(
                                pid,
                                format!("{}[{}]", direction.as_str(), r.index),
                                "no rule admits",
                            )
                        })
                        .collect()
                }
            })
            .collect(),
    }
}
