#!/usr/bin/env python3
"""Parse network-config-analyzer (NCA 2.1.0) connectivity output, format txt_no_fw_rules
(used by bench/vs-nca).

Produce it with (NB: -f APPENDS to an existing file, so delete it first):

    rm -f out.txt
    nca --connectivity -r DIR --output_endpoints pods -o txt_no_fw_rules -f out.txt

Line grammar (one line per (src, dst, cube), sorted; no trailing newline):

    SRC => DST : CONN
    SRC/DST  pod:        <ns>/<pod>
             workload:   <ns>/<name>[Deployment] | <ns>/<name>[Pod] | ...[ReplicaSet] ...
                         (with --output_endpoints deployments)
             IP range:   a.b.c.d-e.f.g.h   (always a range, never a CIDR, in this format)
    CONN     All connections | No connections | {cube},{cube}... | All but {cube},...
    cube     {key:value,key:value}  keys: protocols, dst_ports, src_ports, methods, paths,
             hosts, icmp_type, icmp_code.  Missing key = every value.
             protocols: "TCP" | "TCP, UDP" (", " separated) | "all but TCP, UDP"
             dst_ports: "53" | "80,443" | "10000-20000" | "6379,9090-9100"

When the config contains Istio policies the output has two sections,
"TCP Connections:" and "non-TCP Connections:".  Inside a section the protocols
key is omitted when it equals the whole section (TCP only / every protocol but
TCP), and "All connections" means "everything in this section".  The same pair
may then appear once per section; this parser merges them.

Result of parse_nca():
    {(src, dst): ALL}                                   every protocol, every port
    {(src, dst): {proto: ALL | frozenset{(lo, hi)}}}    otherwise
proto is "TCP", "UDP", "SCTP", or "OTHER" (every one of the other 253 IP protocols,
all ports; only when they are all fully allowed), else individual NCA protocol
names.  Ports are 1..65535 inclusive; ALL means 1-65535.

L7 restrictions (Istio methods/paths/hosts) and src_ports / icmp dims cannot be
expressed as (proto, port) facts: with l7="include" (default) their cubes count as
allowing their ports (over-approximation), with l7="exclude" they are dropped;
either way the raw cube strings are collected in the second return value of
parse_nca_full().
"""
from __future__ import annotations

import re
import sys

ALL = "ALL"
PORT_MIN, PORT_MAX = 1, 65535
FULL_PORTS = ((PORT_MIN, PORT_MAX),)
ALL_PROTOS = frozenset(range(256))
TCP, UDP, SCTP = 6, 17, 132
K8S_PROTOS = {TCP: "TCP", UDP: "UDP", SCTP: "SCTP"}

_NAME_TO_NUM = {"HOPOPT": 0, "ICMP": 1, "IGMP": 2, "TCP": 6, "UDP": 17, "GRE": 47,
                "ESP": 50, "AH": 51, "ICMPv6": 58, "SCTP": 132}
try:  # use NCA's full table when nca is importable
    from nca.CoreDS.ProtocolNameResolver import ProtocolNameResolver as _PNR
    _NAME_TO_NUM.update(_PNR._protocol_name_to_number_dict)
except Exception:  # pragma: no cover
    pass
_NUM_TO_NAME = {v: k for k, v in _NAME_TO_NUM.items()}

_KEYS = ("src_ports", "dst_ports", "protocols", "methods", "paths", "hosts",
         "icmp_type", "icmp_code")
_KEY_SPLIT = re.compile(r",(?=(?:%s):)" % "|".join(_KEYS))
_CUBE = re.compile(r"\{([^{}]*)\}")
_L7_KEYS = {"methods", "paths", "hosts", "src_ports", "icmp_type", "icmp_code"}


# ---- interval helpers (sorted tuples of disjoint, non-adjacent (lo, hi)) ----
def _norm(ivs):
    out = []
    for lo, hi in sorted(ivs):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _union(a, b):
    return _norm(list(a) + list(b))


