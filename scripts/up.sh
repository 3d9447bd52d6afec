#!/usr/bin/env bash
# make up: the DNS pod on loopback, answering for a real kube-apiserver.
# Starts an etcd for the apiserver, kube-apiserver, and the pod: its own
# etcd, kube2sky, skydns and exec-healthz, with the legacy arguments
# pointed at loopback ports. Creates demo objects, prints the dig commands
# that resolve them, and stops everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ETCD_PORT=${ETCD_PORT:-4001}           # The pod's etcd, on the legacy port.
DNS_PORT=${DNS_PORT:-1053}             # 53 needs root and is often taken.
METRICS_PORT=${METRICS_PORT:-9153}
KUBE2SKY_PORT=${KUBE2SKY_PORT:-8081}
HEALTHZ_PORT=${HEALTHZ_PORT:-8080}

check_ports "$API_ETCD_PORT" "$((API_ETCD_PORT + 1))" "$API_PORT" "$ETCD_PORT" "$((ETCD_PORT + 1))" "$DNS_PORT" \
	"$METRICS_PORT" "$KUBE2SKY_PORT" "$HEALTHZ_PORT"
begin
start_apiserver

step "starting the pod: etcd on 127.0.0.1:$ETCD_PORT, kube2sky, skydns on 127.0.0.1:$DNS_PORT, exec-healthz"
etcd_at etcd "$ETCD_PORT" "$RUN/etcd"
start kube2sky "$BIN/kube2sky" --domain=cluster.local --etcd-server="http://127.0.0.1:$ETCD_PORT" \
	--kubecfg-file="$RUN/kubeconfig" --healthz-port="$KUBE2SKY_PORT"
start skydns "$BIN/skydns" -machines="http://127.0.0.1:$ETCD_PORT" -addr="127.0.0.1:$DNS_PORT" -ns-rotate=false \
	-domain=cluster.local. --metrics-addr="127.0.0.1:$METRICS_PORT" -nameservers=127.0.0.1:9
start exec-healthz "$BIN/exec-healthz" \
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
# shellcheck disable=SC2119 # Restarting none: the single pod has no replica to fall back on.
keep_running
