#!/usr/bin/env bash
# skydns-memory: skydns's peak RSS (VmHWM) holding SERVICES services in
# kube2sky's layout from a real etcd: after the first list, and after a
# relist forced by stopping etcd (SIGSTOP) past skydns's health probe, so
# its watch ends and it lists everything again while its index keeps
# answering. Prints the keys loaded, VmHWM and RSS after each stage, the Go
# heap in use, and the load time: skydns's start to its index loaded
# (skydns_index_loaded 1, polled every 50 ms).
# Usage: make build etcd && SERVICES=100000 BIN_DIR=bin SKYPOD_ETCD_BIN=.cache/etcd-v3.6.6 test/bench/skydns-memory.sh
set -euo pipefail

BIN_DIR=${BIN_DIR:-bin}
ETCD=${SKYPOD_ETCD_BIN:-.cache/etcd-v3.6.6}
SERVICES=${SERVICES:-100000}
# kube2sky's layout: 10% headless with 5 endpoints, 10% with a named port,
# PTR records for every address.
LAYOUT=${LAYOUT:--headless-percent=10 -endpoints=5 -named-port-percent=10 -reverse}
STOP_SECONDS=${STOP_SECONDS:-8} # Longer than skydns's probe period plus its --etcd-timeout.

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { curl -s "http://127.0.0.1:$metrics_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
status_kib() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$skydns_pid/status"; }
report() {
	printf '%-28s VmHWM %4d MiB  VmRSS %4d MiB  heap in use %4d MiB  records %s\n' "$1" \
		$(($(status_kib VmHWM) / 1024)) $(($(status_kib VmRSS) / 1024)) \
		"$(metric go_memstats_heap_inuse_bytes | awk '{printf "%d", $1/1048576}')" "$(metric skydns_index_records)"
}

etcd_port=$(free_port); peer_port=$(free_port)
"$ETCD" --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
	--advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
	--log-level error >"$work/etcd.log" 2>&1 &
etcd_pid=$!; pids+=($etcd_pid)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null && break; sleep 0.1; done

echo ">> loading $SERVICES services into etcd ($LAYOUT)"
# shellcheck disable=SC2086 # LAYOUT is a list of flags.
go run ./test/bench/loadrecords -etcd "http://127.0.0.1:$etcd_port" -services "$SERVICES" $LAYOUT

dns_port=$(free_port); metrics_port=$(free_port)
started=$(date +%s%N)
"$BIN_DIR/skydns" -machines="http://127.0.0.1:$etcd_port" -addr="127.0.0.1:$dns_port" -domain=cluster.local. \
	-nameservers=127.0.0.1:9 --metrics-addr="127.0.0.1:$metrics_port" --log-level=warn >"$work/skydns.log" 2>&1 &
skydns_pid=$!; pids+=($skydns_pid)
for _ in $(seq 2400); do [ "$(metric skydns_index_loaded)" = 1 ] && break; sleep 0.05; done
[ "$(metric skydns_index_loaded)" = 1 ] || { echo "skydns did not load its index" >&2; cat "$work/skydns.log" >&2; exit 1; }
awk -v a="$started" -v b="$(date +%s%N)" 'BEGIN { printf "load time (start to skydns_index_loaded 1): %.2f s\n", (b - a) / 1e9 }'
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$metrics_port/ready" >/dev/null && break; sleep 0.1; done
report "after the first list"

echo ">> stopping etcd for ${STOP_SECONDS}s: skydns's probe fails and it lists again"
relists=$(metric skydns_etcd_lists_total)
kill -STOP "$etcd_pid"; sleep "$STOP_SECONDS"; kill -CONT "$etcd_pid"
for _ in $(seq 1200); do [ "$(metric skydns_etcd_lists_total)" != "$relists" ] && break; sleep 0.1; done
[ "$(metric skydns_etcd_lists_total)" != "$relists" ] || { echo "skydns did not list again" >&2; cat "$work/skydns.log" >&2; exit 1; }
report "after a relist"
