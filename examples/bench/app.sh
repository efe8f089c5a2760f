#!/usr/bin/env bash
# Benchmarks of the app package, as medians of several runs:
#   - a guarded call on the success path vs the bare call, serial and
#     parallel (target: <= 300 ns and <= 2 allocs over the bare call), and
#     the cost of one clock read on this machine, which the guard pays four
#     times (two in gobreaker, two for its latency histogram);
#   - the app server's middleware chain vs bare Echo on one JSON handler:
#     in process (go test, httptest) and over a loopback socket with wrk.
# Traffic stays on 127.0.0.1; every process started is killed by its PID.
# Usage: examples/bench/app.sh [count]   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-5}
out=$(mktemp -d)
server_pid=
cleanup() {
	if [[ -n $server_pid ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$out"
}
trap cleanup EXIT

median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

echo "== go test benchmarks ($count rounds, every case once per round)"
go test -c -o "$out/app.test" ./app/
for _ in $(seq "$count"); do
	timeout 300 "$out/app.test" -test.run '^$' -test.bench 'GuardedCall|Chain|Clock' -test.benchmem -test.benchtime 500ms >>"$out/go.txt"
done
field() { # field <benchmark name> <unit>: the median of that unit's values
	awk -v n="$1" -v u="$2" '$1 == n { for (i = 3; i < NF; i++) if ($(i+1) == u) print $i }' "$out/go.txt" | median
}
printf '%-46s %10s %8s %10s\n' benchmark ns/op B/op allocs/op
for name in $(awk '/^Benchmark/ {print $1}' "$out/go.txt" | awk '!seen[$0]++'); do
	printf '%-46s %10s %8s %10s\n' "$name" "$(field "$name" ns/op)" "$(field "$name" B/op)" "$(field "$name" allocs/op)"
done
procs=$(awk '/^BenchmarkGuardedCall\/bare-/ {sub(/.*-/, "", $1); print $1; exit}' "$out/go.txt")
over() { # over <case> <baseline>: the guard's cost over the bare call
	local a b
	a=$(field "BenchmarkGuardedCall/$1-$procs" ns/op)
	b=$(field "BenchmarkGuardedCall/$2-$procs" ns/op)
	printf '%-30s +%s ns/op, +%s allocs/op\n' "$1" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.0f", a-b}')" \
		"$(awk -v a="$(field "BenchmarkGuardedCall/$1-$procs" allocs/op)" -v b="$(field "BenchmarkGuardedCall/$2-$procs" allocs/op)" 'BEGIN {print a-b}')"
}
echo
echo "== guard cost over the bare call (medians)"
over guarded bare
over guarded-timeout bare-timeout
over guarded-parallel bare-parallel
over guarded-parallel-bulkhead bare-parallel
now=$(field "BenchmarkClock/now-$procs" ns/op)
since=$(field "BenchmarkClock/since-$procs" ns/op)
echo "of which clock reads (2 time.Now in gobreaker, 2 time.Since in the guard): $(awk -v a="$now" -v b="$since" 'BEGIN {printf "%.0f", 2*a+2*b}') ns on this machine"
echo "an open breaker refuses a call in $(field "BenchmarkGuardedCall/rejected-open-$procs" ns/op) ns"
chain=$(field "BenchmarkChain/app-chain-$procs" ns/op)
bare=$(field "BenchmarkChain/bare-echo-$procs" ns/op)
echo "in-process chain / bare Echo: $(awk -v a="$chain" -v b="$bare" 'BEGIN {printf "%.2fx", a/b}') the time per request ($chain vs $bare ns)"

echo
echo "== over a socket with wrk (3 rounds, bare and app interleaved, 4s each, 32 connections)"
if ! command -v wrk >/dev/null; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		apt-get install -y -qq wrk >/dev/null
	else
		echo "wrk is not installed; skipping"
		exit 0
	fi
fi
go build -o "$out/appserver" ./examples/bench/appserver
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/, "", v); print v} else if (v ~ /ms$/) {sub(/ms/, "", v); print v*1000} else if (v ~ /s$/) {sub(/s/, "", v); print v*1000000}}'; }
for round in 1 2 3; do
	for mode in bare app; do
		"$out/appserver" -mode "$mode" -listen 127.0.0.1:0 >"$out/server.log" 2>&1 &
		server_pid=$!
		for _ in $(seq 100); do
			grep -q 'listening on' "$out/server.log" && break
			sleep 0.1
		done
		addr=$(awk '/listening on/ {print $3}' "$out/server.log")
		[[ -n $addr ]] || { echo "the $mode server did not start"; cat "$out/server.log"; exit 1; }
		timeout 30 wrk -t1 -c32 -d4s --latency "http://$addr/items/7" >"$out/wrk-$mode-$round.txt"
		kill "$server_pid"
		wait "$server_pid" 2>/dev/null || true
		server_pid=
	done
done
rps() { awk '/^Requests\/sec/ {print $2}' "$out"/wrk-"$1"-*.txt | median; }
p99() { awk '$1 == "99%" {print $2}' "$out"/wrk-"$1"-*.txt | to_us | median; }
bare_rps=$(rps bare) app_rps=$(rps app) bare_p99=$(p99 bare) app_p99=$(p99 app)
printf '%-5s %10s req/s   p99 %8s us   (median of 3)\n' bare "$bare_rps" "$bare_p99" app "$app_rps" "$app_p99"
echo "app chain / bare Echo: $(awk -v a="$app_rps" -v b="$bare_rps" 'BEGIN {printf "%.2fx", a/b}') the throughput, $(awk -v a="$app_p99" -v b="$bare_p99" 'BEGIN {printf "%.2fx", a/b}') the p99 latency"