def _subtract(a, b):
    out = []
    for lo, hi in a:
        cur = lo
        for blo, bhi in b:
            if bhi < cur or blo > hi:
                continue
            if blo > cur:
                out.append((cur, blo - 1))
            cur = max(cur, bhi + 1)
            if cur > hi:
                break
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def _parse_ports(s):
    ivs = []
    for part in s.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            ivs.append((int(lo), int(hi)))
        else:
            ivs.append((int(part), int(part)))
    return _norm(ivs)


def _proto_num(name):
    name = name.strip()
    if name.isdigit():
        return int(name)
    return _NAME_TO_NUM[name]


def _parse_protocols(s):
    s = s.strip()
    if s == "*":
        return set(ALL_PROTOS)
    if s.startswith("all but "):
        return set(ALL_PROTOS) - {_proto_num(n) for n in s[len("all but "):].split(",")}
    return {_proto_num(n) for n in s.split(",")}


# ---- connection sets: {proto_num: port intervals} ----
def _cube_to_conn(body, section_protos, l7, extras):
    fields = {}
    for item in _KEY_SPLIT.split(body):
        k, v = item.split(":", 1)
        fields[k.strip()] = v
    if _L7_KEYS & fields.keys():
        extras.append("{" + body + "}")
        if l7 == "exclude":
            return {}
    protos = _parse_protocols(fields["protocols"]) if "protocols" in fields else set(section_protos)
    protos &= section_protos
    ports = _parse_ports(fields["dst_ports"]) if "dst_ports" in fields else FULL_PORTS
    return {p: ports for p in protos}


def _conn_union(a, b):
    for p, ivs in b.items():
        a[p] = _union(a.get(p, ()), ivs)
    return a


def _parse_conn(conn, section_protos, l7, extras):
    conn = conn.strip()
    full = {p: FULL_PORTS for p in section_protos}
    if conn == "All connections":
        return full
    if conn == "No connections":
        return {}
    negate = conn.startswith("All but ")
    res = {}
    bodies = _CUBE.findall(conn)
    if not bodies:
        raise ValueError(f"cannot parse connection: {conn!r}")
    for body in bodies:
        _conn_union(res, _cube_to_conn(body, section_protos, l7, extras))
    if negate:
        res = {p: _subtract(FULL_PORTS, res.get(p, ())) for p in section_protos}
        res = {p: ivs for p, ivs in res.items() if ivs}
    return res


def _compress(conn):
    """{proto_num: ivs} -> ALL | {name: ALL | frozenset(ivs)}"""
    conn = {p: ivs for p, ivs in conn.items() if ivs}
    if set(conn) == ALL_PROTOS and all(ivs == FULL_PORTS for ivs in conn.values()):
        return ALL
    out = {}
    others = ALL_PROTOS - set(K8S_PROTOS)
    if others <= set(conn) and all(conn[p] == FULL_PORTS for p in others):
        out["OTHER"] = ALL
        conn = {p: v for p, v in conn.items() if p in K8S_PROTOS}
    for p, ivs in sorted(conn.items()):
        out[_NUM_TO_NAME.get(p, str(p))] = ALL if ivs == FULL_PORTS else frozenset(ivs)
    return out


def parse_nca_full(text, l7="include"):
    """Return (conns, extras): conns as described in the module doc, extras
    {(src, dst): [raw cube strings with L7/src_ports/icmp dims]}."""
    section = ALL_PROTOS
    raw = {}
    extras = {}
    for line in text.splitlines():
        line = line.rstrip()
        if line == "TCP Connections:":
            section = frozenset({TCP})
            continue
        if line == "non-TCP Connections:":
            section = ALL_PROTOS - {TCP}
            continue
        if " => " not in line or " : " not in line:
            continue  # blank lines, warnings, "global: ...", etc.
        pair, conn = line.split(" : ", 1)
        src, dst = (x.strip() for x in pair.split(" => ", 1))
        ex = []
        c = _parse_conn(conn, section, l7, ex)
        if ex:
            extras.setdefault((src, dst), []).extend(ex)
        _conn_union(raw.setdefault((src, dst), {}), c)
    conns = {k: _compress(v) for k, v in raw.items()}
    return {k: v for k, v in conns.items() if v}, extras


