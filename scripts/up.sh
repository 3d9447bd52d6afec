#!/usr/bin/env bash
# make up: the DNS pod on loopback, answering for a real kube-apiserver.
# Starts an etcd for the apiserver, kube-apiserver, and the pod: its own
# etcd, kube2sky, skydns and exec-healthz, with the legacy arguments
# pointed at loopback ports. Creates demo objects, prints the dig commands
# that resolve them, and stops everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

ETCD=${SKYPOD_ETCD_BIN:-.cache/etcd-v3.6.6}
ETCDCTL=${SKYPOD_ETCDCTL_BIN:-.cache/etcdctl-v3.6.6}
APISERVER=${SKYPOD_APISERVER_BIN:-.cache/kube-apiserver-v1.34.3}
RUN=${RUN_DIR:-/tmp/skypod-up}
API_ETCD_PORT=${API_ETCD_PORT:-23790}  # The apiserver's own etcd.
API_PORT=${API_PORT:-6443}
ETCD_PORT=${ETCD_PORT:-4001}           # The pod's etcd, on the legacy port.
DNS_PORT=${DNS_PORT:-1053}             # 53 needs root and is often taken.
METRICS_PORT=${METRICS_PORT:-9153}
KUBE2SKY_PORT=${KUBE2SKY_PORT:-8081}
HEALTHZ_PORT=${HEALTHZ_PORT:-8080}
TOKEN=skypod-admin-token

