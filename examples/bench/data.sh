#!/usr/bin/env bash
# Benchmarks the data tier against raw pgx on the same PostgreSQL and prints
# time-per-operation ratios (data tier / pgx; lower is better, 1.00 = par):
#
#   primary-key read     target <= 1.10
#   single-row insert    target <= 1.10
#   10,000-row bulk      target <= 1.50  (data.BulkInsert vs pgx CopyFrom)
#
# Plain GORM (gorm.Open, no default write transaction) is shown beside the
# data tier, and GORM's CreateInBatches beside BulkInsert, so that what the
# data tier adds and what GORM itself costs can be told apart.
#
# Each round runs every benchmark once, data tier and pgx back to back, so
# the two sides of a ratio see the same machine load; the figure printed is
# the median of the per-round ratios.
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
	timeout 600 "$work/data.test" -test.run '^$' -test.bench '^(BenchmarkPKRead|BenchmarkInsert|BenchmarkBulkInsert10k)$' \
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

# Per round: ratio of each benchmark's data and gorm_batches figures to its
# pgx figure. Then medians across rounds.
awk '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function flush(   b, k) {
	for (k in ns) {
		split(k, p, SUBSEP)
		if (p[2] != "pgx" && ((p[1], "pgx") in ns)) ratios[p[1], p[2]] = ratios[p[1], p[2]] " " ns[k] / ns[p[1], "pgx"]
		times[p[1], p[2]] = times[p[1], p[2]] " " ns[k]
	}
	delete ns
}
/^round/ { flush(); next }
/^Benchmark/ {
	split($1, parts, "/")
	bench = parts[1]; sub(/^Benchmark/, "", bench)
	impl = parts[2]; sub(/^impl=/, "", impl); sub(/-[0-9]+$/, "", impl)
	ns[bench, impl] = $3
}
END {
	flush()
	printf "%-16s %-14s %14s %14s %10s\n", "benchmark", "impl", "median ns/op", "pgx ns/op", "ratio"
	n = split("PKRead Insert BulkInsert10k", order, " ")
	for (i = 1; i <= n; i++) {
		b = order[i]
		m = split("data gorm gorm_batches", impls, " ")
		for (j = 1; j <= m; j++) {
			if (!((b, impls[j]) in ratios)) continue
			printf "%-16s %-14s %14.0f %14.0f %9.2fx\n", b, impls[j], median(times[b, impls[j]]), median(times[b, "pgx"]), median(ratios[b, impls[j]])
		}
	}
}' "$work/raw.txt"

if [[ -n ${OUT:-} ]]; then cp "$work/raw.txt" "$OUT"; fi
