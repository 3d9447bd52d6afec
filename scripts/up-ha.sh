#!/usr/bin/env bash
# make up-ha: the HA shape of manifests/ha on loopback, answering for a
# real kube-apiserver. Starts kube-apiserver (over its own etcd), then
# three etcd members that require client certificates (made by
# manifests/ha/make-certs.sh), two kube2skys electing a leader through the
# Lease kube-system/kube2sky, three skydns each on its own loopback address
# and one exec-healthz checking all three. Creates the demo objects of
# make up, prints the dig commands for each skydns and which kube2sky
# leads. A member, kube2sky, skydns or exec-healthz that exits is
# restarted, as its StatefulSet or Deployment would; Ctrl-C stops
# everything.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ETCD_PORT=${ETCD_PORT:-4001}           # Member i: clients on ETCD_PORT+2i, peers on the next.
DNS_PORT=${DNS_PORT:-1053}             # skydns-i on 127.0.0.(i+1), as pods on their own IPs.
METRICS_PORT=${METRICS_PORT:-9153}     # Likewise.
KUBE2SKY_PORT=${KUBE2SKY_PORT:-8081}   # kube2sky-i on KUBE2SKY_PORT+i.
HEALTHZ_PORT=${HEALTHZ_PORT:-8080}
MEMBERS=(0 1 2)
SKYDNS=(0 1 2)
KUBE2SKY=(0 1)
client_port() { echo $((ETCD_PORT + 2 * $1)); }
skydns_ip() { echo "127.0.0.$(($1 + 1))"; }
kube2sky_port() { echo $((KUBE2SKY_PORT + $1)); }

ports=("$API_ETCD_PORT" "$((API_ETCD_PORT + 1))" "$API_PORT" "$HEALTHZ_PORT")
for i in "${MEMBERS[@]}"; do ports+=("$(client_port "$i")" "$(($(client_port "$i") + 1))"); done
for i in "${SKYDNS[@]}"; do ports+=("$(skydns_ip "$i"):$DNS_PORT" "$(skydns_ip "$i"):$METRICS_PORT"); done
for i in "${KUBE2SKY[@]}"; do ports+=("$(kube2sky_port "$i")"); done
check_ports "${ports[@]}"
begin
start_apiserver

TLS=$RUN/tls
step "starting etcd: members ${MEMBERS[*]} on 127.0.0.1:$(client_port 0), :$(client_port 1), :$(client_port 2), mTLS (certificates in $TLS)"
manifests/ha/make-certs.sh "$TLS" IP:127.0.0.1 DNS:localhost >/dev/null
cluster='' endpoints=''
for i in "${MEMBERS[@]}"; do
	cluster+="${cluster:+,}etcd-$i=https://127.0.0.1:$(($(client_port "$i") + 1))"
	endpoints+="${endpoints:+,}https://127.0.0.1:$(client_port "$i")"
done
CLIENT_TLS=(--cacert "$TLS/ca.crt" --cert "$TLS/client.crt" --key "$TLS/client.key")
for i in "${MEMBERS[@]}"; do  # The flags of manifests/ha/etcd.yaml, on loopback.
	c=$(client_port "$i")
	start "etcd-$i" "$ETCD" --name "etcd-$i" --data-dir "$RUN/etcd-$i" \
		--listen-client-urls "https://127.0.0.1:$c" --advertise-client-urls "https://127.0.0.1:$c" \
		--listen-peer-urls "https://127.0.0.1:$((c + 1))" --initial-advertise-peer-urls "https://127.0.0.1:$((c + 1))" \
		--initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token skydns-etcd \
		--client-cert-auth --trusted-ca-file "$TLS/ca.crt" --cert-file "$TLS/server.crt" --key-file "$TLS/server.key" \
		--peer-client-cert-auth --peer-skip-client-san-verification --peer-trusted-ca-file "$TLS/ca.crt" \
		--peer-cert-file "$TLS/peer.crt" --peer-key-file "$TLS/peer.key" "${ETCD_FLAGS[@]}"
done
for i in "${MEMBERS[@]}"; do  # /health is ok once the cluster has a leader.
	wait_for "etcd-$i" curl -sf "${CLIENT_TLS[@]}" "https://127.0.0.1:$(client_port "$i")/health"
done

step "starting kube2sky-${KUBE2SKY[*]} (--leader-elect), skydns-${SKYDNS[*]} on 127.0.0.1-3:$DNS_PORT, exec-healthz"
for i in "${KUBE2SKY[@]}"; do
	start "kube2sky-$i" env POD_NAME="kube2sky-$i" "$BIN/kube2sky" --domain=cluster.local --etcd-server="$endpoints" \
		--etcd-certfile="$TLS/client.crt" --etcd-keyfile="$TLS/client.key" --etcd-cafile="$TLS/ca.crt" \
		--kubecfg-file="$RUN/kubeconfig" --healthz-port="$(kube2sky_port "$i")" --leader-elect
