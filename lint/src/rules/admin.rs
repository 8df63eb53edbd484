//! Admin policy rules (ClusterNetworkPolicy, AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy).

use ambit_compiler::admin::AdminPolicy;
use ambit_compiler::diag::Code;
use ambit_compiler::yaml::Seg;

use crate::Context;
use crate::sites::ObjectKey;

pub(crate) fn key(p: &AdminPolicy) -> ObjectKey {
    ObjectKey::new(p.kind.as_str(), "", &p.name)
}

/// AN001: the subject selects no workload.
pub(crate) fn run(cx: &mut Context<'_>) {
    if cx.cluster.workloads.is_empty() {
        return;
    }
    for p in &cx.cluster.admin_policies {
        let any = cx.cluster.workloads.iter().any(|w| {
            !w.host_network
                && p.subject.pods.matches(&w.labels)
                && p.subject
                    .namespaces
                    .matches(&cx.namespace_labels(&w.namespace))
        });
        if any {
            continue;
        }
        cx.report(
            Code::SubjectSelectsNothing,
            &key(p),
            &[Seg::Key("spec"), Seg::Key("subject")],
            format!(
                "the subject of {} `{}` selects no workload",
                p.kind.as_str(),
                p.name
            ),
            "a subject selects pods by namespace labels (and pod labels); host-network pods are never subjects".into(),
        );
    }
}
