#!/usr/bin/env bash
# Throughput of examples/static beside nginx over the same files:
# wrk -t2 -c64 against 1 KiB, 64 KiB and 1 MiB files and 304 revalidations
# (If-None-Match with each server's own ETag of the 1 KiB file), rounds
# alternating between the servers (and their order), medians and the
# static/nginx ratio. Both servers get WORKERS workers (nginx
# worker_processes, GOMAXPROCS; default the number of CPUs) on the same
# machine as wrk; everything on 127.0.0.1.
# Targets: 1 KiB >= 0.9x, 64 KiB >= 1.0x, 1 MiB >= 1.0x, 304 >= 0.9x.
# A third server, examples/bench/bareserver (plain net/http answering from
# memory with the same headers, no routing or middleware), runs in the
# same rotation: its ratio to nginx is the most any net/http server gets
# here, and static's ratio to it is what the web tier itself costs.
# Usage: [WORKERS=n] examples/bench/web.sh [rounds] [seconds]   (defaults 5 and 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
secs=${2:-5}
source examples/bench/web-lib.sh
web_install wrk
web_tree
web_start
BARE_PORT=${BARE_PORT:-18482}
BARE_URL="http://127.0.0.1:$BARE_PORT"
go build -o "$work/bareserver" ./examples/bench/bareserver
GOMAXPROCS=$WORKERS "$work/bareserver" -listen "127.0.0.1:$BARE_PORT" -root "$work/public" 2>"$work/bare.log" &
pids+=($!)
deadline=$((SECONDS + 60))
until curl -s -o /dev/null "$BARE_URL/small.txt"; do
	if ((SECONDS > deadline)); then
		echo "bareserver did not start" >&2
		cat "$work/bare.log" >&2
		exit 1
	fi
	sleep 0.2
done

etag_of() { curl -s -o /dev/null -D - -I "$1" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" {print $2}'; }

# rps server case -> requests per second of one wrk run.
rps() {
	local base=$1 kase=$2 args=(-t2 -c64 -d"${secs}s")
	case $kase in
	1k) args+=("$base/1k.bin") ;;
	64k) args+=("$base/64k.bin") ;;
	1m) args+=("$base/1m.bin") ;;
	304) args+=(-H "If-None-Match: $(etag_of "$base/1k.bin")" "$base/1k.bin") ;;
	esac
	local out
	out=$(timeout $((secs + 30)) wrk "${args[@]}")
	if grep -q 'Non-2xx or 3xx' <<<"$out"; then
		echo "unexpected statuses from $base ($kase):" >&2
		echo "$out" >&2
		exit 1
	fi
	awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}

median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

cases=(1k 64k 1m 304)
echo "warming up" >&2
for kase in "${cases[@]}"; do
	secs_saved=$secs
	secs=1
	rps "$NGINX_URL" "$kase" >/dev/null
	rps "$STATIC_URL" "$kase" >/dev/null
	rps "$BARE_URL" "$kase" >/dev/null
	secs=$secs_saved
done

for r in $(seq "$rounds"); do
	for kase in "${cases[@]}"; do
		if ((r % 2)); then order=(nginx static bare); else order=(bare static nginx); fi
		for srv in "${order[@]}"; do
			case $srv in
			nginx) url=$NGINX_URL ;;
			static) url=$STATIC_URL ;;
			bare) url=$BARE_URL ;;
			esac
			v=$(rps "$url" "$kase")
			echo "$v" >>"$work/$srv-$kase"
			echo "round $r $kase $srv: $v req/s" >&2
		done
	done
done

echo
echo "wrk -t2 -c64 -d${secs}s, $rounds alternating rounds, medians (nginx $(nginx -v 2>&1 | cut -d/ -f2), examples/static at $(git rev-parse --short HEAD), $WORKERS workers each, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
# ratio is of the medians; "rounds" is the spread of the ratio within
# single rounds, which shows how much the machine's noise moved it.
printf '%-6s %10s %10s %10s %8s %7s %13s %10s %12s\n' case nginx static net/http ratio target rounds "net/http" "static/"
printf '%-6s %10s %10s %10s %8s %7s %13s %10s %12s\n' "" "req/s" "req/s" "req/s" "" "" "" "/nginx" "net/http"
declare -A target=([1k]=0.9 [64k]=1.0 [1m]=1.0 [304]=0.9)
for kase in "${cases[@]}"; do
	n=$(median <"$work/nginx-$kase")
	s=$(median <"$work/static-$kase")
	b=$(median <"$work/bare-$kase")
	spread=$(paste "$work/static-$kase" "$work/nginx-$kase" | awk '{r = $1 / $2; if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r} END {printf "%.2f-%.2fx", lo, hi}')
	printf '%-6s %10.0f %10.0f %10.0f %7.2fx %6.1fx %13s %9.2fx %11.2fx\n' "$kase" "$n" "$s" "$b" \
		"$(awk -v a="$s" -v b="$n" 'BEGIN {print a / b}')" "${target[$kase]}" "$spread" \
		"$(awk -v a="$b" -v b="$n" 'BEGIN {print a / b}')" "$(awk -v a="$s" -v b="$b" 'BEGIN {print a / b}')"
done
