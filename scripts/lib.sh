# Sourced by up.sh and up-ha.sh, from the repository root: what both do
# the same way. The run directory is one for both, so `make down` cleans
# up after either.
# shellcheck shell=bash

ETCD=${SKYPOD_ETCD_BIN:-.cache/etcd-v3.6.6}
# shellcheck disable=SC2034 # For the scripts' instructions.
ETCDCTL=${SKYPOD_ETCDCTL_BIN:-.cache/etcdctl-v3.6.6}
APISERVER=${SKYPOD_APISERVER_BIN:-.cache/kube-apiserver-v1.34.3}
RUN=${RUN_DIR:-/tmp/skypod-up}
# shellcheck disable=SC2034 # Used by up.sh and up-ha.sh.
BIN=${SKYPOD_BIN_DIR:-bin} # The pod's binaries: make build writes bin/.
API_ETCD_PORT=${API_ETCD_PORT:-23790}  # The apiserver's own etcd.
API_PORT=${API_PORT:-6443}
TOKEN=skypod-admin-token
ME=$(basename "$0" .sh)
# As every etcd the project starts (docs/architecture.md, "etcd").
ETCD_FLAGS=(--log-level error --auto-compaction-mode periodic --auto-compaction-retention 5m --quota-backend-bytes 268435456)

step() { printf '\033[1m>> %s\033[0m\n' "$*"; }

# check_ports [ADDRESS:]PORT...: each is free on its address (127.0.0.1
# when none is given), or the run stops before it starts anything.
check_ports() {
	local p host
	for p in "$@"; do
		host=127.0.0.1
		[[ $p == *:* ]] && host=${p%:*} && p=${p##*:}
		if (exec 3<>"/dev/tcp/$host/$p") 2>/dev/null; then
			echo "$ME: port $p on $host is in use (make down cleans up after a crash; the ports are settable, see scripts/$ME.sh)" >&2
			exit 1
		fi
	done
}

# begin empties the run directory and stops everything started in it when
# the script ends, by Ctrl-C or otherwise.
begin() {
	rm -rf "$RUN" && mkdir -p "$RUN"
	trap stop EXIT
	# A trap returns to where the signal came; a script stopped by a signal
	# must end there, not go on (keep_running would read the removed run
	# directory), and end with the status a shell gives a signal's death.
	trap 'stop; exit 130' INT
	trap 'stop; exit 143' TERM
}
stop() {
	trap - EXIT INT TERM
	step "stopping"
	for f in "$RUN"/*.pid; do
		if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
	done
	wait 2>/dev/null || true
	rm -rf "$RUN"
}

start() { # name, command...: run in the background, logging to $RUN/name.log
	local name=$1; shift
	local -a cmd=("$@")
	declare -p cmd >"$RUN/$name.cmd"
	"${cmd[@]}" >>"$RUN/$name.log" 2>&1 &
	echo $! >"$RUN/$name.pid"
}
restart() { # name: its command again, as start ran it
	local -a cmd
	# shellcheck disable=SC1090 # Written by start.
	source "$RUN/$1.cmd"
	start "$1" "${cmd[@]}"
}
wait_for() { # what, command...
	local what=$1; shift
	for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	echo "$ME: $what did not come up; see $RUN/*.log" >&2; exit 1
}

etcd_at() { # name, client port, data dir: a single plaintext member
	start "$1" "$ETCD" --data-dir "$3" --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
		--listen-peer-urls "http://127.0.0.1:$(($2 + 1))" "${ETCD_FLAGS[@]}"
	wait_for "$1" curl -sf "http://127.0.0.1:$2/health"
}

# start_apiserver: kube-apiserver on 127.0.0.1:$API_PORT with RBAC, over
# its own etcd, and $RUN/kubeconfig for its administrator.
start_apiserver() {
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
}

# keep_running NAME...: until Ctrl-C, restarts each named process when it
# exits, as a Deployment or StatefulSet would; any other exiting ends the
# run.
# Builtins only but for the sleep: Ctrl-C, which reaches every process
# started here too, is then handled before any of their exits is seen.
keep_running() {
	local f name pid
	while true; do
		for f in "$RUN"/*.pid; do
			read -r pid <"$f"
			kill -0 "$pid" 2>/dev/null && continue
			name=$(basename "$f" .pid)
			if [[ " $* " != *" $name "* ]]; then
				echo "$ME: $name exited; see $RUN/$name.log" >&2
				exit 1
			fi
			echo "$ME: $name exited; restarting it (log: $RUN/$name.log)" >&2
			restart "$name"
		done
		sleep 1
	done
}
