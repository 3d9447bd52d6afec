#!/usr/bin/env bash
# bench-dns: dnsperf against skydns holding 10,000 services in kube2sky's
# layout (as shipped, and with --answer-cache=0), and in the same run
# against a fixed-answer miekg/dns responder (the framework's ceiling
# here). Servers on core 0, dnsperf on core 1 (SERVER_CPUS, LOAD_CPUS).
# Prints QPS, p50/p99 latency and peak RSS of each, the CPU time each
# server spent per answered query (user + system, from /proc/<pid>/stat
# across its load rounds), and each skydns's QPS as a share of the ceiling.
# Usage: make bench-dns   (or BIN_DIR=bin SKYPOD_ETCD_BIN=... test/bench/bench-dns.sh)
set -euo pipefail

BIN_DIR=${BIN_DIR:-bin}
ETCD=${SKYPOD_ETCD_BIN:-.cache/etcd-v3.6.6}
SERVICES=${SERVICES:-10000}
ROUNDS=${ROUNDS:-8}             # Alternating load rounds per server...
ROUND_SECONDS=${ROUND_SECONDS:-3}  # ...of this many seconds: 24 s each in all.
LATENCY_QPS=${LATENCY_QPS:-20000}  # Fixed rate of the latency pass.
LATENCY_SECONDS=${LATENCY_SECONDS:-5}
SERVER_CPUS=${SERVER_CPUS:-0}     # taskset lists: the servers' cores (skydns binds a UDP
LOAD_CPUS=${LOAD_CPUS:-1}         # socket per core it gets) and dnsperf's.
SKYDNS_FLAGS=${SKYDNS_FLAGS:-}    # Added to both skydns's flags, e.g. --udp-sockets=1.

