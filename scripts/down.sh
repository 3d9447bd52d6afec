#!/usr/bin/env bash
# make down: stop whatever a crashed `make up` or `make up-ha` left running.
RUN=${RUN_DIR:-/tmp/skypod-up}
for f in "$RUN"/*.pid; do
	[ -f "$f" ] || continue
	kill "$(cat "$f")" 2>/dev/null && echo "stopped $(basename "$f" .pid)"
done
rm -rf "$RUN"