step() { printf '\033[1m>> %s\033[0m\n' "$*"; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$API_ETCD_PORT" "$((API_ETCD_PORT + 1))" "$API_PORT" "$ETCD_PORT" "$((ETCD_PORT + 1))" "$DNS_PORT" \
	"$METRICS_PORT" "$KUBE2SKY_PORT" "$HEALTHZ_PORT"; do
	port_free "$p" || { echo "up: port $p on 127.0.0.1 is in use (make down cleans up after a crash; the ports are settable, see scripts/up.sh)" >&2; exit 1; }
done

rm -rf "$RUN" && mkdir -p "$RUN"
stop() {
	trap - EXIT INT TERM
	step "stopping"
	for f in "$RUN"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$RUN"
}
trap stop EXIT INT TERM

start() { # name, command...: run in the background, logging to $RUN/name.log
	local name=$1; shift
	"$@" >"$RUN/$name.log" 2>&1 &
	echo $! >"$RUN/$name.pid"
}
wait_for() { # what, command...
	local what=$1; shift
	for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	echo "up: $what did not come up; see $RUN/*.log" >&2; exit 1
}
etcd_at() { # name, client port, data dir
	start "$1" "$ETCD" --data-dir "$3" --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
		--listen-peer-urls "http://127.0.0.1:$(($2 + 1))" --log-level error \
		--auto-compaction-mode periodic --auto-compaction-retention 5m --quota-backend-bytes 268435456
	wait_for "$1" curl -sf "http://127.0.0.1:$2/health"
}

step "starting kube-apiserver on 127.0.0.1:$API_PORT (and its etcd)"
etcd_at api-etcd "$API_ETCD_PORT" "$RUN/api-etcd"
openssl genrsa -out "$RUN/sa.key" 2048 2>/dev/null
openssl rsa -in "$RUN/sa.key" -pubout -out "$RUN/sa.pub" 2>/dev/null
echo "$TOKEN,admin,admin,system:masters" >"$RUN/tokens.csv"
start kube-apiserver "$APISERVER" --etcd-servers="http://127.0.0.1:$API_ETCD_PORT" \
	--service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$RUN/sa.pub" \
	--service-account-signing-key-file="$RUN/sa.key" --service-cluster-ip-range=10.0.0.0/24 \
	--authorization-mode=RBAC --token-auth-file="$RUN/tokens.csv" --secure-port="$API_PORT" \
	--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --cert-dir="$RUN/certs"
wait_for kube-apiserver curl -skf -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/readyz"
cat >"$RUN/kubeconfig" <<EOK
apiVersion: v1
kind: Config
clusters: [{name: up, cluster: {server: "https://127.0.0.1:$API_PORT", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: $TOKEN}}]
contexts: [{name: up, context: {cluster: up, user: admin}}]
current-context: up
EOK

step "starting the pod: etcd on 127.0.0.1:$ETCD_PORT, kube2sky, skydns on 127.0.0.1:$DNS_PORT, exec-healthz"
etcd_at etcd "$ETCD_PORT" "$RUN/etcd"
start kube2sky bin/kube2sky --domain=cluster.local --etcd-server="http://127.0.0.1:$ETCD_PORT" \
	--kubecfg-file="$RUN/kubeconfig" --healthz-port="$KUBE2SKY_PORT"
start skydns bin/skydns -machines="http://127.0.0.1:$ETCD_PORT" -addr="127.0.0.1:$DNS_PORT" -ns-rotate=false \
	-domain=cluster.local. --metrics-addr="127.0.0.1:$METRICS_PORT" -nameservers=127.0.0.1:9
start exec-healthz bin/exec-healthz \
	"-cmd=nslookup -port=$DNS_PORT kubernetes.default.svc.cluster.local 127.0.0.1 >/dev/null" -port="$HEALTHZ_PORT"
wait_for kube2sky curl -sf "http://127.0.0.1:$KUBE2SKY_PORT/readiness"
wait_for skydns curl -sf "http://127.0.0.1:$METRICS_PORT/ready"

step "creating demo objects in namespace demo"
web_ip=$(go run ./scripts/demo "$RUN/kubeconfig")
wait_for "demo records" sh -c "dig @127.0.0.1 -p $DNS_PORT +short web.demo.svc.cluster.local | grep -q ."
sleep 1.5  # One exec-healthz period, so /healthz shows a real result.

d="dig @127.0.0.1 -p $DNS_PORT +noall +answer"
cat <<EOT

The DNS pod is up, answering for the kube-apiserver at https://127.0.0.1:$API_PORT.
Paste any of these:

  $d kubernetes.default.svc.cluster.local
  $d _https._tcp.kubernetes.default.svc.cluster.local SRV
  $d web.demo.svc.cluster.local                 # ClusterIP $web_ip
  $d _http._tcp.web.demo.svc.cluster.local SRV
  $d db.demo.svc.cluster.local                  # headless: one A per endpoint
  $d db-0.db.demo.svc.cluster.local             # the endpoint with a hostname
  $d _postgres._tcp.db.demo.svc.cluster.local SRV
  $d 10-244-1-7.demo.pod.cluster.local          # pod web-0
  $d -x $web_ip                              # PTR
  $d dns-version.cluster.local TXT
  dig @127.0.0.1 -p $DNS_PORT nosuch.demo.svc.cluster.local      # NXDOMAIN with the SOA

The records kube2sky wrote to etcd:
  $(realpath "$ETCDCTL") --endpoints=http://127.0.0.1:$ETCD_PORT get --prefix /skydns

Change things and watch the answers follow (kubectl works too, with this kubeconfig):
  export KUBECONFIG=$RUN/kubeconfig

exec-healthz:  curl -s http://127.0.0.1:$HEALTHZ_PORT/healthz        (now: $(curl -s "http://127.0.0.1:$HEALTHZ_PORT/healthz"))
kube2sky:      curl -s http://127.0.0.1:$KUBE2SKY_PORT/readiness   and   /metrics
skydns:        curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep ^skydns_    and   /ready
Logs:          $RUN/*.log

Ctrl-C stops everything.
EOT
while true; do
	for f in "$RUN"/*.pid; do
		kill -0 "$(cat "$f")" 2>/dev/null || { echo "up: $(basename "$f" .pid) exited; see $RUN/$(basename "$f" .pid).log" >&2; exit 1; }
	done
	sleep 1
done
