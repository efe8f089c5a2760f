#!/usr/bin/env bash
# The app tier's default middleware chain beside bare Echo, on one JSON
# handler (examples/bench/appserver: the same route, both on
# tier.HTTPServer; the chain logs every request at info, as JSON, to a sink
# that costs nothing, so the formatting is measured, not a disk).
#
# First in process (go test benchmarks, medians of GO_COUNT runs): the
# chain's cost and allocations per request over bare Echo's, and a guarded
# call's over the bare call (target: <= 300 ns and <= 2 allocs).
#
# Then over loopback with wrk: each round runs wrk -t2 -c64
# -d${DURATION}s --latency against bare Echo, the chain, and the chain with
# its access lines off (to tell their cost from the rest) in turn, the
# order reversed every other round; the medians over the rounds give the
# ratios (target: the chain >= 0.9x bare Echo's throughput), and so do the
# ratios within each round, which drift less with the machine's load. wrk
# and the servers share the machine's CPUs alike; the CPU time each server
# spends per request (from /proc, over each run) is the figure that other
# load on the machine moves least.
#
# Usage: [ROUNDS=5] [DURATION=10] [GO_COUNT=5] examples/bench/app.sh   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
GO_COUNT=${GO_COUNT:-5}
BARE_PORT=${BARE_PORT:-18595}
APP_PORT=${APP_PORT:-18596}
QUIET_PORT=${QUIET_PORT:-18597}
URL_PATH=/items/7

. examples/bench/wrk-lib.sh
bench_install

echo "building" >&2
go test -c -o "$work/app.test" ./app/
go build -o "$work/appserver" ./examples/bench/appserver

echo "go test benchmarks, $GO_COUNT runs" >&2
for _ in $(seq "$GO_COUNT"); do
	"$work/app.test" -test.run '^$' -test.bench 'Chain|GuardedCall' -test.benchmem -test.benchtime 500ms >>"$work/go.txt"
done
# gobench name unit: the median of that unit's values for the benchmark
# name (without its -GOMAXPROCS suffix).
gobench() {
	awk -v n="$1" -v u="$2" '{sub(/-[0-9]+$/, "", $1)} $1 == n {for (i = 3; i < NF; i++) if ($(i + 1) == u) print $i}' "$work/go.txt" | median
}
# over case baseline: case's ns and allocs per operation over baseline's.
over() {
	printf '%-42s %6.0f ns/op %4s allocs/op   +%.0f ns, +%s allocs over %s\n' "$1" "$(gobench "$1" ns/op)" "$(gobench "$1" allocs/op)" \
		"$(awk -v a="$(gobench "$1" ns/op)" -v b="$(gobench "$2" ns/op)" 'BEGIN {print a - b}')" \
		"$(awk -v a="$(gobench "$1" allocs/op)" -v b="$(gobench "$2" allocs/op)" 'BEGIN {print a - b}')" "${2##*/}"
}

declare -A pid
"$work/appserver" -mode bare -listen "127.0.0.1:$BARE_PORT" >"$work/bare.log" 2>&1 &
pid[bare]=$!
"$work/appserver" -mode app -listen "127.0.0.1:$APP_PORT" >"$work/app.log" 2>&1 &
pid[app]=$!
"$work/appserver" -mode app -access-log=false -listen "127.0.0.1:$QUIET_PORT" >"$work/quiet.log" 2>&1 &
pid[quiet]=$!
pids+=("${pid[@]}")
declare -A urls=(
	[bare]="http://127.0.0.1:$BARE_PORT$URL_PATH"
	[app]="http://127.0.0.1:$APP_PORT$URL_PATH"
	[quiet]="http://127.0.0.1:$QUIET_PORT$URL_PATH"
)
for name in bare app quiet; do waitfor "${urls[$name]}"; done

echo "warming up" >&2
for name in bare app quiet; do
	timeout 30 wrk -t2 -c64 -d1s "${urls[$name]}" >/dev/null
done
# ticks name: the CPU time name's server has used, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/${pid[$1]}/stat"; }
hz=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
	echo "round $r of $ROUNDS" >&2
	if ((r % 2)); then order=(bare app quiet); else order=(quiet app bare); fi
	for name in "${order[@]}"; do
		t0=$(ticks "$name")
		measure "$name" "$name" -t2 -c64 -d"${DURATION}s" --latency "${urls[$name]}"
		# The server's CPU microseconds per request of the run.
		tail -n 1 "$work/$name.txt" | awk -v t="$(($(ticks "$name") - t0))" -v hz="$hz" -v d="$DURATION" \
			'{print t / hz * 1e6 / ($1 * d)}' >>"$work/$name-cpu.txt"
	done
done

echo "in process, medians of $GO_COUNT runs:"
over BenchmarkChain/app-chain BenchmarkChain/bare-echo
over BenchmarkChain/app-chain-logged BenchmarkChain/bare-echo
over BenchmarkGuardedCall/guarded BenchmarkGuardedCall/bare
over BenchmarkGuardedCall/guarded-timeout BenchmarkGuardedCall/bare-timeout
over BenchmarkGuardedCall/guarded-parallel BenchmarkGuardedCall/bare-parallel
echo "wrk -t2 -c64 -d${DURATION}s --latency, $ROUNDS rounds, medians, $(nproc) CPUs"
printf '%-22s %10.0f req/s  p99 %8.0f us\n' "bare Echo" "$(col bare 1)" "$(col bare 2)" "app chain" "$(col app 1)" "$(col app 2)" \
	"app chain, no access" "$(col quiet 1)" "$(col quiet 2)"
# rounds name: the median of name's throughput over bare Echo's, round by round.
rounds() { paste -d' ' "$work/$1.txt" "$work/bare.txt" | awk '{print $1 / $3}' | median | xargs printf '%.3f'; }
echo "app chain throughput / bare Echo:            $(ratio "$(col app 1)" "$(col bare 1)")x (median of the rounds' own ratios: $(rounds app)x)"
echo "app chain, no access lines, / bare Echo:     $(ratio "$(col quiet 1)" "$(col bare 1)")x (median of the rounds' own ratios: $(rounds quiet)x)"
echo "app chain p99 / bare Echo p99:               $(ratio "$(col app 2)" "$(col bare 2)")x"
printf 'server CPU per request (medians): bare Echo %.1f us, app chain %.1f us, without access lines %.1f us\n' \
	"$(col bare-cpu 1)" "$(col app-cpu 1)" "$(col quiet-cpu 1)"
