#!/usr/bin/env bash
# Benchmarks of the balancer package, with medians of 5 runs:
#   - Pick for 3 and 1,000 endpoints per policy (target: <= 100 ns, 0 allocs);
#   - a Go client through the pool's transport to 2 local backends vs a plain
#     http.Transport to 1 backend (target: >= 0.95x the plain throughput),
#     and the pool to 1 backend (its own cost alone). The backends are
#     processes the benchmark starts on 127.0.0.1 and kills by PID.
# Each result has ns/op (wall) and cpu-ns/op (CPU time of the benchmark
# process, the client only): on a shared machine the second varies less.
# Usage: examples/bench/balancer.sh [count]   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== Pick ($count runs each)"
timeout 900 go test -run '^$' -bench 'Pick' -benchtime 300ms -count "$count" ./balancer/ >"$out/pick.txt"

echo "== Throughput ($count rounds, transport and pool interleaved)"
for _ in $(seq "$count"); do
	timeout 300 go test -run '^$' -bench 'Throughput' -benchtime 3s -count 1 ./balancer/ >>"$out/throughput.txt"
done

median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

cat "$out/pick.txt" "$out/throughput.txt" >"$out/all.txt"
# benchstat when the Go module proxy is reachable; plain medians otherwise.
if ! go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$out/all.txt" 2>/dev/null; then
	for name in $(awk '/^Benchmark/ {print $1}' "$out/all.txt" | sort -u); do
		ns=$(awk -v n="$name" '$1 == n {print $3}' "$out/all.txt" | median)
		printf '%-50s %12s ns/op\n' "$name" "$ns"
	done
fi

# Throughput ratio: pool to 2 backends over plain transport to 1, from the
# medians of wall time and of CPU time per request.
field() { awk -v pat="$1" -v unit="$2" '$1 ~ pat {for (i = 2; i < NF; i++) if ($(i+1) == unit) print $i}' "$out/throughput.txt" | median; }
for unit in ns/op cpu-ns/op; do
	plain=$(field 'transport/1-backend' "$unit")
	pool=$(field 'pool/2-backends' "$unit")
	echo "throughput ratio by $unit: $(awk -v a="$plain" -v b="$pool" 'BEGIN {printf "%.3fx", a/b}') (pool $pool, plain $plain)"
done
