#!/usr/bin/env bash
# make up: run the DNS pod on loopback and show how to query it.
# Today: etcd + skydns with demo records in kube2sky's layout. A
# kube-apiserver, kube2sky and exec-healthz join with the main job (issue #4).
set -euo pipefail
cd "$(dirname "$0")/.."

ETCD=${SKYPOD_ETCD_BIN:-.cache/etcd-v3.6.6}
RUN=${RUN_DIR:-/tmp/skypod-up}
ETCD_PORT=${ETCD_PORT:-4001}   # The legacy pod's etcd client port.
DNS_PORT=${DNS_PORT:-1053}     # 53 needs root and is often taken.
METRICS_PORT=${METRICS_PORT:-9153}

step() { printf '\033[1m>> %s\033[0m\n' "$*"; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$ETCD_PORT" "$((ETCD_PORT + 1))" "$DNS_PORT" "$METRICS_PORT"; do
	port_free "$p" || { echo "up: port $p on 127.0.0.1 is in use (make down cleans up after a crash; or set ETCD_PORT/DNS_PORT/METRICS_PORT)" >&2; exit 1; }
done

rm -rf "$RUN" && mkdir -p "$RUN"
stop() {
	step "stopping"
	for f in "$RUN"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$RUN"
}
trap stop EXIT INT TERM

wait_for() { # what, command...
	local what=$1; shift
	for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "up: $what did not come up; its log is in $RUN" >&2; exit 1
}

step "starting etcd on 127.0.0.1:$ETCD_PORT"
"$ETCD" --data-dir "$RUN/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
	--log-level error >"$RUN/etcd.log" 2>&1 &
echo $! >"$RUN/etcd.pid"
wait_for etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

step "writing demo records (kube2sky's layout)"
go run ./test/bench/loadrecords -etcd "http://127.0.0.1:$ETCD_PORT" -demo

step "starting skydns with the legacy pod's arguments on 127.0.0.1:$DNS_PORT"
bin/skydns -machines="http://127.0.0.1:$ETCD_PORT" -addr="127.0.0.1:$DNS_PORT" -ns-rotate=false -domain=cluster.local. \
	--metrics-addr="127.0.0.1:$METRICS_PORT" -nameservers=127.0.0.1:9 >"$RUN/skydns.log" 2>&1 &
echo $! >"$RUN/skydns.pid"
wait_for skydns curl -sf "http://127.0.0.1:$METRICS_PORT/ready"

d="dig @127.0.0.1 -p $DNS_PORT +noall +answer"
cat <<EOT

The pod is up. Paste any of these:

  $d kubernetes.default.svc.cluster.local
  $d _https._tcp.kubernetes.default.svc.cluster.local SRV
  $d web.demo.svc.cluster.local
  $d _http._tcp.web.demo.svc.cluster.local SRV
  $d db.demo.svc.cluster.local              # headless: one A per endpoint
  $d db-0.db.demo.svc.cluster.local         # endpoint with a hostname
  $d _postgres._tcp.db.demo.svc.cluster.local SRV
  $d 10-244-1-7.demo.pod.cluster.local      # pod record
  dig @127.0.0.1 -p $DNS_PORT nosuch.demo.svc.cluster.local   # NXDOMAIN with the SOA

The records in etcd, through etcd's v3 JSON gateway (it speaks base64):
  curl -s http://127.0.0.1:$ETCD_PORT/v3/kv/range -d '{"key":"$(printf /skydns/ | base64)","range_end":"$(printf /skydns0 | base64)"}' \\
    | python3 -c 'import json,sys,base64 as b; [print(b.b64decode(k["key"]).decode(), b.b64decode(k["value"]).decode()) for k in json.load(sys.stdin)["kvs"]]'

Metrics:   curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep ^skydns_
Readiness: curl -s http://127.0.0.1:$METRICS_PORT/ready
Logs:      $RUN/*.log

Ctrl-C stops everything.
EOT
while kill -0 "$(cat "$RUN/skydns.pid")" 2>/dev/null && kill -0 "$(cat "$RUN/etcd.pid")" 2>/dev/null; do sleep 1; done
echo "up: a process exited; see $RUN/*.log" >&2
