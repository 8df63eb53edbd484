//! Diagnostics with stable codes.
//!
//! Every problem found in the input is a [`Diagnostic`]: a [`Code`] from the
//! registry below (codes are never reused; a retired code keeps its row), a
//! one-line message, a help line, and the location of the offending YAML node.
//! Loading never stops at the first problem: each bad object yields its
//! diagnostics and the rest of the input is still read.

use std::fmt;

use miette::{LabeledSpan, NamedSource, SourceCode};
use serde::Serialize;

use crate::source::{Location, SourceFile, Span};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $name:literal, $severity:ident, $summary:literal;)*) => {
        /// The registry of diagnostic codes. `LD` codes come from loading and
        /// validating input; `QY` codes from probes and queries; `VF` codes from
        /// assertions of `ambit verify`; `NP` (NetworkPolicy), `AP`
        /// (AuthorizationPolicy), `AN` (admin policies) and `RX`
        /// (reachability) codes are the rules of `ambit lint`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code spelled `s` (e.g. `NP003`).
            pub fn parse(s: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.as_str() == s)
            }

            /// The stable code, e.g. `LD003`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// A short kebab-case name, e.g. `invalid-cidr`.
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// One sentence saying what the code is about.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    UnreadablePath = "LD000", "unreadable-path", Error, "A path given on the command line cannot be read.";
    YamlSyntax = "LD001", "yaml-syntax", Error, "The file is not well-formed YAML.";
    WrongType = "LD002", "wrong-type", Error, "A field has the wrong type, or a required field is missing.";
    InvalidCidr = "LD003", "invalid-cidr", Error, "An ipBlock CIDR (or an except entry) is not a valid IPv4 or IPv6 CIDR.";
    ExceptOutsideCidr = "LD004", "except-outside-cidr", Error, "An ipBlock except entry is not strictly inside its cidr.";
    PortOutOfRange = "LD005", "port-out-of-range", Error, "A port number is outside 1-65535, or a named port is not a valid port name.";
    InvalidEndPort = "LD006", "invalid-end-port", Error, "endPort is below port, or is used without a numeric port.";
    UnknownProtocol = "LD007", "unknown-protocol", Error, "A protocol is not TCP, UDP or SCTP.";
    UnknownPolicyType = "LD008", "unknown-policy-type", Error, "A policyTypes entry is not Ingress or Egress.";
    InvalidSelector = "LD009", "invalid-selector", Error, "A label selector requirement is malformed.";
    InvalidLabel = "LD010", "invalid-label", Error, "A label key or value does not follow Kubernetes label syntax.";
    DuplicateObject = "LD011", "duplicate-object", Error, "Two objects have the same kind, namespace and name.";
    InvalidPeer = "LD013", "invalid-peer", Error, "A peer sets no selector and no ipBlock (NetworkPolicy), or combines fields that exclude each other (ipBlock with a selector; two fields of an admin policy peer).";
    MissingField = "LD012", "missing-field", Error, "An object lacks a field that identifies it (apiVersion, kind, metadata.name).";
    UnknownAction = "LD014", "unknown-action", Error, "An action is not one its kind defines (AuthorizationPolicy: ALLOW, DENY, AUDIT, CUSTOM; ClusterNetworkPolicy: Accept, Deny, Pass; AdminNetworkPolicy: Allow, Deny, Pass; BaselineAdminNetworkPolicy: Allow, Deny).";
    InvalidProvider = "LD015", "invalid-provider", Error, "A CUSTOM AuthorizationPolicy names no provider, or another action sets one.";
    EmptyRuleField = "LD016", "empty-rule-field", Error, "An AuthorizationPolicy rule has a null rule, an empty from/to list, source or operation, a condition without values, or an empty value.";
    InvalidPrincipal = "LD017", "invalid-principal", Error, "A principal or service account is malformed (a spiffe:// prefix, a `*` inside, a bad namespace/name).";
    ConflictingTargets = "LD018", "conflicting-targets", Error, "A policy sets both selector and targetRefs (or targetRef and targetRefs), or a targetRef is incomplete.";
    UnknownConditionKey = "LD019", "unknown-condition-key", Error, "A `when` condition uses a key Istio does not define.";
    InvalidPathTemplate = "LD020", "invalid-path-template", Error, "A path uses `{*}` / `{**}` in a way Istio rejects.";
    InvalidMtlsMode = "LD021", "invalid-mtls-mode", Error, "A PeerAuthentication mode is unknown, or portLevelMtls is set without a selector.";
    InvalidMeshConfig = "LD022", "invalid-mesh-config", Error, "The `mesh` entry of the `istio` ConfigMap is not valid mesh configuration YAML.";
    InvalidPriority = "LD023", "invalid-priority", Error, "An admin policy priority is outside 0-1000.";
    InvalidSubject = "LD024", "invalid-subject", Error, "An admin policy subject sets neither or both of `namespaces` and `pods`.";
    InvalidProtocolEntry = "LD025", "invalid-protocol-entry", Error, "A `protocols` (or `ports`) entry sets no field or more than one, or a port sets neither or both of a number and a range.";
    InvalidPortRange = "LD026", "invalid-port-range", Error, "A port range does not have start < end.";
    InvalidLength = "LD027", "invalid-length", Error, "A list (rules, peers, protocols, networks, domain names) is empty where the API needs an item or longer than it allows, or a rule name is over 100 characters.";
    InvalidDomainNames = "LD028", "invalid-domain-names", Error, "A domainNames entry is not a domain name (a `*.` prefix at most), or domainNames appear in a rule whose action is not Accept/Allow.";
    EmptyPeer = "LD029", "empty-peer", Warning, "An admin policy peer sets no field; it fails closed (an Accept rule matches nothing, a Deny or Pass rule denies everything).";
    NamedPortWithoutPods = "LD030", "named-port-without-pods", Error, "An egress rule with networks, nodes or domainNames peers uses a named port, which only pods have.";
    UnknownTier = "LD031", "unknown-tier", Error, "A ClusterNetworkPolicy tier is not Admin or Baseline.";
    InvalidBaselineName = "LD032", "invalid-baseline-name", Error, "A BaselineAdminNetworkPolicy is not named `default` (it is a singleton).";
    PriorityTie = "LD033", "priority-tie", Warning, "Two policies of one tier have the same priority and select common pods in one direction; ambit orders them by name, the API leaves the order undefined.";
    InvalidConfig = "LD034", "invalid-config", Error, "The lint configuration (`.ambit.yaml`) is malformed: an unknown key, rule code or severity, or a bad path pattern.";
    InvalidAgentConfig = "AG001", "invalid-agent-config", Error, "The agent configuration is malformed: an unknown key, a missing or mistyped field, a bad address, duplicate workloads or an inconsistent setting.";
    InvalidCertificate = "AG002", "invalid-certificate", Error, "A certificate, key or trust bundle named by the agent configuration cannot be read, does not carry one SPIFFE ID in the trust domain, does not match its key, or names another identity than the workload's.";
    PolicySelectsNothing = "NP001", "policy-selects-nothing", Warning, "A NetworkPolicy's podSelector matches no workload of its namespace.";
    PeerMatchesNothing = "NP002", "peer-matches-nothing", Warning, "A peer's namespaceSelector matches no namespace, or its selectors together match no workload.";
    ShadowedRule = "NP003", "shadowed-rule", Warning, "Everything a rule admits is admitted by other rules of policies selecting the same pods.";
    RuleNeverMatches = "NP004", "rule-never-matches", Warning, "A rule admits no flow to or from any pod its policy selects.";
    AdmitsEverything = "NP005", "admits-everything", Warning, "A rule admits every peer on every port (`ingress: [{}]` or `egress: [{}]`) in a namespace that has a default-deny policy.";
    EgressWithoutDns = "NP006", "egress-without-dns", Warning, "Pods isolated for egress cannot reach the cluster DNS on UDP and TCP port 53.";
    IpBlockCoversPods = "NP007", "ip-block-covers-pods", Warning, "An ipBlock covers addresses of the pod network (or of --service-cidr), where pod selectors are meant.";
    NoDefaultDeny = "NP008", "no-default-deny", Info, "A namespace with workloads has no policy that isolates every pod it could hold for ingress.";
    SplitRule = "NP009", "split-rule", Warning, "A rule with peers but no ports sits next to a rule with ports but no peers: likely one rule split by indentation.";
    UnknownLabel = "NP010", "unknown-label", Warning, "A selector names a label key or value that no workload (or namespace) carries; likely a typo.";
    NamedPortNeverMatches = "NP011", "named-port-never-matches", Warning, "A named port is declared by no pod it could resolve against (or only under another protocol).";
    AllowDroppedAtL4 = "AP001", "allow-dropped-at-l4", Warning, "An ALLOW rule with HTTP attributes applies to ambient workloads without a waypoint: ztunnel drops it, so it never matches.";
    DenyWidenedAtL4 = "AP002", "deny-widened-at-l4", Warning, "A DENY rule with HTTP attributes applies to ambient workloads without a waypoint: ztunnel drops those attributes and denies more.";
    DenyFailsOpenAtL4 = "AP003", "deny-fails-open-at-l4", Warning, "A DENY rule whose from, to or when is only HTTP attributes applies to ambient workloads without a waypoint: ztunnel never matches it.";
    AuthzSelectsNothing = "AP004", "authz-selects-nothing", Warning, "An AuthorizationPolicy applies to no workload (its selector or targetRefs match nothing).";
    HbonePortBlocked = "AP005", "hbone-port-blocked", Warning, "Ambient workloads isolated for ingress by NetworkPolicy do not admit TCP 15008, the HBONE port mesh traffic arrives on.";
    AllowDeadUnderDeny = "AP006", "allow-dead-under-deny", Warning, "Every request an ALLOW rule admits is denied by DENY policies applying to the same workloads: the rule is dead.";
    SubjectSelectsNothing = "AN001", "subject-selects-nothing", Warning, "An admin policy's subject selects no workload.";
    OverriddenByAdmin = "AN002", "overridden-by-admin", Warning, "Every flow a NetworkPolicy rule admits is denied first by the Admin tier: the two conflict and the rule has no effect.";
    ReachableFromOutside = "RX101", "reachable-from-outside", Info, "A workload admits connections from addresses outside the cluster.";
    UnknownWorkload = "QY001", "unknown-workload", Error, "A probe names a workload that is not in the cluster.";
    InvalidProbe = "QY002", "invalid-probe", Error, "A probe is malformed.";
    InvalidQuery = "QY003", "invalid-query", Error, "A query expression of `ambit query` does not parse, or names a label badly.";
    InvalidAssertion = "VF001", "invalid-assertion", Error, "An assertions file of `ambit verify` is malformed (shape, unknown key, expectation, scope, duplicate name, named port, or two ends that are only addresses).";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in the input, with where it is.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    pub location: Option<Location>,
    /// What the label under the source snippet says; defaults to the message.
    pub label: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(),
            message: elide(message.into()),
            help: None,
            location: None,
            label: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(elide(label.into()));
        self
    }

    pub fn at(mut self, file: &SourceFile, span: Span) -> Self {
        self.location = Some(Location {
            file: file.clone(),
            span,
        });
        self
    }

    pub fn at_location(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// 1-based line and column, when the diagnostic has a location.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.location
            .as_ref()
            .map(|l| l.file.line_col(l.span.offset))
    }

    /// A plain, serializable form (for `-o json`).
    pub fn to_json(&self) -> DiagnosticJson<'_> {
        let (line, column) = self.line_col().unzip();
        DiagnosticJson {
            code: self.code.as_str(),
            name: self.code.name(),
            severity: self.severity,
            message: &self.message,
            help: self.help.as_deref(),
            file: self.location.as_ref().map(|l| l.file.name()),
            line,
            column,
        }
    }

    /// A miette report of this diagnostic, for graphical rendering. A line
    /// too long to quote (minified or generated YAML) is not quoted; the
    /// report names the position instead.
    pub fn report(&self) -> Report<'_> {
        Report {
            diag: self,
            source: self
                .location
                .as_ref()
                .filter(|l| l.file.longest_line(l.span) <= QUOTE_LIMIT)
                .map(|l| {
                    NamedSource::new(l.file.name(), l.file.printable_text()).with_language("yaml")
                }),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{}: ", loc.display())?;
        }
        write!(f, "{} {}", self.code, self.message)
    }
}

