#!/usr/bin/env bash
# Two ambit agents for the demo cluster, on loopback: node-a (127.0.10.1)
# runs frontend/web, shop/api, shop/cart and monitoring/prometheus;
# node-b (127.0.20.1) runs data/postgres, data/redis, payments/payments and
# kube-system/coredns. Every workload is a small HTTP server on its own
# address; clients go through node-a's outbound proxy (HTTP CONNECT, curl -p -x).
#
#   testdata/agents/demo.sh            # run the walkthrough and stop
#   KEEP=1 testdata/agents/demo.sh     # leave the agents running (Ctrl-C stops)
#
# Needs curl and python3. AMBIT names the binary (default: build it).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${AMBIT:-}" ]; then
  cargo build --quiet --release --bin ambit
  AMBIT=target/release/ambit
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== certificates: one CA, workload certificates issued by each agent"
"$AMBIT" ca init --trust-domain cluster.local --out "$work/ca"

echo "== tables: the demo policies, with the pods' addresses"
"$AMBIT" compile testdata/demo testdata/agents/pods.yaml -o "$work/tables.json"

node_config() { # name address peer-name peer-address peer-cidr workloads...
  local name=$1 addr=$2 peer=$3 peer_addr=$4 peer_cidr=$5 port=$6
  shift 6
  {
    echo "node: $name"
    echo "trustDomain: cluster.local"
    echo "caBundle: ca/ca.pem"
    echo "ca: {cert: ca/ca.pem, key: ca/ca-key.pem}"
    echo "tables: tables.json"
    echo "listen: {inbound: '$addr:15008', outbound: '$addr:15001', admin: '$addr:$port'}"
    echo "accessLog: $name.log"
    echo "workloads:"
    for w in "$@"; do
      IFS=, read -r id ip sa <<<"$w"
      echo "  - {workload: $id, address: $ip, cert: issue, serviceAccount: $sa}"
    done
    echo "peers:"
    echo "  - {node: $peer, address: '$peer_addr:15008', workloads: ['$peer_cidr']}"
  } >"$work/$name.yaml"
}
node_config node-a 127.0.10.1 node-b 127.0.20.1 127.0.21.0/24 15021 \
  frontend/web,127.0.11.1,web shop/api,127.0.11.2,api shop/cart,127.0.11.3,cart \
  monitoring/prometheus,127.0.11.4,prometheus
node_config node-b 127.0.20.1 node-a 127.0.10.1 127.0.11.0/24 15022 \
  data/postgres,127.0.21.1,postgres data/redis,127.0.21.2,default \
  payments/payments,127.0.21.3,payments kube-system/coredns,127.0.21.4,coredns

echo "== workloads: an HTTP server on each workload's address and port"
serve() { python3 -m http.server "$2" --bind "$1" --directory "$work" >/dev/null 2>&1 & pids+=($!); }
serve 127.0.11.2 8080   # shop/api
serve 127.0.21.1 5432   # data/postgres
serve 127.0.21.2 6379   # data/redis
for a in 127.0.11.2:8080 127.0.21.1:5432 127.0.21.2:6379; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://$a/" && break; sleep 0.1; done
done

echo "== agents"
for n in node-a node-b; do
  "$AMBIT" agent --config "$work/$n.yaml" 2>"$work/$n.err" & pids+=($!)
done
for port in 15021 15022; do
  addr=127.0.10.1; [ "$port" = 15022 ] && addr=127.0.20.1
  for _ in $(seq 100); do
    curl -sf "http://$addr:$port/ready" >/dev/null && break
    sleep 0.1
  done
  echo "$addr: $(curl -s "http://$addr:$port/tables" | tr -d '\n' | sed 's/  */ /g')"
done

try() { # from-address to-address:port label
  local code
  code=$(curl -s -o /dev/null -w 'CONNECT %{http_connect}, GET %{http_code}' --interface "$1" -p -x http://127.0.10.1:15001 "http://$2/" || true)
  printf '%-44s %s\n' "$3" "$code"
}
echo "== through the agents (CONNECT 200: the tunnel opened; GET 200: the workload answered)"
try 127.0.11.1 127.0.11.2:8080 "frontend/web -> shop/api:8080 (same node)"
try 127.0.11.2 127.0.21.1:5432 "shop/api -> data/postgres:5432"
try 127.0.11.3 127.0.21.2:6379 "shop/cart -> data/redis:6379"
try 127.0.11.1 127.0.21.1:5432 "frontend/web -> data/postgres:5432"
echo "== why frontend/web cannot reach data/postgres (curl -v shows the answer):"
curl -s -o /dev/null -v --interface 127.0.11.1 -p -x http://127.0.10.1:15001 http://127.0.21.1:5432/ 2>&1 \
  | grep -E '^< (HTTP|ambit-reason)' || true
echo "== the denial in node-a's access log:"
grep '"decision":"deny"' "$work/node-a.log" | tail -1
echo "== an allowed connection in node-b's access log:"
grep '"decision":"allow"' "$work/node-b.log" | tail -1
echo "== node-a metrics (connections):"
curl -s http://127.0.10.1:15021/metrics | grep -E '^ambit_connections_(opened|denied)_total' || true
echo "== the query on the same tables agrees:"
"$AMBIT" query testdata/demo testdata/agents/pods.yaml --from frontend/web --to data/postgres --port 5432 || true

if [ -n "${KEEP:-}" ]; then
  echo "agents running; configs and logs in $work. Ctrl-C stops."
  wait
fi
