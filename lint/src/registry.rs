//! The documentation of every code: `ambit rules` and `ambit rules CODE`,
//! and the help of SARIF rules.
//!
//! The examples of the lint rules are the fixtures their tests run
//! (`testdata/lint/CODE/{bad,good}.yaml`): each bad example is shown to fire
//! its rule and each good one not to.

use ambit_compiler::diag::Code;

/// What `ambit rules CODE` prints besides the code's name and summary.
#[derive(Debug, Clone, Copy)]
pub struct RuleDoc {
    pub code: Code,
    /// One paragraph: what the rule finds and why it matters.
    pub explanation: &'static str,
    /// Input that fires the rule.
    pub bad: Option<&'static str>,
    /// The same input, fixed.
    pub good: Option<&'static str>,
}

macro_rules! fixtures {
    ($dir:literal) => {
        (
            Some(include_str!(concat!(
                "../../testdata/lint/",
                $dir,
                "/bad.yaml"
            ))),
            Some(include_str!(concat!(
                "../../testdata/lint/",
                $dir,
                "/good.yaml"
            ))),
        )
    };
}

/// The documentation of `code`.
pub fn doc(code: Code) -> RuleDoc {
    let (explanation, (bad, good)): (&'static str, (Option<&'static str>, Option<&'static str>)) =
        match code {
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
            _ => (
                "Reported while loading and validating the input, before any rule runs: the object is left out, and the message and help say what to fix.",
                (None, None),
            ),
        };
    RuleDoc {
        code,
        explanation,
        bad,
        good,
    }
}
