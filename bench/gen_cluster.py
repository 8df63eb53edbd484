#!/usr/bin/env python3
"""Deterministic generator of realistic Kubernetes clusters for benchmarks.

Writes a manifests repository (multi-document YAML, Python standard library
only) for benchmarking the NetworkPolicy analyzer:

    python3 bench/gen_cluster.py --pods 1000 --policies 300 --seed 1 --out DIR

Parameters:
  --pods N               pods in the cluster, exactly (default 1000). With
                         --pods-per-workload 1 each is a v1 Pod with
                         status.podIP; otherwise N is the sum of the replicas of
                         the Deployments and no Pods are written.
  --policies N           NetworkPolicies, exactly (default 300).
  --namespaces N         Namespace objects, exactly (default max(2, pods/50)),
                         counting kube-system (always present, with CoreDNS)
                         and monitoring (present when N >= 3, with Prometheus).
  --pods-per-workload K  1 (default): workloads are Pods named <app>-<n>.
                         K > 1: workloads are apps/v1 Deployments named <app>
                         with replicas K (the last of a namespace may have
                         fewer).
  --authz N              Istio AuthorizationPolicies (default 0). With N > 0
                         every app namespace and monitoring are in the mesh
                         (label istio-injection=enabled): per-app ALLOW
                         policies naming the callers' service accounts and
                         ports, a share with L7 attributes (methods, paths),
                         namespace-wide ALLOWs for monitoring, DENYs from dev
                         into prod.
  --admin N              ClusterNetworkPolicies (default 0): Admin-tier guard
                         rails (deny the cloud metadata endpoint, accept
                         Prometheus scrapes, pass DNS), team rules by
                         priority, and a Baseline tier (deny dev -> prod).
  --default-deny F       share of app namespaces with a namespace-wide
                         default deny of ingress and egress (and a DNS
                         allowance), 0 to 1 (default 0.8: a locked-down
                         cluster); of the others, one in two denies ingress
                         only and the rest have no baseline. Lower values
                         model a cluster part-way through adopting policies:
                         more pairs connected, on more varied ports.
  --revision R           R deterministic edits of the NetworkPolicies (default
                         0): a port added, a rule removed, a namespace label
                         changed — a second version of the same repository,
                         for `ambit diff`.
  --seed S               random seed (default 1). The same parameters give
                         byte-identical output.
  --out DIR              output directory (required). Created if needed; files
                         a previous run wrote there (namespaces.yaml,
                         workloads/*.yaml, policies/*.yaml) are replaced.

Layout of DIR:
  namespaces.yaml        every Namespace (labels team, env)
  workloads/<ns>.yaml    ServiceAccounts and Pods (or Deployments) of <ns>
  policies/<ns>.yaml     NetworkPolicies of <ns> (only namespaces that have any)
  istio/<ns>.yaml        AuthorizationPolicies of <ns> (with --authz)
  cluster/admin.yaml     ClusterNetworkPolicies (with --admin)

A one-line summary goes to standard error.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import re
import sys
import time

# ---------------------------------------------------------------------------
# A small block-style YAML writer (dicts keep insertion order).

_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:@-]*\Z")
# What a YAML 1.1 or 1.2 reader could take for a number.
_NUMBERISH = re.compile(
    r"[-+]?(0x[0-9a-fA-F_]+|0o?[0-7_]+|0b[01_]+|[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?"
    r"|([0-9][0-9_]*)?(\.[0-9_]*)?([eE][-+]?[0-9]+)?)\Z")
_YAML_WORDS = {
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
}


def _scalar(v) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    return _str_scalar(str(v))


@functools.lru_cache(maxsize=None)
def _str_scalar(s: str) -> str:
    plain = (
        _PLAIN.match(s) is not None
        and not s.endswith(":")
        and s.lower() not in _YAML_WORDS
        and _NUMBERISH.match(s) is None
        and not s.startswith(".")
    )
    return s if plain else json.dumps(s)


def _emit_map(m: dict, indent: int, out: list) -> None:
    pad = " " * indent
    for k, v in m.items():
        if isinstance(v, dict):
            if v:
                out.append(f"{pad}{k}:")
                _emit_map(v, indent + 2, out)
            else:
                out.append(f"{pad}{k}: {{}}")
        elif isinstance(v, list):
            if v:
                out.append(f"{pad}{k}:")
                _emit_list(v, indent + 2, out)
            else:
                out.append(f"{pad}{k}: []")
        else:
            out.append(f"{pad}{k}: {_scalar(v)}")


def _emit_list(items: list, indent: int, out: list) -> None:
    pad = " " * indent
    for item in items:
        if isinstance(item, dict):
            if not item:
                out.append(f"{pad}- {{}}")
                continue
            start = len(out)
            _emit_map(item, indent + 2, out)
            out[start] = f"{pad}- " + out[start][indent + 2:]
        elif isinstance(item, list):
            raise ValueError("nested lists are not used")
        else:
            out.append(f"{pad}- {_scalar(item)}")


def to_yaml(doc: dict) -> str:
    out: list = []
    _emit_map(doc, 0, out)
    return "\n".join(out) + "\n"


def write_docs(path: str, header: str, docs: list) -> None:
    text = header + "---\n".join(to_yaml(d) for d in docs)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


# ---------------------------------------------------------------------------
# Vocabulary.

TEAMS = ["web", "shop", "payments", "identity", "search", "growth", "data", "logistics"]
ENVS = ["dev", "staging", "prod"]
ENV_WEIGHTS = [3, 3, 4]
DOMAINS = [
    "orders", "cart", "checkout", "catalog", "search", "users", "auth",
    "billing", "invoices", "shipping", "inventory", "reviews", "ratings",
    "notifications", "email", "sms", "recommendations", "pricing", "promotions",
    "ledger", "fraud", "reports", "analytics", "media", "uploads", "profile",
    "sessions", "loyalty", "returns", "tax", "wishlist", "coupons", "tracking",
    "accounts", "feeds", "geo", "maps", "audit", "quotes", "refunds",
]
TIERS = ["frontend", "backend", "data"]
TIER_WEIGHTS = [2, 5, 3]
# role -> (tier, ports). A port is (name, number, protocol).
HTTP = ("http", 8080, "TCP")
METRICS = ("metrics", 9090, "TCP")
HTTPS = ("https", 8443, "TCP")
POSTGRES = ("postgres", 5432, "TCP")
REDIS = ("redis", 6379, "TCP")
DNS = ("dns", 53, "UDP")
ROLES = {
    "frontend": [("web", [HTTP]), ("ui", [HTTP]), ("bff", [HTTP, METRICS]),
                 ("gateway", [HTTPS, METRICS])],
    "backend": [("api", [HTTP, METRICS]), ("api", [HTTP]), ("worker", [METRICS]),
                ("svc", [HTTP, METRICS]), ("consumer", [HTTP]),
                ("scheduler", [HTTP, METRICS]), ("grpc", [HTTP, METRICS]),
                ("resolver", [DNS, METRICS])],
    "data": [("postgres", [POSTGRES]), ("postgres", [POSTGRES, METRICS]),
             ("db", [POSTGRES]), ("redis", [REDIS]), ("redis", [REDIS, METRICS]),
             ("cache", [REDIS])],
}
ROLE_WEIGHTS = {"frontend": [4, 2, 2, 1], "backend": [12, 6, 6, 6, 4, 2, 4, 1],
                "data": [3, 2, 1, 3, 2, 2]}
IMAGES = {
    "postgres": "docker.io/library/postgres:{v}", "db": "docker.io/library/postgres:{v}",
    "redis": "docker.io/library/redis:{v}", "cache": "docker.io/library/redis:{v}",
}
DATA_VERSIONS = {"postgres": ["15.6", "16.2", "16.4"], "db": ["15.6", "16.4"],
                 "redis": ["7.2.4", "7.2.5"], "cache": ["7.0.15", "7.2.5"]}
EXTERNAL_CIDRS = [
    # (cidr, except): TEST-NET documentation ranges and partner ranges.
    ("203.0.113.0/24", ["203.0.113.128/25"]),
    ("198.51.100.0/24", []),
    ("192.0.2.0/24", ["192.0.2.64/26"]),
    ("172.16.0.0/12", ["172.16.5.0/24", "172.20.0.0/16"]),
    ("52.94.0.0/16", []),
    ("8.8.8.8/32", []),
]

NS_NAME_LABEL = "kubernetes.io/metadata.name"


class App:
    __slots__ = ("name", "tier", "role", "ports", "sa", "replicas", "pods",
                 "version", "canary_version")

    def __init__(self, name, tier, role, ports, sa, replicas, version, canary_version):
        self.name = name
        self.tier = tier
        self.role = role
        self.ports = ports
        self.sa = sa
        self.replicas = replicas
        self.pods = []  # (pod name, ip, version, canary)
        self.version = version
        self.canary_version = canary_version


class Ns:
    __slots__ = ("name", "team", "env", "index", "apps", "deny", "kind", "extra_labels")

    def __init__(self, name, team, env, index, kind):
        self.name = name
        self.team = team
        self.env = env
        self.index = index
        self.apps: list[App] = []
        self.deny = "none"  # "full", "ingress" or "none"
        self.kind = kind  # "system", "monitoring", "app"
        self.extra_labels: dict = {}


def wchoice(rng: random.Random, items, weights):
    return rng.choices(items, weights=weights, k=1)[0]


# ---------------------------------------------------------------------------
# The cluster model.


def split_by_weights(rng: random.Random, total: int, n: int, minimum: int) -> list[int]:
    """`total` split into `n` parts, each >= minimum when total allows, uneven."""
    if n == 0:
        return []
    base = minimum if total >= minimum * n else 0
    rest = total - base * n
    weights = [rng.lognormvariate(0.0, 0.6) for _ in range(n)]
    s = sum(weights)
    shares = [rest * w / s for w in weights]
    parts = [int(x) for x in shares]
    left = rest - sum(parts)
    order = sorted(range(n), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return [base + p for p in parts]


class Cluster:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.namespaces: list[Ns] = []
        self.ppw = args.pods_per_workload
        self.suffix: dict = {}
        self.exhausted: set = set()
        self.build_namespaces()
        self.build_workloads()
        self.assign_ips()

    # -- namespaces --------------------------------------------------------
    def build_namespaces(self):
        rng = self.rng
        n = self.args.namespaces
        ks = Ns("kube-system", "platform", "prod", 0, "system")
        self.namespaces.append(ks)
        if n >= 3:
            self.namespaces.append(Ns("monitoring", "platform", "prod", 1, "monitoring"))
        used = {"kube-system", "monitoring", "default"}
        teams = TEAMS[: max(3, min(len(TEAMS), 2 + n // 12))]
        while len(self.namespaces) < n:
            team = rng.choice(teams)
            env = wchoice(rng, ENVS, ENV_WEIGHTS)
            word = rng.choice(DOMAINS)
            name = f"{team}-{word}-{env}"
            k = 2
            while name in used:
                name = f"{team}-{word}{k}-{env}"
                k += 1
            used.add(name)
            ns = Ns(name, team, env, len(self.namespaces), "app")
            r = rng.random()
            full = self.args.default_deny
            ns.deny = ("full" if r < full
                       else "ingress" if r < full + (1 - full) / 2 else "none")
            if env == "prod" and rng.random() < 0.3:
                ns.extra_labels["compliance"] = rng.choice(["pci-dss", "soc2", "hipaa"])
            ns.extra_labels["pod-security.kubernetes.io/enforce"] = (
                "restricted" if rng.random() < 0.7 else "baseline")
            self.namespaces.append(ns)
        self.app_namespaces = [ns for ns in self.namespaces if ns.kind == "app"]

    # -- workloads ---------------------------------------------------------
    def build_workloads(self):
        rng = self.rng
        pods = self.args.pods
        coredns = 2 if pods >= 10 else min(pods, 1)
        left = pods - coredns
        ks = self.namespaces[0]
        if coredns:
            ks.apps.append(App("coredns", "backend", "coredns",
                               [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"),
                                ("metrics", 9153, "TCP")],
                               "coredns", coredns, "v1.11.3", None))
        mon = [ns for ns in self.namespaces if ns.kind == "monitoring"]
        if mon and left > 0:
            prom = 2 if pods >= 200 and self.ppw == 1 else 1
            prom = min(prom, left)
            mon[0].apps.append(App("prometheus", "backend", "prometheus",
                                   [("web", 9090, "TCP")], "prometheus", prom,
                                   "v2.53.1", None))
            left -= prom
        parts = split_by_weights(rng, left, len(self.app_namespaces), 1)
        for ns, count in zip(self.app_namespaces, parts):
            self.fill_namespace(ns, count)

    def new_app(self, ns: Ns, used: set, domains: list, replicas: int) -> App:
        rng = self.rng
        tier = wchoice(rng, TIERS, TIER_WEIGHTS)
        exhausted = ns.name in self.exhausted
        for attempt in range(3 if exhausted else 24):
            role, ports = wchoice(rng, ROLES[tier], ROLE_WEIGHTS[tier])
            domain = rng.choice(domains)
            name = f"{domain}-{role}"
            if name not in used:
                break
            if attempt >= 8:
                extra = rng.choice(DOMAINS)
                if extra not in domains:
                    domains.append(extra)
        else:
            # A very large namespace: number the domain (orders2-api, ...).
            if len(domains) >= len(DOMAINS):
                self.exhausted.add(ns.name)
            k = self.suffix.get((ns.name, domain, role), 2)
            while f"{domain}{k}-{role}" in used:
                k += 1
            self.suffix[(ns.name, domain, role)] = k + 1
            name = f"{domain}{k}-{role}"
        used.add(name)
        if role in IMAGES:
            version = rng.choice(DATA_VERSIONS[role])
        else:
            version = f"v{rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        canary = None
        if tier != "data" and replicas >= 3 and rng.random() < 0.15:
            major, minor, patch = version[1:].split(".")
            canary = f"v{major}.{int(minor) + 1}.0"
        sa = name if rng.random() < 0.8 else "default"
        return App(name, tier, role, list(ports), sa, replicas, version, canary)

    def fill_namespace(self, ns: Ns, count: int):
        rng = self.rng
        used: set = set()
        word = ns.name.split("-")[1]
        domains = [word.rstrip("0123456789") or word]
        for _ in range(rng.randint(1, 4)):
            d = rng.choice(DOMAINS)
            if d not in domains:
                domains.append(d)
        left = count
        while left > 0:
            if self.ppw == 1:
                r = wchoice(rng, [1, 2, 3, 4, 5, 6], [30, 30, 20, 10, 5, 5])
            else:
                r = self.ppw
            r = min(r, left)
            ns.apps.append(self.new_app(ns, used, domains, r))
            left -= r

    def assign_ips(self):
        n = len(self.namespaces)
        per_ns = max((sum(a.replicas for a in ns.apps) for ns in self.namespaces), default=0)
        structured = n <= 256 and per_ns <= 256 * 254
        counter = 0
        for ns in self.namespaces:
            k = 0
            for app in ns.apps:
                for i in range(app.replicas):
                    if structured:
                        ip = f"10.{ns.index}.{k // 254}.{k % 254 + 1}"
                    else:
                        ip = (f"10.{counter // (256 * 254)}.{(counter // 254) % 256}."
                              f"{counter % 254 + 1}")
                    canary = app.canary_version is not None and i == app.replicas - 1
                    version = app.canary_version if canary else app.version
                    app.pods.append((f"{app.name}-{i}", ip, version, canary))
                    k += 1
                    counter += 1

    # -- manifests ---------------------------------------------------------
    def namespace_docs(self):
        docs = []
        for ns in self.namespaces:
            labels = {"team": ns.team, "env": ns.env}
            labels.update(ns.extra_labels)
            if self.args.authz > 0 and ns.kind != "system":
                labels["istio-injection"] = "enabled"
            docs.append({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": ns.name, "labels": labels}})
        return docs

    def container(self, ns: Ns, app: App, version: str) -> dict:
        if app.role in IMAGES:
            image = IMAGES[app.role].format(v=version)
        elif app.role == "coredns":
            image = f"registry.k8s.io/coredns/coredns:{version}"
        elif app.role == "prometheus":
            image = f"quay.io/prometheus/prometheus:{version}"
        else:
            image = f"ghcr.io/acme-{ns.team}/{app.name}:{version}"
        c = {"name": app.name if app.role != "coredns" else "coredns", "image": image,
             "ports": [{"name": p[0], "containerPort": p[1], "protocol": p[2]}
                       for p in app.ports]}
        probe_port = next((p[0] for p in app.ports if p[0] in ("http", "web", "https")), None)
        if probe_port:
            c["readinessProbe"] = {"httpGet": {"path": "/ready", "port": probe_port},
                                   "periodSeconds": 10}
        c["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"memory": "256Mi"}}
        return c

    def pod_labels(self, ns: Ns, app: App, version: str, canary: bool) -> dict:
        if app.role == "coredns":
            return {"k8s-app": "kube-dns"}
        labels = {"app": app.name, "tier": app.tier, "version": version}
        if canary:
            labels["track"] = "canary"
        return labels

    def annotations(self, app: App) -> dict:
        metrics = next((p for p in app.ports if p[0] == "metrics"), None)
        if metrics:
            return {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics[1])}
        return {}

    def workload_docs(self, ns: Ns) -> list:
        docs = []
        sas, seen = [], set()
        for app in ns.apps:
            if app.sa != "default" and app.sa not in seen:
                seen.add(app.sa)
                sas.append(app.sa)
        for sa in sas:
            docs.append({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": sa, "namespace": ns.name}})
        for app in ns.apps:
            ann = self.annotations(app)
            if self.ppw == 1:
                for name, ip, version, canary in app.pods:
                    meta = {"name": name, "namespace": ns.name,
                            "labels": self.pod_labels(ns, app, version, canary)}
                    if ann:
                        meta["annotations"] = ann
                    docs.append({
                        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
                        "spec": {"serviceAccountName": app.sa,
                                 "containers": [self.container(ns, app, version)]},
                        "status": {"phase": "Running", "podIP": ip,
                                   "podIPs": [{"ip": ip}]},
                    })
            else:
                labels = self.pod_labels(ns, app, app.version, False)
                selector = dict(labels)
                selector.pop("version", None)
                tmeta = {"labels": labels}
                if ann:
                    tmeta["annotations"] = ann
                docs.append({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": app.name, "namespace": ns.name,
                                 "labels": dict(selector)},
                    "spec": {"replicas": app.replicas,
                             "selector": {"matchLabels": selector},
                             "template": {"metadata": tmeta,
                                          "spec": {"serviceAccountName": app.sa,
                                                   "containers": [self.container(ns, app, app.version)]}}},
                })
        return docs


# ---------------------------------------------------------------------------
# NetworkPolicies.

UPSTREAM = {"frontend": ["frontend"], "backend": ["frontend", "backend"], "data": ["backend"]}
DOWNSTREAM = {"frontend": ["backend"], "backend": ["data", "backend"], "data": ["data"]}


def np_doc(ns: Ns, name: str, pod_selector: dict, types, ingress=None, egress=None) -> dict:
    spec = {"podSelector": pod_selector}
    if types is not None:
        spec["policyTypes"] = types
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns.name}, "spec": spec}


def ml(**kv) -> dict:
    return {"matchLabels": kv}


def ns_by_name(name: str) -> dict:
    return {"matchLabels": {NS_NAME_LABEL: name}}


class PolicyGen:
    KINDS = ["app-ingress", "app-ingress-xns", "app-egress", "egress-internet",
             "egress-cidr", "tier-expr", "prometheus", "endport", "same-namespace",
             "app-isolate", "ingress-and-egress"]
    WEIGHTS = [25, 15, 15, 8, 4, 10, 5, 6, 3, 3, 8]

    def __init__(self, cluster: Cluster, rng: random.Random):
        self.c = cluster
        self.rng = rng
        self.by_ns: dict[str, list] = {ns.name: [] for ns in cluster.namespaces}
        self.names: dict[str, set] = {ns.name: set() for ns in cluster.namespaces}
        self.has_monitoring = any(ns.kind == "monitoring" for ns in cluster.namespaces)
        self.total = 0

    def add(self, ns: Ns, name: str, *a, **kw):
        names = self.names[ns.name]
        base, k = name, 2
        while name in names:
            name = f"{base}-{k}"
            k += 1
        names.add(name)
        self.by_ns[ns.name].append(np_doc(ns, name, *a, **kw))
        self.total += 1

    # -- pieces ------------------------------------------------------------
    def ports_of(self, app: App, numeric_bias=0.5) -> list:
        rng = self.rng
        chosen = app.ports if len(app.ports) == 1 or rng.random() < 0.4 else [app.ports[0]]
        out = []
        for name, number, proto in chosen:
            entry = {}
            if proto != "TCP" or rng.random() < 0.85:
                entry["protocol"] = proto
            entry["port"] = number if rng.random() < numeric_bias else name
            out.append(entry)
        return out

    def target(self, ns: Ns) -> App:
        return self.rng.choice(ns.apps)

    def same_ns_peer_app(self, ns: Ns, app: App, relation: dict):
        tiers = relation[app.tier]
        cands = [a for a in ns.apps if a is not app and a.tier in tiers]
        return self.rng.choice(cands) if cands else None

    def other_ns(self, ns: Ns):
        rng = self.rng
        others = [o for o in self.c.app_namespaces if o is not ns and o.apps]
        if not others:
            return None
        same_team = [o for o in others if o.team == ns.team]
        if same_team and rng.random() < 0.5:
            return rng.choice(same_team)
        return rng.choice(others)

    def xns_peer(self, src: Ns, other: Ns, app: App) -> dict:
        rng = self.rng
        form = rng.randrange(6)
        if form == 0:
            return {"namespaceSelector": ns_by_name(other.name),
                    "podSelector": ml(app=app.name)}
        if form == 1:
            return {"namespaceSelector": ml(team=other.team, env=other.env),
                    "podSelector": ml(app=app.name)}
        if form == 2:
            return {"namespaceSelector": ml(team=other.team)}
        if form == 3:
            return {"namespaceSelector": {"matchExpressions": [
                        {"key": "env", "operator": "In", "values": ["staging", "prod"]}]},
                    "podSelector": ml(tier=app.tier)}
        if form == 4:
            names = sorted({app.name, rng.choice(other.apps).name})
            return {"namespaceSelector": ml(env=other.env),
                    "podSelector": {"matchExpressions": [
                        {"key": "app", "operator": "In", "values": names}]}}
        return {"namespaceSelector": {"matchLabels": {"team": other.team},
                                      "matchExpressions": [
                                          {"key": "env", "operator": "NotIn",
                                           "values": ["dev"]}]},
                "podSelector": {"matchLabels": {"app": app.name},
                                "matchExpressions": [
                                    {"key": "track", "operator": "DoesNotExist"}]}}

    def app_selector(self, app: App) -> dict:
        if self.rng.random() < 0.2:
            return ml(app=app.name, tier=app.tier)
        return ml(app=app.name)

    def types(self, *t):
        # Sometimes leave policyTypes to its default (valid when it is
        # Ingress only, or Ingress+Egress with egress rules present).
        if list(t) == ["Ingress"] and self.rng.random() < 0.15:
            return None
        return list(t)

    # -- base policies -----------------------------------------------------
    def base(self) -> list:
        """(priority, ns, maker) of the per-namespace baseline."""
        out = []
        for ns in self.c.app_namespaces:
            if ns.deny == "full":
                out.append((0, ns, self.default_deny))
                out.append((1, ns, self.dns))
            elif ns.deny == "ingress":
                out.append((0, ns, self.default_deny_ingress))
        out.sort(key=lambda x: x[0])
        return out

    def default_deny(self, ns: Ns):
        self.add(ns, "default-deny", {}, ["Ingress", "Egress"])

    def default_deny_ingress(self, ns: Ns):
        self.add(ns, "default-deny-ingress", {}, ["Ingress"])

    def dns(self, ns: Ns):
        self.add(ns, "allow-dns-egress", {}, ["Egress"], egress=[{
            "to": [{"namespaceSelector": ns_by_name("kube-system"),
                    "podSelector": ml(**{"k8s-app": "kube-dns"})}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }])

    # -- fill --------------------------------------------------------------
    def one(self, ns: Ns):
        rng = self.rng
        if not ns.apps:
            return self.generic(ns)
        kind = wchoice(rng, self.KINDS, self.WEIGHTS)
        getattr(self, "k_" + kind.replace("-", "_"))(ns)

    def generic(self, ns: Ns):
        if self.rng.random() < 0.5:
            self.add(ns, "allow-same-namespace", {}, ["Ingress"],
                     ingress=[{"from": [{"podSelector": {}}]}])
        else:
            self.k_egress_internet(ns, selector={})

    def k_app_ingress(self, ns: Ns):
        rng = self.rng
        t = self.target(ns)
        if t.tier == "frontend" and rng.random() < 0.6:
            # Internet-facing: any source on the serving port.
            self.add(ns, f"{t.name}-allow-ingress", self.app_selector(t), self.types("Ingress"),
                     ingress=[{"ports": self.ports_of(t)}])
            return
        caller = self.same_ns_peer_app(ns, t, UPSTREAM)
        if caller is None:
            if t.tier == "frontend":
                # Behind the cloud load balancer.
                peers = [{"ipBlock": {"cidr": "192.168.0.0/16"}}]
            else:
                peers = [{"podSelector": ml(tier=rng.choice(UPSTREAM[t.tier]))}]
        elif rng.random() < 0.25:
            peers = [{"podSelector": ml(tier=caller.tier)}]
        else:
            peers = [{"podSelector": ml(app=caller.name)}]
            extra = self.same_ns_peer_app(ns, t, UPSTREAM)
            if extra is not None and extra is not caller and rng.random() < 0.3:
                peers.append({"podSelector": ml(app=extra.name)})
        rule = {"from": peers}
        if rng.random() < 0.9:
            rule["ports"] = self.ports_of(t)
        self.add(ns, f"{t.name}-allow-ingress", self.app_selector(t), self.types("Ingress"),
                 ingress=[rule])

    def k_app_ingress_xns(self, ns: Ns):
        rng = self.rng
        t = self.target(ns)
        other = self.other_ns(ns)
        if other is None:
            return self.k_app_ingress(ns)
        caller = self.same_ns_peer_app(other, t, UPSTREAM) or rng.choice(other.apps)
        peers = [self.xns_peer(ns, other, caller)]
        if rng.random() < 0.2:
            # A same-namespace peer next to it.
            local = self.same_ns_peer_app(ns, t, UPSTREAM)
            if local is not None:
                peers.append({"podSelector": ml(app=local.name)})
        self.add(ns, f"{t.name}-allow-from-{other.name}", self.app_selector(t),
                 self.types("Ingress"), ingress=[{"from": peers, "ports": self.ports_of(t)}])

    def k_app_egress(self, ns: Ns):
        rng = self.rng
        t = self.target(ns)
        rules = []
        for _ in range(rng.choice([1, 1, 2])):
            if rng.random() < 0.65:
                dep = self.same_ns_peer_app(ns, t, DOWNSTREAM)
                if dep is None:
                    continue
                rules.append({"to": [{"podSelector": ml(app=dep.name)}],
                              "ports": self.ports_of(dep)})
            else:
                other = self.other_ns(ns)
                if other is None:
                    continue
                dep = self.same_ns_peer_app(other, t, DOWNSTREAM) or rng.choice(other.apps)
                rules.append({"to": [self.xns_peer(ns, other, dep)],
                              "ports": self.ports_of(dep)})
        if not rules:
            return self.k_egress_internet(ns)
        self.add(ns, f"{t.name}-allow-egress", self.app_selector(t), ["Egress"], egress=rules)

    def k_egress_internet(self, ns: Ns, selector=None):
        rng = self.rng
        if selector is None:
            outward = [a for a in ns.apps if a.tier != "data"]
            t = rng.choice(outward or ns.apps) if ns.apps else None
            selector = self.app_selector(t) if t else {}
            name = f"{t.name}-allow-egress-internet" if t else "allow-egress-internet"
        else:
            name = "allow-egress-internet"
        excepts = ["10.0.0.0/8"]
        if rng.random() < 0.3:
            excepts += ["172.16.0.0/12", "192.168.0.0/16"]
        if rng.random() < 0.15:
            excepts.append("169.254.169.254/32")
        ports = [{"protocol": "TCP", "port": 443}]
        if rng.random() < 0.25:
            ports.append({"protocol": "TCP", "port": 80})
        self.add(ns, name, selector, ["Egress"],
                 egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": excepts}}],
                          "ports": ports}])

    def k_egress_cidr(self, ns: Ns):
        rng = self.rng
        t = self.target(ns)
        cidr, exc = rng.choice(EXTERNAL_CIDRS)
        block = {"cidr": cidr}
        if exc:
            block["except"] = list(exc)
        form = rng.randrange(4)
        if form == 0:
            ports = [{"protocol": "TCP", "port": 443}]
        elif form == 1:
            ports = [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 6379}]
        elif form == 2:
            ports = [{"protocol": "UDP", "port": 10000, "endPort": 20000}]
        else:
            ports = [{"protocol": "SCTP", "port": 3868}]
        self.add(ns, f"{t.name}-allow-egress-partner", self.app_selector(t), ["Egress"],
                 egress=[{"to": [{"ipBlock": block}], "ports": ports}])

    def k_tier_expr(self, ns: Ns):
        rng = self.rng
        form = rng.randrange(5)
        if form == 0:
            self.add(ns, "allow-backend-from-frontend", ml(tier="backend"), self.types("Ingress"),
                     ingress=[{"from": [{"podSelector": {"matchExpressions": [
                         {"key": "tier", "operator": "In", "values": ["frontend", "backend"]}]}}],
                         "ports": [{"protocol": "TCP", "port": "http"}]}])
        elif form == 1:
            self.add(ns, "allow-data-from-backend", ml(tier="data"), self.types("Ingress"),
                     ingress=[{"from": [{"podSelector": ml(tier="backend")}],
                               "ports": [{"protocol": "TCP", "port": 5432},
                                         {"protocol": "TCP", "port": 6379}]}])
        elif form == 2:
            t = self.target(ns)
            self.add(ns, f"allow-all-but-{t.name}",
                     {"matchExpressions": [{"key": "app", "operator": "NotIn",
                                            "values": [t.name]}]},
                     self.types("Ingress"),
                     ingress=[{"from": [{"namespaceSelector": {"matchExpressions": [
                         {"key": "env", "operator": "NotIn", "values": ["dev"]}]}}],
                         "ports": [{"protocol": "TCP", "port": 8080}]}])
        elif form == 3:
            self.add(ns, "allow-versioned-from-team",
                     {"matchExpressions": [{"key": "version", "operator": "Exists"}]},
                     self.types("Ingress"),
                     ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": ns.team},
                                                               "matchExpressions": [
                                                                   {"key": "env", "operator": "In",
                                                                    "values": [ns.env]}]},
                                         "podSelector": {"matchExpressions": [
                                             {"key": "tier", "operator": "Exists"}]}}]}])
        else:
            self.add(ns, "canary-allow-egress-stable-data",
                     {"matchLabels": {"track": "canary"}}, ["Egress"],
                     egress=[{"to": [{"podSelector": {"matchExpressions": [
                         {"key": "tier", "operator": "In", "values": ["data"]},
                         {"key": "track", "operator": "DoesNotExist"}]}}]}])

    def k_prometheus(self, ns: Ns):
        rng = self.rng
        if not self.has_monitoring:
            return self.k_app_ingress(ns)
        peer = {"namespaceSelector": ns_by_name("monitoring"),
                "podSelector": ml(app="prometheus")}
        if rng.random() < 0.3:
            peer = {"namespaceSelector": ml(team="platform"),
                    "podSelector": ml(app="prometheus")}
        if rng.random() < 0.5:
            ports = [{"protocol": "TCP", "port": "metrics"}]
        else:
            ports = [{"protocol": "TCP", "port": 9090, "endPort": 9100}]
        if rng.random() < 0.5:
            sel = {}
            name = "allow-prometheus-scrape"
        else:
            scraped = sorted({a.name for a in ns.apps if any(p[0] == "metrics" for p in a.ports)})
            if not scraped:
                scraped = [self.target(ns).name]
            sel = {"matchExpressions": [{"key": "app", "operator": "In", "values": scraped[:6]}]}
            name = "allow-prometheus-scrape-apps"
        self.add(ns, name, sel, self.types("Ingress"), ingress=[{"from": [peer], "ports": ports}])

    def k_endport(self, ns: Ns):
        rng = self.rng
        t = self.target(ns)
        form = rng.randrange(3)
        if form == 0:
            other = self.other_ns(ns) or ns
            self.add(ns, f"{t.name}-allow-egress-backends", self.app_selector(t), ["Egress"],
                     egress=[{"to": [{"namespaceSelector": ml(team=other.team),
                                      "podSelector": ml(tier="backend")}],
                              "ports": [{"protocol": "TCP", "port": 8080, "endPort": 8089}]}])
        elif form == 1:
            self.add(ns, f"{t.name}-allow-ingress-range", self.app_selector(t),
                     self.types("Ingress"),
                     ingress=[{"from": [{"podSelector": {}}],
                               "ports": [{"protocol": "TCP", "port": 8000, "endPort": 8999},
                                         {"protocol": "TCP", "port": 9090}]}])
        else:
            self.add(ns, f"{t.name}-allow-egress-nodeports", self.app_selector(t), ["Egress"],
                     egress=[{"to": [{"ipBlock": {"cidr": "192.168.0.0/16",
                                                  "except": ["192.168.255.0/24"]}}],
                              "ports": [{"protocol": "TCP", "port": 30000, "endPort": 32767}]}])

    def k_same_namespace(self, ns: Ns):
        self.add(ns, "allow-same-namespace", {}, self.types("Ingress"),
                 ingress=[{"from": [{"podSelector": {}}]}])

    def k_app_isolate(self, ns: Ns):
        t = self.target(ns)
        self.add(ns, f"{t.name}-deny-egress", self.app_selector(t), ["Egress"])

    def k_ingress_and_egress(self, ns: Ns):
        rng = self.rng
        t = self.target(ns)
        caller = self.same_ns_peer_app(ns, t, UPSTREAM)
        dep = self.same_ns_peer_app(ns, t, DOWNSTREAM)
        ingress = [{"from": [{"podSelector": ml(app=caller.name) if caller else {}}],
                    "ports": self.ports_of(t)}]
        if dep is not None:
            egress = [{"to": [{"podSelector": ml(app=dep.name)}], "ports": self.ports_of(dep)}]
        else:
            egress = [{"to": [{"ipBlock": {"cidr": f"10.{rng.randrange(256)}.0.0/16"}}],
                       "ports": [{"protocol": "TCP", "port": 8080}]}]
        # policyTypes omitted: Ingress, plus Egress since egress rules exist.
        types = None if rng.random() < 0.3 else ["Ingress", "Egress"]
        self.add(ns, f"{t.name}-policy", self.app_selector(t), types,
                 ingress=ingress, egress=egress)

    # -- driver ------------------------------------------------------------
    def generate(self, total: int):
        rng = self.rng
        for _, ns, maker in self.base()[:total]:
            maker(ns)
        targets = [ns for ns in self.c.app_namespaces if ns.apps] or self.c.app_namespaces
        if not targets:
            targets = [ns for ns in self.c.namespaces if ns.kind != "system"] or self.c.namespaces
        weights = [max(1, len(ns.apps)) for ns in targets]
        while self.total < total:
            self.one(wchoice(rng, targets, weights))


# ---------------------------------------------------------------------------


class IstioGen:
    """AuthorizationPolicies, as a mesh repository holds them."""

    def __init__(self, cluster: Cluster, rng: random.Random):
        self.c = cluster
        self.rng = rng
        self.by_ns: dict[str, list] = {ns.name: [] for ns in cluster.namespaces}
        self.names: set = set()
        self.total = 0

    def add(self, ns: Ns, name: str, spec: dict):
        base, k = name, 2
        while (ns.name, name) in self.names:
            name = f"{base}-{k}"
            k += 1
        self.names.add((ns.name, name))
        self.by_ns[ns.name].append({
            "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": ns.name}, "spec": spec})
        self.total += 1

    @staticmethod
    def principal(ns: Ns, app: App) -> str:
        return f"cluster.local/ns/{ns.name}/sa/{app.sa}"

    def one(self, ns: Ns):
        rng = self.rng
        app = rng.choice(ns.apps)
        kind = wchoice(rng, ["allow-callers", "allow-l7", "allow-monitoring", "deny-dev"],
                       [55, 20, 15, 10])
        selector = {"matchLabels": {"app": app.name}}
        ports = [str(p[1]) for p in app.ports if p[2] == "TCP"] or ["8080"]
        if kind in ("allow-callers", "allow-l7"):
            callers = [a for a in ns.apps if a.tier in UPSTREAM[app.tier] and a is not app]
            callers = rng.sample(callers, min(len(callers), rng.randint(1, 3))) or [app]
            to = {"operation": {"ports": ports}}
            if kind == "allow-l7":
                to["operation"]["methods"] = rng.choice([["GET"], ["GET", "POST"]])
                to["operation"]["paths"] = [rng.choice(["/api/*", "/v1/*", "/healthz"])]
            rule = {"from": [{"source": {"principals": sorted(
                {self.principal(ns, a) for a in callers})}}], "to": [to]}
            self.add(ns, f"{app.name}-{kind}", {"selector": selector, "action": "ALLOW",
                                                 "rules": [rule]})
        elif kind == "allow-monitoring":
            self.add(ns, "allow-monitoring", {"action": "ALLOW", "rules": [{
                "from": [{"source": {"namespaces": ["monitoring"]}}],
                "to": [{"operation": {"ports": ["9090"]}}]}]})
        else:
            if ns.env != "prod":
                return self.one(ns) if rng.random() < 0.9 else None
            dev = sorted({n.name for n in self.c.app_namespaces
                          if n.env == "dev" and n.team == ns.team})[:5]
            if not dev:
                return None
            self.add(ns, f"{app.name}-deny-dev", {"selector": selector, "action": "DENY",
                                                  "rules": [{"from": [{"source": {
                                                      "namespaces": dev}}]}]})

    def generate(self, total: int):
        targets = [ns for ns in self.c.app_namespaces if ns.apps]
        if not targets:
            return
        weights = [len(ns.apps) for ns in targets]
        guard = 0
        while self.total < total and guard < total * 20:
            guard += 1
            self.one(wchoice(self.rng, targets, weights))


class AdminGen:
    """ClusterNetworkPolicies (policy.networking.k8s.io/v1alpha2)."""

    def __init__(self, cluster: Cluster, rng: random.Random):
        self.c = cluster
        self.rng = rng
        self.docs: list = []

    def add(self, name: str, spec: dict):
        self.docs.append({"apiVersion": "policy.networking.k8s.io/v1alpha2",
                          "kind": "ClusterNetworkPolicy", "metadata": {"name": name},
                          "spec": spec})

    def generate(self, total: int):
        rng = self.rng
        fixed = [
            ("deny-cloud-metadata", {"tier": "Admin", "priority": 10,
                                     "subject": {"namespaces": {}},
                                     "egress": [{"name": "metadata", "action": "Deny",
                                                 "to": [{"networks": ["169.254.169.254/32"]}]}]}),
            ("accept-prometheus", {"tier": "Admin", "priority": 20,
                                   "subject": {"namespaces": {}},
                                   "ingress": [{"name": "scrape", "action": "Accept",
                                                "from": [{"namespaces": {"matchLabels": {
                                                    NS_NAME_LABEL: "monitoring"}}}],
                                                "protocols": [{"tcp": {"destinationPort": {
                                                    "range": {"start": 9090, "end": 9100}}}}]}]}),
            ("pass-dns", {"tier": "Admin", "priority": 30,
                          "subject": {"namespaces": {}},
                          "egress": [{"name": "dns", "action": "Pass",
                                      "to": [{"namespaces": {"matchLabels": {
                                          NS_NAME_LABEL: "kube-system"}}}],
                                      "protocols": [{"udp": {"destinationPort": {"number": 53}}},
                                                    {"tcp": {"destinationPort": {"number": 53}}}]}]}),
            ("baseline-deny-dev-to-prod", {"tier": "Baseline", "priority": 10,
                                           "subject": {"namespaces": {"matchLabels": {"env": "prod"}}},
                                           "ingress": [{"name": "from-dev", "action": "Deny",
                                                        "from": [{"namespaces": {"matchLabels": {
                                                            "env": "dev"}}}]}]}),
        ]
        for name, spec in fixed[:total]:
            self.add(name, spec)
        teams = sorted({ns.team for ns in self.c.app_namespaces})
        k = 0
        while len(self.docs) < total and teams:
            k += 1
            team = rng.choice(teams)
            other = rng.choice(teams)
            action = wchoice(rng, ["Deny", "Pass", "Accept"], [4, 4, 2])
            port = rng.choice([5432, 6379, 8080, 8443])
            self.add(f"team-{team}-{k}", {
                "tier": "Admin", "priority": rng.randint(100, 900),
                "subject": {"namespaces": {"matchLabels": {"team": team}}},
                "ingress": [{"name": f"from-{other}", "action": action,
                             "from": [{"namespaces": {"matchLabels": {"team": other, "env": rng.choice(ENVS)}}}],
                             "protocols": [{"tcp": {"destinationPort": {"number": port}}}]}]})


def revise(gen: "PolicyGen", count: int, rng: random.Random) -> int:
    """`count` edits of the NetworkPolicies: what a pull request changes."""
    docs = [d for ns in sorted(gen.by_ns) for d in gen.by_ns[ns]]
    with_ingress = [d for d in docs if d["spec"].get("ingress")]
    done = 0
    for _ in range(count):
        if not with_ingress:
            break
        d = rng.choice(with_ingress)
        rules = d["spec"]["ingress"]
        edit = rng.choice(["open-port", "drop-rule", "relabel"])
        if edit == "open-port" and rules[0].get("ports"):
            rules[0]["ports"] = rules[0]["ports"] + [{"protocol": "TCP",
                                                      "port": rng.choice([22, 3306, 9000, 15000])}]
        elif edit == "drop-rule" and len(rules) > 1:
            rules.pop()
        else:
            rules.append({"from": [{"namespaceSelector": {"matchLabels": {
                "team": rng.choice(TEAMS)}}}], "ports": [{"protocol": "TCP", "port": 8080}]})
        done += 1
    return done


def clean(out: str):
    p = os.path.join(out, "namespaces.yaml")
    if os.path.isfile(p):
        os.remove(p)
    for sub in ("workloads", "policies", "istio", "cluster"):
        d = os.path.join(out, sub)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.endswith(".yaml") and os.path.isfile(os.path.join(d, f)):
                    os.remove(os.path.join(d, f))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--policies", type=int, default=300)
    ap.add_argument("--namespaces", type=int, default=None)
    ap.add_argument("--pods-per-workload", type=int, default=1)
    ap.add_argument("--authz", type=int, default=0)
    ap.add_argument("--admin", type=int, default=0)
    ap.add_argument("--default-deny", type=float, default=0.8)
    ap.add_argument("--revision", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.namespaces is None:
        args.namespaces = max(2, args.pods // 50)
    if min(args.pods, args.policies, args.authz, args.admin, args.revision) < 0:
        ap.error("--pods, --policies, --authz, --admin and --revision must be >= 0")
    if not 0 <= args.default_deny <= 1:
        ap.error("--default-deny must be between 0 and 1")
    if args.namespaces < 2:
        ap.error("--namespaces must be >= 2 (kube-system and at least one more)")
    if args.pods_per_workload < 1:
        ap.error("--pods-per-workload must be >= 1")
    if args.namespaces > 100000:
        ap.error("--namespaces is too large")

    start = time.perf_counter()
    cluster = Cluster(args)
    gen = PolicyGen(cluster, random.Random(args.seed * 7919 + 17))
    gen.generate(args.policies)
    edits = revise(gen, args.revision, random.Random(args.seed * 31 + args.revision))
    istio = IstioGen(cluster, random.Random(args.seed * 104729 + 3))
    istio.generate(args.authz)
    admin = AdminGen(cluster, random.Random(args.seed * 15485863 + 5))
    admin.generate(args.admin)

    os.makedirs(os.path.join(args.out, "workloads"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "policies"), exist_ok=True)
    clean(args.out)
    params = (f"--pods {args.pods} --policies {args.policies} --namespaces {args.namespaces} "
              f"--pods-per-workload {args.pods_per_workload} --seed {args.seed}")
    if args.default_deny != 0.8:
        params += f" --default-deny {args.default_deny:g}"
    for flag in ("authz", "admin", "revision"):
        if getattr(args, flag):
            params += f" --{flag} {getattr(args, flag)}"
    banner = f"# Generated by bench/gen_cluster.py {params}. Do not edit.\n"
    files = 0
    write_docs(os.path.join(args.out, "namespaces.yaml"), banner, cluster.namespace_docs())
    files += 1
    workload_objects = 0
    for ns in cluster.namespaces:
        docs = cluster.workload_docs(ns)
        if docs:
            header = banner + f"# Workloads of namespace {ns.name} (team {ns.team}, env {ns.env}).\n"
            write_docs(os.path.join(args.out, "workloads", f"{ns.name}.yaml"), header, docs)
            files += 1
            workload_objects += sum(1 for d in docs if d["kind"] in ("Pod", "Deployment"))
        pols = gen.by_ns[ns.name]
        if pols:
            header = banner + f"# NetworkPolicies of namespace {ns.name} (baseline: {ns.deny}).\n"
            write_docs(os.path.join(args.out, "policies", f"{ns.name}.yaml"), header, pols)
            files += 1
        if istio.by_ns[ns.name]:
            os.makedirs(os.path.join(args.out, "istio"), exist_ok=True)
            header = banner + f"# AuthorizationPolicies of namespace {ns.name}.\n"
            write_docs(os.path.join(args.out, "istio", f"{ns.name}.yaml"), header,
                       istio.by_ns[ns.name])
            files += 1
    if admin.docs:
        os.makedirs(os.path.join(args.out, "cluster"), exist_ok=True)
        write_docs(os.path.join(args.out, "cluster", "admin.yaml"),
                   banner + "# ClusterNetworkPolicies.\n", admin.docs)
        files += 1
    pods = sum(a.replicas for ns in cluster.namespaces for a in ns.apps)
    kind = "Pod" if args.pods_per_workload == 1 else "Deployment"
    elapsed = time.perf_counter() - start
    print(f"gen_cluster: {len(cluster.namespaces)} namespaces, {pods} pods "
          f"({workload_objects} {kind} objects), {gen.total} policies, "
          f"{istio.total} AuthorizationPolicies, {len(admin.docs)} ClusterNetworkPolicies, "
          f"{edits} edits, {files} files "
          f"in {args.out} ({elapsed:.2f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