for tool in dnsperf taskset; do
	command -v "$tool" >/dev/null || { echo "bench-dns: $tool is missing (make deps)" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "bench-dns: needs 2 cores to pin server and load apart" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

etcd_port=$(free_port); peer_port=$(free_port)
"$ETCD" --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
	--advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
	--log-level error >"$work/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null && break; sleep 0.1; done

echo ">> loading $SERVICES services into etcd"
go run ./test/bench/loadrecords -etcd "http://127.0.0.1:$etcd_port" -services "$SERVICES" -queries "$work/queries"

# CPU time PID has used, user + system, in clock ticks (stat fields 14 and
# 15; the command name, field 2, may hold spaces, so count from its end).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
clk_tck=$(getconf CLK_TCK)

# One saturating dnsperf round against PORT of server PID; appends
# "completed seconds lost cpu-ticks" to FILE.
load_round() {
	local port=$1 file=$2 pid=$3 before
	before=$(cpu_ticks "$pid")
	taskset -c "$LOAD_CPUS" dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -l "$ROUND_SECONDS" -c 4 -q 200 >"$work/perf.out" 2>&1
	awk -v ticks=$(($(cpu_ticks "$pid") - before)) \
		'/Queries completed:/ {c=$3} /Queries lost:/ {l=$3} /Run time \(s\):/ {t=$4} END {print c, t, l, ticks}' "$work/perf.out" >>"$file"
}

# Latency pass at a fixed rate: prints "p50_ms p99_ms answered".
latency() {
	taskset -c "$LOAD_CPUS" dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries" -l "$LATENCY_SECONDS" -Q "$LATENCY_QPS" -v >"$work/lat.out" 2>&1
	awk '$1 == ">" && $2 == "NOERROR" {print $NF}' "$work/lat.out" | sort -g >"$work/lat.sorted"
	awk '{v[NR]=$1} END {printf "%.3f %.3f %d\n", v[int(NR*0.50)]*1000, v[int(NR*0.99)]*1000, NR}' "$work/lat.sorted"
}

# Aggregate QPS, lost queries and CPU microseconds per completed query over
# all rounds of FILE.
total_qps() { awk -v hz="$clk_tck" '{c+=$1; t+=$2; l+=$3; k+=$4} END {printf "%.0f %d %.2f\n", c/t, l, k/hz*1e6/c}' "$1"; }

# The servers, all on core 0: skydns as shipped (repeated names come from
# its packed answers), skydns with --answer-cache=0 (every reply looked up
# in the index and packed anew), and the fixed responder.
servers=(skydns skydns-built fixed)
declare -A port pid metrics
start_skydns() { # NAME EXTRA-FLAGS...
	local name=$1; shift
	port[$name]=$(free_port); metrics[$name]=$(free_port)
	# shellcheck disable=SC2086 # SKYDNS_FLAGS is a list of flags.
	taskset -c "$SERVER_CPUS" "$BIN_DIR/skydns" -machines="http://127.0.0.1:$etcd_port" -addr="127.0.0.1:${port[$name]}" \
		-ns-rotate=false -domain=cluster.local. -nameservers=127.0.0.1:9 --metrics-addr="127.0.0.1:${metrics[$name]}" \
		--log-level=warn $SKYDNS_FLAGS "$@" >"$work/$name.log" 2>&1 &
	pid[$name]=$!; pids+=($!)
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:${metrics[$name]}/ready" >/dev/null && break; sleep 0.1; done
	echo ">> $name loaded $(curl -s "http://127.0.0.1:${metrics[$name]}/metrics" | awk '/^skydns_index_records / {print $2}') records"
}
start_skydns skydns
start_skydns skydns-built --answer-cache=0
port[fixed]=$(free_port)
taskset -c "$SERVER_CPUS" "$BIN_DIR/fixedresponder" "127.0.0.1:${port[fixed]}" >"$work/fixed.log" 2>&1 &
pid[fixed]=$!; pids+=($!)

# Alternate the servers so drift in the machine's speed hits all alike.
for round in $(seq "$ROUNDS"); do
	echo ">> round $round/$ROUNDS: ${ROUND_SECONDS}s each: ${servers[*]}"
	for s in "${servers[@]}"; do load_round "${port[$s]}" "$work/$s.rounds" "${pid[$s]}"; done
done

# Each skydns round is compared with the fixed responder's round of the
# same turn; the median of those ratios resists the machine's speed
# changing under us. Prints "median rounds,sorted".
paired_ratio() {
	local ratios
	ratios=$(paste -d' ' "$work/$1.rounds" "$work/fixed.rounds" | awk '{printf "%.1f\n", 100*($1/$2)/($5/$6)}' | sort -g)
	echo "$(echo "$ratios" | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}') $(echo $ratios | tr ' ' ',')"
}

printf '\n%-16s %10s %8s %8s %8s %10s %14s\n' server QPS "p50 ms" "p99 ms" lost "peak RSS" "CPU µs/query"
for s in "${servers[@]}"; do
	read -r qps lost cpu <<<"$(total_qps "$work/$s.rounds")"
	read -r p50 p99 n <<<"$(latency "${port[$s]}")"
	rss=$(awk '/VmHWM/ {print $2}' "/proc/${pid[$s]}/status")
	printf '%-16s %10s %8s %8s %8s %6s MiB %14s\n' "$s" "$qps" "$p50" "$p99" "$lost" "$((rss / 1024))" "$cpu"
done
for s in skydns skydns-built; do
	read -r median rounds <<<"$(paired_ratio "$s")"
	echo "$s / fixed responder QPS: median of paired rounds ${median}% (rounds: $rounds)"
done
curl -s "http://127.0.0.1:${metrics[skydns]}/metrics" | awk -F'[ "]' '
	/^skydns_answer_cache_lookups_total/ {n[$2]=$NF}
	END {printf "skydns packed answers: %d hits, %d misses (%.2f%% hits)\n", n["hit"], n["miss"], 100*n["hit"]/(n["hit"]+n["miss"])}'
echo "target: skydns >= 80%"
echo "load: $ROUNDS alternating rounds of ${ROUND_SECONDS}s per server; latency: ${LATENCY_SECONDS}s at ${LATENCY_QPS} qps"
