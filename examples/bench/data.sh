#!/usr/bin/env bash
# Benchmarks the data tier against raw pgx on the same PostgreSQL and prints
# time-per-operation ratios (data tier / pgx; lower is better, 1.00 = par):
#
#   primary-key read     target <= 1.10
#   single-row insert    target <= 1.10  (synchronous_commit=off: the
#                                          client paths, not the disk)
#   10,000-row bulk      target <= 1.50  (data.BulkInsert vs pgx CopyFrom)
#
# Plain GORM (gorm.Open, no default write transaction) is shown beside the
# data tier, and GORM's CreateInBatches beside BulkInsert, so that what the
# data tier adds and what GORM itself costs can be told apart.
#
# Each round runs every benchmark once, data tier and pgx back to back, so
# the two sides of a ratio see the same machine load; every other round
# runs the implementations in reverse order, since which of two runs first
# moves their ratio too. The figures printed are medians (of ns/op, and of
# the per-round ratios). "cpu ratio" compares the benchmark process's CPU
# time per operation (the client's cost, driver goroutines included), which
# neighbours' load moves less than wall time. "typed" is data.Get and
# data.Insert, the data tier's typed fast path.
#
#   examples/bench/data.sh              # 6 rounds
#   ROUNDS=10 BENCHTIME=2s examples/bench/data.sh
#   OUT=raw.txt examples/bench/data.sh  # also keep the raw benchmark lines
#
# THREETIER_TEST_POSTGRES names the server (default: the local one); each
# run works in a schema of its own and drops it. Only 127.0.0.1 is used.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-6}
BENCHTIME=${BENCHTIME:-1s}
export THREETIER_TEST_POSTGRES=${THREETIER_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}

case "$THREETIER_TEST_POSTGRES" in
*@127.0.0.1:* | *@127.0.0.1/* | *//127.0.0.1:* | *//127.0.0.1/*) ;;
*)
	echo "data.sh: THREETIER_TEST_POSTGRES must point at 127.0.0.1" >&2
	exit 2
	;;
esac
command -v go >/dev/null || {
	echo "data.sh: needs the Go toolchain" >&2
	exit 2
}

work=$(mktemp -d)
pid=
cleanup() {
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go test -c -o "$work/data.test" ./data
echo "go $(go env GOVERSION), $(nproc) CPUs, $ROUNDS rounds of -benchtime $BENCHTIME"
echo "note: a shared, noisy machine moves single figures a lot; read the medians"

for ((r = 1; r <= ROUNDS; r++)); do
	echo "round $r" >>"$work/raw.txt"
	reverse=
	if ((r % 2 == 0)); then reverse=1; fi
	THREETIER_BENCH_REVERSE=$reverse timeout 600 "$work/data.test" -test.run '^$' -test.bench '^(BenchmarkPKRead|BenchmarkInsert|BenchmarkBulkInsert10k)$' \
		-test.benchtime "$BENCHTIME" -test.benchmem >"$work/round.txt" 2>&1 &
	pid=$!
	wait "$pid" || {
		cat "$work/round.txt" >&2
		exit 1
	}
	pid=
	grep '^Benchmark' "$work/round.txt" >>"$work/raw.txt"
	printf '.'
done
echo

# Per round: ratio of each implementation's figures to pgx's, for wall time
# (ns/op) and the process's CPU time (cpu-ns/op). Then medians across rounds.
awk '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function flush(   k, p) {
	for (k in ns) {
		split(k, p, SUBSEP)
		times[p[1], p[2]] = times[p[1], p[2]] " " ns[k]
		if (p[2] == "pgx" || !((p[1], "pgx") in ns)) continue
		ratios[p[1], p[2]] = ratios[p[1], p[2]] " " ns[k] / ns[p[1], "pgx"]
		if (cpu[p[1], "pgx"] > 0) cpuratios[p[1], p[2]] = cpuratios[p[1], p[2]] " " cpu[k] / cpu[p[1], "pgx"]
	}
	delete ns
	delete cpu
}
/^round/ { flush(); next }
/^Benchmark/ {
	split($1, parts, "/")
	bench = parts[1]; sub(/^Benchmark/, "", bench)
	impl = parts[2]; sub(/^impl=/, "", impl); sub(/-[0-9]+$/, "", impl)
	for (i = 3; i < NF; i += 2) {
		if ($(i + 1) == "ns/op") ns[bench, impl] = $i
		if ($(i + 1) == "cpu-ns/op") cpu[bench, impl] = $i
	}
}
END {
	flush()
	printf "%-14s %-13s %13s %13s %11s %11s\n", "benchmark", "impl", "ns/op", "pgx ns/op", "time ratio", "cpu ratio"
	n = split("PKRead Insert BulkInsert10k", order, " ")
	for (i = 1; i <= n; i++) {
		b = order[i]
		m = split("data typed gorm gorm_batches", impls, " ")
		for (j = 1; j <= m; j++) {
			if (!((b, impls[j]) in ratios)) continue
			printf "%-14s %-13s %13.0f %13.0f %10.2fx %10.2fx\n", b, impls[j], median(times[b, impls[j]]), median(times[b, "pgx"]), median(ratios[b, impls[j]]), median(cpuratios[b, impls[j]])
		}
	}
}' "$work/raw.txt"

if [[ -n ${OUT:-} ]]; then cp "$work/raw.txt" "$OUT"; fi