done
healthz=()
for i in "${SKYDNS[@]}"; do
	ip=$(skydns_ip "$i")
	start "skydns-$i" "$BIN/skydns" -machines="$endpoints" -tls-pem="$TLS/client.crt" -tls-key="$TLS/client.key" \
		-ca-cert="$TLS/ca.crt" -addr="$ip:$DNS_PORT" -ns-rotate=false -domain=cluster.local. \
		--metrics-addr="$ip:$METRICS_PORT" -nameservers=127.0.0.1:9
	healthz+=("-cmd=nslookup -port=$DNS_PORT kubernetes.default.svc.cluster.local $ip >/dev/null" "-url=/healthz/skydns-$i")
done
start exec-healthz "$BIN/exec-healthz" "${healthz[@]}" -port="$HEALTHZ_PORT"
for i in "${KUBE2SKY[@]}"; do wait_for "kube2sky-$i" curl -sf "http://127.0.0.1:$(kube2sky_port "$i")/readiness"; done
for i in "${SKYDNS[@]}"; do wait_for "skydns-$i" curl -sf "http://$(skydns_ip "$i"):$METRICS_PORT/ready"; done
leader() { # the kube2sky that says it leads
	local i
	for i in "${KUBE2SKY[@]}"; do
		curl -s "http://127.0.0.1:$(kube2sky_port "$i")/metrics" | grep -qx 'kube2sky_leader 1' && echo "kube2sky-$i" && return
	done
	return 1
}
wait_for "a leading kube2sky" leader

step "creating demo objects in namespace demo"
web_ip=$(go run ./scripts/demo "$RUN/kubeconfig")
for i in "${SKYDNS[@]}"; do
	wait_for "demo records in skydns-$i" sh -c "dig @$(skydns_ip "$i") -p $DNS_PORT +short web.demo.svc.cluster.local | grep -q ."
done
sleep 1.5  # One exec-healthz period, so /healthz shows a real result.
led=$(leader)

d="dig -p $DNS_PORT +noall +answer"
cat <<EOT

The HA shape (manifests/ha) is up on loopback, answering for the kube-apiserver at https://127.0.0.1:$API_PORT:
  etcd        three members, clients and peers over mTLS: $endpoints
  kube2sky    kube2sky-0 (:$(kube2sky_port 0)) and kube2sky-1 (:$(kube2sky_port 1)), --leader-elect: $led leads
  skydns      skydns-0, -1, -2 on $(skydns_ip 0), $(skydns_ip 1), $(skydns_ip 2) port $DNS_PORT, each answering on its own

Paste any of these:

  $d @$(skydns_ip 0) kubernetes.default.svc.cluster.local
  $d @$(skydns_ip 1) web.demo.svc.cluster.local                 # ClusterIP $web_ip
  $d @$(skydns_ip 2) _http._tcp.web.demo.svc.cluster.local SRV
  $d @$(skydns_ip 0) db.demo.svc.cluster.local                  # headless: one A per endpoint
  $d @$(skydns_ip 1) 10-244-1-7.demo.pod.cluster.local          # pod web-0

Take things away (what exits comes back a second later, as its pod's container would):
  kill \$(cat $RUN/$led.pid)        # SIGTERM: it releases the Lease, the other leads within 2 s; back, it stands by
  kill -STOP \$(cat $RUN/$led.pid)  # hung: the other leads once the lease lapses, in 15-18 s; after a kill -CONT
                                    # its next write is refused by the fence (or its renewal fails): it exits, and stands by
  kill -STOP \$(cat $RUN/etcd-0.pid)  # a hung member: skydns and kube2sky move to the others within seconds
  kill \$(cat $RUN/skydns-1.pid)      # the other two answer meanwhile
Who leads:
  for p in $(kube2sky_port 0) $(kube2sky_port 1); do curl -s 127.0.0.1:\$p/metrics | grep '^kube2sky_leader '; done
  curl -sk -H 'Authorization: Bearer $TOKEN' https://127.0.0.1:$API_PORT/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube2sky | grep '"holderIdentity"'

The members and the records kube2sky wrote:
  $(realpath "$ETCDCTL") --endpoints=$endpoints --cacert=$TLS/ca.crt --cert=$TLS/client.crt --key=$TLS/client.key endpoint status -w table
  $(realpath "$ETCDCTL") --endpoints=$endpoints --cacert=$TLS/ca.crt --cert=$TLS/client.crt --key=$TLS/client.key get --prefix /skydns

Change things and watch the answers follow (kubectl works too, with this kubeconfig):
  export KUBECONFIG=$RUN/kubeconfig

exec-healthz:  curl -s http://127.0.0.1:$HEALTHZ_PORT/healthz/skydns-0      (and -1, -2; now: $(curl -s "http://127.0.0.1:$HEALTHZ_PORT/healthz/skydns-0"))
kube2sky:      curl -s http://127.0.0.1:$(kube2sky_port 0)/readiness   and   /metrics (kube2sky-1 on :$(kube2sky_port 1))
skydns:        curl -s http://$(skydns_ip 0):$METRICS_PORT/metrics | grep ^skydns_    and   /ready
Logs:          $RUN/*.log

Ctrl-C stops everything.
EOT
names=(exec-healthz)
for i in "${MEMBERS[@]}"; do names+=("etcd-$i"); done
for i in "${KUBE2SKY[@]}"; do names+=("kube2sky-$i"); done
for i in "${SKYDNS[@]}"; do names+=("skydns-$i"); done
keep_running "${names[@]}"