/// Messages quote the input (a label value, a key); a quoted value of a
/// megabyte would make a megabyte of report. Longer texts keep their start
/// and end around a note of what was left out. Control characters are
/// escaped (`\u{1b}`): a report must not send escape sequences to a
/// terminal.
const MESSAGE_LIMIT: usize = 400;

fn elide(text: String) -> String {
    let text = if text.chars().any(|c| c.is_control() && c != '\n') {
        text.chars()
            .map(|c| {
                if c.is_control() && c != '\n' {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        text
    };
    let count = text.chars().count();
    if count <= MESSAGE_LIMIT {
        return text;
    }
    let (head, tail) = (MESSAGE_LIMIT * 2 / 3, MESSAGE_LIMIT / 3);
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!(
        "{start}…({} characters left out)…{end}",
        count - head - tail
    )
}

/// The JSON shape of a diagnostic.
#[derive(Debug, Serialize)]
pub struct DiagnosticJson<'a> {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub message: &'a str,
    pub help: Option<&'a str>,
    pub file: Option<&'a str>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// Adapter that lets miette render a [`Diagnostic`].
#[derive(Debug)]
pub struct Report<'a> {
    diag: &'a Diagnostic,
    source: Option<NamedSource<std::sync::Arc<str>>>,
}

/// Lines longer than this are not quoted in a report.
const QUOTE_LIMIT: usize = 1_000;

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.diag.location, &self.source) {
            (Some(loc), None) => write!(f, "{} (at {})", self.diag.message, loc.display()),
            _ => f.write_str(&self.diag.message),
        }
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_deref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let loc = self.diag.location.as_ref()?;
        let label = self
            .diag
            .label
            .clone()
            .unwrap_or_else(|| self.diag.message.clone());
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some(label), (loc.span.offset, loc.span.len)),
        )))
    }
}