def parse_nca(text, l7="include"):
    return parse_nca_full(text, l7)[0]


def parse_nca_file(path, l7="include"):
    with open(path) as f:
        return parse_nca(f.read(), l7)


def to_facts(conns, k8s_only=True):
    """Flatten to a set of (src, dst, proto, lo, hi); ALL expands to TCP/UDP/SCTP
    (plus ("OTHER", 1, 65535) unless k8s_only)."""
    facts = set()
    for (src, dst), c in conns.items():
        if c == ALL:
            c = {"TCP": ALL, "UDP": ALL, "SCTP": ALL, "OTHER": ALL}
        for proto, ivs in c.items():
            if k8s_only and proto not in ("TCP", "UDP", "SCTP"):
                continue
            for lo, hi in (FULL_PORTS if ivs == ALL else sorted(ivs)):
                facts.add((src, dst, proto, lo, hi))
    return facts


# ---- self tests -------------------------------------------------------------
def _selftest():
    t = """Warning: Missing named port http in the pod ns/p. Ignoring the pod
global: cluster has 3 unique endpoints, 1 namespaces
0.0.0.0-255.255.255.255 => ns/a-0 : All connections
ns/a-0 => ns/b-0 : {protocols:TCP, UDP,dst_ports:53}
ns/a-0 => ns/c-0 : {protocols:TCP,dst_ports:6379,9090-9100}
ns/b-0 => ns/c-0 : All but {protocols:TCP,dst_ports:80}
ns/c-0 => ns/a-0 : {protocols:all but TCP}
ns/c-0 => ns/b-0 : {protocols:UDP,dst_ports:10000-20000},{protocols:SCTP,dst_ports:3868}"""
    r = parse_nca(t)
    assert r[("0.0.0.0-255.255.255.255", "ns/a-0")] == ALL
    assert r[("ns/a-0", "ns/b-0")] == {"TCP": frozenset({(53, 53)}), "UDP": frozenset({(53, 53)})}
    assert r[("ns/a-0", "ns/c-0")] == {"TCP": frozenset({(6379, 6379), (9090, 9100)})}
    assert r[("ns/b-0", "ns/c-0")] == {"OTHER": ALL, "TCP": frozenset({(1, 79), (81, 65535)}),
                                       "UDP": ALL, "SCTP": ALL}
    assert r[("ns/c-0", "ns/a-0")] == {"OTHER": ALL, "UDP": ALL, "SCTP": ALL}
    assert r[("ns/c-0", "ns/b-0")] == {"UDP": frozenset({(10000, 20000)}),
                                       "SCTP": frozenset({(3868, 3868)})}
    ist = """TCP Connections:
ns/a-0 => ns/b-0 : All connections
ns/a-0 => ns/c-0 : {dst_ports:6379,methods:GET,paths:/info*}
ns/c-0 => ns/b-0 : {dst_ports:53}

non-TCP Connections:
ns/a-0 => ns/b-0 : All connections
ns/c-0 => ns/b-0 : {protocols:UDP,dst_ports:53}"""
    r, ex = parse_nca_full(ist)
    assert r[("ns/a-0", "ns/b-0")] == ALL
    assert r[("ns/a-0", "ns/c-0")] == {"TCP": frozenset({(6379, 6379)})}
    assert ex[("ns/a-0", "ns/c-0")] == ["{dst_ports:6379,methods:GET,paths:/info*}"]
    assert r[("ns/c-0", "ns/b-0")] == {"TCP": frozenset({(53, 53)}), "UDP": frozenset({(53, 53)})}
    assert ("ns/a-0", "ns/c-0") not in parse_nca(ist, l7="exclude")
    print("selftest ok")


if __name__ == "__main__":
    if len(sys.argv) == 1:
        _selftest()
    for path in sys.argv[1:]:
        with open(path) as f:
            conns, extras = parse_nca_full(f.read())
        facts = to_facts(conns)
        print(f"{path}: {len(conns)} pairs, {len(facts)} k8s facts, "
              f"{sum(1 for v in conns.values() if v == ALL)} ALL, {len(extras)} pairs with L7 cubes")
