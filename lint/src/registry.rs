//! The documentation of every code: `ambit rules` and `ambit rules CODE`,
//! and the help of SARIF rules.
//!
//! The examples of the lint rules are the fixtures their tests run
//! (`testdata/lint/CODE/{bad,good}.yaml`): each bad example is shown to fire
//! its rule and each good one not to. The loading codes show a file of
//! `testdata/bad/` (or `testdata/warnings/`) and its fixed counterpart in
//! `testdata/good/`, held to the same two facts.

use ambit_compiler::diag::Code;

/// What `ambit rules CODE` prints besides the code's name and summary.
#[derive(Debug, Clone, Copy)]
pub struct RuleDoc {
    pub code: Code,
    /// One paragraph: what the rule finds and why it matters.
    pub explanation: &'static str,
    /// Input that fires the rule.
    pub bad: &'static str,
    /// The same input, fixed.
    pub good: &'static str,
}

macro_rules! fixtures {
    ($dir:literal) => {
        (
            include_str!(concat!("../../testdata/lint/", $dir, "/bad.yaml")),
            include_str!(concat!("../../testdata/lint/", $dir, "/good.yaml")),
        )
    };
}

/// The documentation of `code`.
pub fn doc(code: Code) -> RuleDoc {
    let (explanation, (bad, good)): (&'static str, (&'static str, &'static str)) = match code {
        Code::PolicySelectsNothing => (
            "A NetworkPolicy applies to the pods of its namespace that its podSelector matches. When it matches none of today's workloads it isolates nothing and admits nothing: usually a label typo, or a policy written for a workload that was renamed or moved. Decided over the workloads of the input (skipped when the input has none).",
            fixtures!("NP001"),
        ),
        Code::PeerMatchesNothing => (
            "A peer admits pods by namespace labels and pod labels (without namespaceSelector, only in the policy's own namespace). A peer that matches no namespace, or no workload, admits nothing today: the traffic it was written for is denied. A frequent cause is a podSelector alone, which never looks outside the policy's namespace.",
            fixtures!("NP002"),
        ),
        Code::ShadowedRule => (
            "Everything the rule admits (every peer, port and protocol, for every pod its policy selects) is also admitted by other rules of policies that select the same pods, so removing it changes nothing. It is reported at the shadowed rule, not at the rules that cover it; of two identical rules the later one is reported, and removing every reported rule together changes no decision. Decided with Z3 over the workloads of the input and every address outside the cluster.",
            fixtures!("NP003"),
        ),
        Code::RuleNeverMatches => (
            "The rule admits no flow at all for the pods its policy selects: its peers and ports never meet. The usual cause is a named port that no destination pod declares, or declares only for another protocol (a named port binds its protocol). Decided with Z3; not reported when every peer of the rule already matches nothing (NP002).",
            fixtures!("NP004"),
        ),
        Code::AdmitsEverything => (
            "An empty rule (`ingress: [{}]` or `egress: [{}]`) admits every peer on every port, addresses outside the cluster included. Next to a default-deny policy of the same namespace it undoes the deny for the pods it selects, which is rarely what was meant; the ingress and egress cases are twins.",
            fixtures!("NP005"),
        ),
        Code::EgressWithoutDns => (
            "Pods isolated for egress need the cluster DNS: UDP 53 for queries and TCP 53 for answers too large for UDP. A policy that allows TCP only still leaves the pods without DNS. The DNS servers are the `k8s-app=kube-dns` workloads of kube-system; when the input has none, one is assumed. Decided from the compiled tables, every tier included.",
            fixtures!("NP006"),
        ),
        Code::IpBlockCoversPods => (
            "ipBlocks are meant for addresses outside the cluster: pod IPs are ephemeral, and whether an ipBlock matches traffic of pods depends on the network plugin. An ipBlock that covers the pod network (given with --pod-cidr, or inferred as the smallest CIDR holding every pod IP of the input) or the service network (--service-cidr) and does not except it is flagged.",
            fixtures!("NP007"),
        ),
        Code::NoDefaultDeny => (
            "Without a policy that isolates every pod of a namespace for ingress, a pod deployed tomorrow with new labels accepts connections from anywhere. Decided with Z3 over every label set a pod could carry, so a set of selectors that together cover all pods counts as a default deny.",
            fixtures!("NP008"),
        ),
        Code::SplitRule => (
            "`- from: [...]` followed by `- ports: [...]` is two rules: every port from those peers, and those ports from everyone. The intent is almost always one rule with both keys; the extra `-` is a mis-indentation that opens the ports to the world.",
            fixtures!("NP009"),
        ),
        Code::UnknownLabel => (
            "A selector that requires a label key, or a key=value, that no workload (for pod selectors) or no namespace (for namespace selectors) of the input carries matches nothing; a near miss of an existing label is suggested. Requirements that exclude (NotIn, DoesNotExist) are not checked.",
            fixtures!("NP010"),
        ),
        Code::NamedPortNeverMatches => (
            "A named port resolves against the destination pod's container ports, name and protocol together. A port entry whose name no candidate pod declares (the selected pods for ingress, the peers for egress), or declares only for another protocol, never matches. When it is the rule's only way to match, NP004 reports the rule instead.",
            fixtures!("NP011"),
        ),
        Code::AllowDroppedAtL4 => (
            "In ambient mode a workload without a waypoint is protected by ztunnel, which sees only L4. istiod drops ALLOW rules that use HTTP attributes (methods, paths, hosts, headers, request principals) from what it sends to ztunnel, so those rules never allow: traffic they were meant to admit is denied.",
            fixtures!("AP001"),
        ),
        Code::DenyWidenedAtL4 => (
            "For ztunnel, istiod removes the HTTP attributes of a DENY rule and keeps the rest: the rule then denies every connection its L4 attributes match, far more than the requests it names.",
            fixtures!("AP002"),
        ),
        Code::DenyFailsOpenAtL4 => (
            "When a DENY rule's `from`, `to` or a `when` condition consists only of HTTP attributes, nothing is left for ztunnel to match and the rule never matches: the deny fails open for ambient workloads without a waypoint.",
            fixtures!("AP003"),
        ),
        Code::AuthzSelectsNothing => (
            "An AuthorizationPolicy applies to the mesh workloads its selector matches (all of the namespace without one, the whole mesh in the root namespace) or, with targetRefs, behind the named Service or Gateway. One that applies to no workload of the input has no effect: a label typo, or a namespace that is not in the mesh.",
            fixtures!("AP004"),
        ),
        Code::HbonePortBlocked => (
            "Ambient mode carries traffic between pods over HBONE on TCP 15008, and NetworkPolicy is enforced on the host, outside the pod. A workload in the ambient mesh isolated by NetworkPolicy must admit 15008 from the peers it admits on its own ports, or mesh traffic to it is dropped.",
            fixtures!("AP005"),
        ),
        Code::AllowDeadUnderDeny => (
            "Istio decides DENY before ALLOW. When every request an ALLOW rule admits, at every workload its policy applies to, is also matched by a DENY policy applying there, the ALLOW rule never allows anything: usually a DENY written too wide. Decided with Z3 in the view of an L7 proxy, over every source (workloads and outside addresses) and every request, or none.",
            fixtures!("AP006"),
        ),
        Code::SubjectSelectsNothing => (
            "An admin policy applies to the pods its subject selects (never host-network pods). A subject that selects no workload of the input has no effect.",
            fixtures!("AN001"),
        ),
        Code::OverriddenByAdmin => (
            "The Admin tier (ClusterNetworkPolicy tier Admin, AdminNetworkPolicy) is evaluated before NetworkPolicy. When every flow a NetworkPolicy rule admits is denied there first, the two policies conflict and the rule has no effect. Decided with Z3.",
            fixtures!("AN002"),
        ),
        Code::ReachableFromOutside => (
            "A workload that admits connections from an address outside the cluster (outside the pod network, not a pod's or a node's) on some port, every tier and the L4 view of authorization considered. Informational: a list of what is exposed, to compare with what should be.",
            fixtures!("RX101"),
        ),
        Code::YamlSyntax => (
            "The input must be well-formed YAML in UTF-8: the parser's error is shown where it stopped. A key repeated in one mapping is an error too (YAML forbids it, and which value a tool keeps differs). A syntax error spares the other documents of the file.",
            (
                include_str!("../../testdata/bad/ld001-duplicate-key.yaml"),
                include_str!("../../testdata/good/LD001.yaml"),
            ),
        ),
        Code::WrongType => (
            "Each object is read as its API type: a field of the wrong type (a string where a list is expected), a required field that is missing, or a field an Istio or admin-policy spec does not define is reported where it is written.",
            (
                include_str!("../../testdata/bad/ld002-authz-unknown-field.yaml"),
                include_str!("../../testdata/good/LD002.yaml"),
            ),
        ),
        Code::InvalidCidr => (
            "An ipBlock `cidr` or `except` entry (and an Istio `ipBlocks` / `remoteIpBlocks` value, an admin policy network) must be an IPv4 or IPv6 address in CIDR notation; a bare address needs `/32` or `/128`.",
            (
                include_str!("../../testdata/bad/ld003-authz-invalid-ip.yaml"),
                include_str!("../../testdata/good/LD003.yaml"),
            ),
        ),
        Code::ExceptOutsideCidr => (
            "Each `except` entry of an ipBlock must be a proper subrange of its `cidr`; the API server refuses the policy otherwise.",
            (
                include_str!("../../testdata/bad/ld004-except-outside-cidr.yaml"),
                include_str!("../../testdata/good/LD004.yaml"),
            ),
        ),
        Code::PortOutOfRange => (
            "Ports are numbers from 1 to 65535, or IANA service names (lower-case letters, digits and `-`, at most 15 characters, at least one letter) that resolve against the destination's container ports.",
            (
                include_str!("../../testdata/bad/ld005-anp-port-out-of-range.yaml"),
                include_str!("../../testdata/good/LD005.yaml"),
            ),
        ),
        Code::InvalidEndPort => (
            "`endPort` makes a range from `port` to `endPort`: it needs a numeric `port` and must not be below it.",
            (
                include_str!("../../testdata/bad/ld006-end-port-below-port.yaml"),
                include_str!("../../testdata/good/LD006.yaml"),
            ),
        ),
        Code::UnknownProtocol => (
            "A protocol is `TCP`, `UDP` or `SCTP`, in upper case as the API spells it.",
            (
                include_str!("../../testdata/bad/ld007-unknown-protocol.yaml"),
                include_str!("../../testdata/good/LD007.yaml"),
            ),
        ),
        Code::UnknownPolicyType => (
            "`policyTypes` entries are `Ingress` or `Egress`, case-sensitive.",
            (
                include_str!("../../testdata/bad/ld008-unknown-policy-type.yaml"),
                include_str!("../../testdata/good/LD008.yaml"),
            ),
        ),
        Code::InvalidSelector => (
            "A matchExpressions requirement has an operator `In`, `NotIn`, `Exists` or `DoesNotExist`; `In`/`NotIn` need values and `Exists`/`DoesNotExist` take none.",
            (
                include_str!("../../testdata/bad/ld009-invalid-selector.yaml"),
                include_str!("../../testdata/good/LD009.yaml"),
            ),
        ),
        Code::InvalidLabel => (
            "Label keys are `[prefix/]name` with a DNS-subdomain prefix and a name of at most 63 characters; values are at most 63 characters of letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit.",
            (
                include_str!("../../testdata/bad/ld010-invalid-label.yaml"),
                include_str!("../../testdata/good/LD010.yaml"),
            ),
        ),
        Code::DuplicateObject => (
            "Two objects of one kind with one namespace and name cannot both exist; which one the cluster would hold is unclear, so both the first definition and the repeat are pointed at.",
            (
                include_str!("../../testdata/bad/ld011-duplicate-object.yaml"),
                include_str!("../../testdata/good/LD011.yaml"),
            ),
        ),
        Code::MissingField => (
            "Every object needs `apiVersion`, `kind` and `metadata.name` to be identified.",
            (
                include_str!("../../testdata/bad/ld012-missing-kind.yaml"),
                include_str!("../../testdata/good/LD012.yaml"),
            ),
        ),
        Code::InvalidPeer => (
            "A NetworkPolicy peer sets `podSelector` and/or `namespaceSelector`, or `ipBlock` alone; an empty peer is refused (leave `from`/`to` out to admit everyone). An admin policy peer sets exactly one field.",
            (
                include_str!("../../testdata/bad/ld013-cnp-peer-two-fields.yaml"),
                include_str!("../../testdata/good/LD013.yaml"),
            ),
        ),
        Code::UnknownAction => (
            "Each policy kind has its own action words, and case matters: AuthorizationPolicy ALLOW, DENY, AUDIT, CUSTOM; ClusterNetworkPolicy Accept, Deny, Pass; AdminNetworkPolicy Allow, Deny, Pass; BaselineAdminNetworkPolicy Allow, Deny.",
            (
                include_str!("../../testdata/bad/ld014-banp-pass.yaml"),
                include_str!("../../testdata/good/LD014.yaml"),
            ),
        ),
        Code::InvalidProvider => (
            "A CUSTOM AuthorizationPolicy delegates to an external authorizer named by `provider`; the other actions take no provider.",
            (
                include_str!("../../testdata/bad/ld015-custom-without-provider.yaml"),
                include_str!("../../testdata/good/LD015.yaml"),
            ),
        ),
        Code::EmptyRuleField => (
            "Istio refuses a null rule, an empty `from` or `to` list, an empty `source` or `operation`, a condition without values, and an empty value: each would silently match more or less than written.",
            (
                include_str!("../../testdata/bad/ld016-empty-from.yaml"),
                include_str!("../../testdata/good/LD016.yaml"),
            ),
        ),
        Code::InvalidPrincipal => (
            "Principals are `TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT` without `spiffe://`, with `*` only as a whole prefix or suffix; service accounts are `name` or `namespace/name`.",
            (
                include_str!("../../testdata/bad/ld017-invalid-principal.yaml"),
                include_str!("../../testdata/good/LD017.yaml"),
            ),
        ),
        Code::ConflictingTargets => (
            "An AuthorizationPolicy attaches by `selector` or by `targetRefs`, not both; a targetRef names a kind and a name in the policy's namespace.",
            (
                include_str!("../../testdata/bad/ld018-selector-and-target-refs.yaml"),
                include_str!("../../testdata/good/LD018.yaml"),
            ),
        ),
        Code::UnknownConditionKey => (
            "`when` conditions use the keys Istio defines (`source.ip`, `request.headers[...]`, `destination.port`, ...); an unknown key is reported with the closest one.",
            (
                include_str!("../../testdata/bad/ld019-unknown-condition-key.yaml"),
                include_str!("../../testdata/good/LD019.yaml"),
            ),
        ),
        Code::InvalidPathTemplate => (
            "Path templates use `{*}` for one whole segment and `{**}` for the rest of the path (last only), and are not mixed with `*` globs.",
            (
                include_str!("../../testdata/bad/ld020-invalid-path-template.yaml"),
                include_str!("../../testdata/good/LD020.yaml"),
            ),
        ),
        Code::InvalidMtlsMode => (
            "PeerAuthentication modes are UNSET, DISABLE, PERMISSIVE and STRICT; `portLevelMtls` needs a workload selector.",
            (
                include_str!("../../testdata/bad/ld021-invalid-mtls-mode.yaml"),
                include_str!("../../testdata/good/LD021.yaml"),
            ),
        ),
        Code::InvalidMeshConfig => (
            "The `mesh` entry of the `istio` ConfigMap in istio-system is MeshConfig written as YAML text; ambit reads its trust domain, aliases and root namespace.",
            (
                include_str!("../../testdata/bad/ld022-invalid-mesh-config.yaml"),
                include_str!("../../testdata/good/LD022.yaml"),
            ),
        ),
        Code::InvalidPriority => (
            "Admin policy priorities run from 0 (first) to 1000.",
            (
                include_str!("../../testdata/bad/ld023-invalid-priority.yaml"),
                include_str!("../../testdata/good/LD023.yaml"),
            ),
        ),
        Code::InvalidSubject => (
            "An admin policy subject selects by `namespaces` or by `pods` (namespace and pod selectors), exactly one.",
            (
                include_str!("../../testdata/bad/ld024-subject-both.yaml"),
                include_str!("../../testdata/good/LD024.yaml"),
            ),
        ),
        Code::InvalidProtocolEntry => (
            "Each entry of `protocols` (or `ports`) sets exactly one field; a TCP entry needs `destinationPort`; a port sets a number or a range.",
            (
                include_str!("../../testdata/bad/ld025-anp-ports-two-fields.yaml"),
                include_str!("../../testdata/good/LD025.yaml"),
            ),
        ),
        Code::InvalidPortRange => (
            "A port range needs start below end; for one port, use a number.",
            (
                include_str!("../../testdata/bad/ld026-range-start-not-below-end.yaml"),
                include_str!("../../testdata/good/LD026.yaml"),
            ),
        ),
        Code::InvalidLength => (
            "Lists the API bounds: rules, peers, protocols, networks and domain names must not be empty where an item is required, and not longer than the API allows; rule names are at most 100 characters.",
            (
                include_str!("../../testdata/bad/ld027-empty-from.yaml"),
                include_str!("../../testdata/good/LD027.yaml"),
            ),
        ),
        Code::InvalidDomainNames => (
            "`domainNames` peers are domain names with at most a leading `*.`, and only Accept/Allow rules may use them.",
            (
                include_str!("../../testdata/bad/ld028-domain-names-in-deny.yaml"),
                include_str!("../../testdata/good/LD028.yaml"),
            ),
        ),
        Code::EmptyPeer => (
            "An admin policy peer with no field set (for example a field of a newer API version) matches nothing for Accept and fails closed for Deny and Pass: a warning, since the policy is still applied.",
            (
                include_str!("../../testdata/warnings/ld029-empty-peer.yaml"),
                include_str!("../../testdata/good/LD029.yaml"),
            ),
        ),
        Code::NamedPortWithoutPods => (
            "A named port resolves against a pod's container ports; an egress rule towards networks, nodes or domain names has no pod to resolve it against.",
            (
                include_str!("../../testdata/bad/ld030-named-port-with-networks.yaml"),
                include_str!("../../testdata/good/LD030.yaml"),
            ),
        ),
        Code::UnknownTier => (
            "ClusterNetworkPolicy tiers are `Admin` and `Baseline`.",
            (
                include_str!("../../testdata/bad/ld031-unknown-tier.yaml"),
                include_str!("../../testdata/good/LD031.yaml"),
            ),
        ),
        Code::InvalidBaselineName => (
            "The BaselineAdminNetworkPolicy is a singleton named `default`.",
            (
                include_str!("../../testdata/bad/ld032-banp-not-default.yaml"),
                include_str!("../../testdata/good/LD032.yaml"),
            ),
        ),
        Code::PriorityTie => (
            "Two policies of one tier with the same priority that select common pods in one direction: the API leaves their order undefined and implementations may differ. ambit orders them by name; give them distinct priorities.",
            (
                include_str!("../../testdata/warnings/ld033-priority-tie.yaml"),
                include_str!("../../testdata/good/LD033.yaml"),
            ),
        ),
        Code::UnreadablePath => (
            "A path given on the command line cannot be read (it does not exist, or permissions forbid it); with `--git`, a revision that is not one of the repository. Machine formats of `ambit lint` still print what the other paths gave.",
            (
                "$ ambit lint deploy/polices    # a typo: no such directory\n",
                "$ ambit lint deploy/policies\n",
            ),
        ),
        Code::InvalidConfig => (
            "The lint configuration `.ambit.yaml` has `rules` (a code mapped to `off`, `error`, `warning` or `info`) and `ignore` (a list of glob patterns); anything else is reported where it is written, and the run stops (exit 2) rather than lint with a configuration it misread.",
            (
                "rules:\n  NP999: off      # no such rule\n  NP003: loud     # no such severity\n",
                "rules:\n  NP009: off\n  NP003: info\nignore:\n  - vendor/**\n",
            ),
        ),
        Code::InvalidAgentConfig => (
            "The agent configuration (`ambit agent --config FILE`) is one YAML mapping with `node`, `trustDomain`, `caBundle`, `tables`, and optionally `ca`, `listen`, `workloads`, `peers`, `limits`, `reloadInterval` and `accessLog` (see the README). Unknown keys, mistyped values, addresses that do not parse, a workload listed twice or an address given to two workloads are reported where they are written, and the agent does not start.",
            (
                "node: node-a\ntrustDomain: cluster.local\ncaBundle: ca.pem\ntables: tables.json\nlisten:\n  inbound: 10.0.0.1       # no port\nworkloads:\n  - workload: web          # not namespace/name\n    address: 10.0.1.5\n    cert: issue\n",
                "node: node-a\ntrustDomain: cluster.local\ncaBundle: ca.pem\nca: {cert: ca.pem, key: ca-key.pem}\ntables: tables.json\nlisten:\n  inbound: 10.0.0.1:15008\nworkloads:\n  - workload: shop/web\n    address: 10.0.1.5\n    cert: issue\n    serviceAccount: web\n",
            ),
        ),
        Code::InvalidCertificate => (
            "Every certificate the agent presents or trusts is checked before it starts: the trust bundle must hold CA certificates; a workload certificate must match its key and carry exactly one SPIFFE ID `spiffe://TRUST_DOMAIN/ns/NS/sa/SA` in the agent's trust domain and the workload's namespace (and service account, when `serviceAccount` is given); a `ca` must be for the agent's trust domain. `ambit ca init` and `ambit ca issue` write conforming files.",
            (
                "workloads:\n  - workload: shop/web\n    address: 10.0.1.5\n    cert: certs/pay-db.pem      # spiffe://cluster.local/ns/pay/sa/db\n    key: certs/pay-db-key.pem\n",
                "workloads:\n  - workload: shop/web\n    address: 10.0.1.5\n    cert: certs/shop-web.pem    # spiffe://cluster.local/ns/shop/sa/web\n    key: certs/shop-web-key.pem\n",
            ),
        ),
        Code::UnknownWorkload => (
            "A probe names its ends as `namespace/name` of a workload of the input (a Pod, or a controller's pod template) or `ip:ADDRESS`; an unknown name is reported with the closest existing one.",
            (
                "- {from: frontend/web, to: data/postgress, port: 5432}\n",
                "- {from: frontend/web, to: data/postgres, port: 5432}\n",
            ),
        ),
        Code::InvalidProbe => (
            "A probe has `from`, `to`, a numeric `port` (1-65535) and optionally `protocol` (TCP, UDP, SCTP) and an HTTP request; anything malformed is reported at its place in the probe file.",
            (
                "- {from: frontend/web, to: data/postgres, port: postgres}\n",
                "- {from: frontend/web, to: data/postgres, port: 5432, protocol: TCP}\n",
            ),
        ),
        Code::InvalidQuery => (
            "A query expression of `ambit query` is `FROM -> TO[:PORT[/PROTOCOL]] [METHOD PATH]`, with `who` or `*` for a set and Kubernetes label-selector syntax after `ns:`; a parse error points at the column.",
            (
                "$ ambit query testdata/demo 'frontend/web -> data/postgres:'\n",
                "$ ambit query testdata/demo 'frontend/web -> data/postgres:5432'\n",
            ),
        ),
        Code::InvalidAssertion => (
            "An assertions file has an `assertions` list; each has a unique `name`, `expect` (allow, deny, only), `from` and `to` peers, optional numeric `ports` and a `scope` (inventory, any-pod). Unknown keys and values are reported where they are written.",
            (
                include_str!("../../testdata/bad-assertions/vf001-unknown-expectation.yaml"),
                "assertions:\n- name: dev-cannot-reach-prod\n  expect: deny\n  from: {namespaceSelector: {matchLabels: {env: dev}}}\n  to:   {namespaceSelector: {matchLabels: {env: prod}}}\n",
            ),
        ),
    };
    RuleDoc {
        code,
        explanation,
        bad,
        good,
    }
}