/// Diagnostics collected while loading; loading goes on after each.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Sort by file, then position, then code: a stable order for output.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            let key = |d: &Diagnostic| {
                d.location
                    .as_ref()
                    .map(|l| (l.file.name().to_owned(), l.span.offset))
            };
            key(a).cmp(&key(b)).then(a.code.cmp(&b.code))
        });
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<T: IntoIterator<Item = Diagnostic>>(&mut self, iter: T) {
        self.0.extend(iter);
    }
}

/// Whether to colour what goes to `stream`: a terminal, and no `NO_COLOR`.
#[cfg(feature = "render")]
pub fn colour(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// miette's graphical reports, one after the other, 100 columns wide: how
/// the command-line tools show diagnostics to people.
#[cfg(feature = "render")]
pub fn render(diags: &[Diagnostic], colour: bool) -> String {
    use miette::{GraphicalReportHandler, GraphicalTheme};
    let theme = if colour {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut all = String::new();
    for d in diags {
        let mut out = String::new();
        match handler.render_report(&mut out, &d.report()) {
            Ok(()) => all.push_str(&out),
            Err(_) => all.push_str(&format!("{d}\n")),
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_keep_their_start_and_end() {
        let value = "x".repeat(1_000_000);
        let d = Diagnostic::new(Code::YamlSyntax, format!("bad `{value}` here"));
        assert!(d.message.chars().count() < 500, "{}", d.message.len());
        assert!(d.message.starts_with("bad `xxx"));
        assert!(d.message.ends_with("xxx` here"));
        assert!(d.message.contains("(999612 characters left out)"));
        let short = Diagnostic::new(Code::YamlSyntax, "short");
        assert_eq!(short.message, "short");
        let escape = Diagnostic::new(Code::YamlSyntax, "value `\u{1b}[2J`").with_label("\u{7}");
        assert_eq!(escape.message, "value `\\u{1b}[2J`");
        assert_eq!(escape.label.as_deref(), Some("\\u{7}"));
    }

    #[test]
    fn a_position_on_a_long_line_is_named_not_quoted() {
        let text = format!("a: 1\nb: {}\n", "y".repeat(100_000));
        let file = SourceFile::new("f.yaml", text);
        let d = Diagnostic::new(Code::YamlSyntax, "here").at(&file, Span::new(80_000, 1));
        let report = d.report();
        assert!(miette::Diagnostic::source_code(&report).is_none());
        assert_eq!(report.to_string(), "here (at f.yaml:2:79996)");
        let d = Diagnostic::new(Code::YamlSyntax, "here").at(&file, Span::new(0, 1));
        assert!(miette::Diagnostic::source_code(&d.report()).is_some());
    }
}
