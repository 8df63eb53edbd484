//! The law for the authorization layer: on random meshes (ambient, sidecar
//! and plain namespaces, opted-out pods), random AuthorizationPolicies with L4
//! and L7 rules of every action, random PeerAuthentications, trust domains
//! and a NetworkPolicy layer, both views read from the compiled tables equal
//! the reference evaluator's (Envoy-style for the full view, istiod's ambient
//! translation plus ztunnel's matching for the L4 view).

#[path = "generators/authz.rs"]
mod generators;
#[path = "generators/matrix_law.rs"]
mod matrix_law;

use std::net::IpAddr;

use ambit_compiler::authz::ExtAuthz;
use ambit_compiler::compile::compile_with;
use ambit_compiler::model::Protocol;
use ambit_compiler::reference::{self, End, World};
use ambit_compiler::reference_authz::{self, Http, MeshWorld, Src};
use ambit_compiler::table::Endpoint;
use generators::{IPS, case, requests};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn both_views_decide_as_the_reference(c in case()) {
        let tables = compile_with(&c.cluster, &c.options);
        let mesh = c.options.mesh.over(&c.cluster.mesh);
        let world = World {
            namespaces: &c.cluster.namespaces,
            workloads: &c.cluster.workloads,
            policies: &c.netpols,
            admin: &[],
            nodes: &[],
        };
        let mesh_world = MeshWorld {
            namespaces: &c.cluster.namespaces,
            policies: &c.sources,
            peer_authentications: &c.cluster.peer_authentications,
            services: &c.cluster.services,
            mesh: &mesh,
        };
        let outside: IpAddr = IPS[3].parse().unwrap();
        let mut sources: Vec<(Endpoint, End, Src)> = c
            .cluster
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (Endpoint::Workload(i as u32), End::Pod(w), Src::Pod(w)))
            .collect();
        sources.push((Endpoint::Ip(outside), End::Ip(outside), Src::Ip(outside)));
        let requests = requests();
        // The all-pairs matrix agrees with `allowed_ports` (which follows
        // the L4 decision) on every pair of workloads.
        matrix_law::matrix_agrees(&tables)?;
        for (di, dst) in c.cluster.workloads.iter().enumerate() {
            let to = Endpoint::Workload(di as u32);
            for &(from, from_r, src) in &sources {
                let own = from == to;
                for port in [80u16, 8080, 9] {
                    let np = reference::allowed(world, from_r, End::Pod(dst), "TCP", port);
                    let want_l4 = np && (own || reference_authz::authz_allowed(mesh_world, src, dst, port, None, None, true));
                    prop_assert_eq!(
                        tables.decide(from, to, Protocol::Tcp, port), want_l4,
                        "L4 {:?} -> {:?} {}", from, to, port
                    );
                    for (req, headers) in requests.iter().map(|r| match r {
                        Some((req, h)) => (Some(req), h.as_slice()),
                        None => (None, &[][..]),
                    }) {
                        for ext in [None, Some(true), Some(false)] {
                            let http = req.map(|r| Http {
                                method: r.method.as_deref(),
                                path: r.path.as_deref(),
                                host: r.host.as_deref(),
                                headers,
                            });
                            let want = np && (own || reference_authz::authz_allowed(mesh_world, src, dst, port, http, ext, false));
                            let ext_t = match ext {
                                None => ExtAuthz::Unknown,
                                Some(true) => ExtAuthz::Allow,
                                Some(false) => ExtAuthz::Deny,
                            };
                            prop_assert_eq!(
                                tables.decide_full(from, to, Protocol::Tcp, port, req, ext_t), want,
                                "full {:?} -> {:?} {} {:?} ext {:?}", from, to, port, req, ext
                            );
                        }
                    }
                }
                // Only TCP is proxied: UDP sees the NetworkPolicy layer alone.
                prop_assert_eq!(
                    tables.decide(from, to, Protocol::Udp, 53),
                    reference::allowed(world, from_r, End::Pod(dst), "UDP", 53)
                );
            }
        }
    }
}
