#!/bin/bash
# Times a newcomer's first run: a fresh clone of this checkout, `make serve` until it prints
# its curl line, then that curl. Usage: bash bench/first_run.sh [SCRATCH_DIR]
# Move ~/.cache/uv and ~/.npm aside first to measure with cold package caches.
set -eu
here=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
dir=${1:-/tmp/telltale-first-run}
rm -rf "$dir"
git clone -q "$here" "$dir"
cd "$dir"
start=$(date +%s.%N)
setsid make serve >serve.out 2>&1 &
pid=$!
trap 'kill -- -$pid 2>/dev/null || true' EXIT
until grep -q "curl " serve.out; do
	kill -0 $pid 2>/dev/null || { cat serve.out; exit 1; }
	sleep 0.1
done
line=$(echo "$(date +%s.%N) - $start" | bc)
status=$(eval "$(grep -m1 -o 'curl .*' serve.out) -s -o /dev/null -w '%{http_code}'")
done_at=$(echo "$(date +%s.%N) - $start" | bc)
echo "curl line after ${line} s, answered ${status} after ${done_at} s (load average $(cut -d' ' -f1 /proc/loadavg))"
