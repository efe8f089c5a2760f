#!/usr/bin/env bash
# Throughput and tail latency of the front door, examples/lb, beside HAProxy
# in front of the same two backends (examples/bench/jsonbackend, a 72-byte
# JSON answer), and beside web.Forwarder (examples/static -forward), the
# web tier's use of the same proxy path.
#
# HAProxy gets the configuration examples/lb has by default: round robin,
# keep-alive on both sides with connections to the backends shared
# (http-reuse always), X-Forwarded-For added, an HTTP health check of / on
# each backend every 2s (fall 3, rise 2), no logging, one thread per CPU.
# examples/lb and examples/static run with their defaults (GOMAXPROCS = the
# number of CPUs), access logs off.
#
# Each round runs wrk -t2 -c64 -d${DURATION}s --latency against the three
# in turn, the order reversed every other round; the medians over the
# rounds give the ratios. Everything runs on 127.0.0.1, on one machine:
# wrk, the proxies and the backends share its CPUs alike.
#
# Usage: [ROUNDS=5] [DURATION=10] examples/bench/lb.sh   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
BACKEND1_PORT=${BACKEND1_PORT:-18591}
BACKEND2_PORT=${BACKEND2_PORT:-18592}
HAPROXY_PORT=${HAPROXY_PORT:-18580}
LB_PORT=${LB_PORT:-18581}
FORWARD_PORT=${FORWARD_PORT:-18582}
URL_PATH=/api/item # under the prefix examples/static forwards

. examples/bench/wrk-lib.sh
bench_install haproxy

echo "building" >&2
go build -o "$work/jsonbackend" ./examples/bench/jsonbackend
go build -o "$work/lb" ./examples/lb
go build -o "$work/static" ./examples/static
mkdir "$work/public"

backends="http://127.0.0.1:$BACKEND1_PORT,http://127.0.0.1:$BACKEND2_PORT"
"$work/jsonbackend" -port "$BACKEND1_PORT" >"$work/backend1.log" 2>&1 &
pids+=($!)
"$work/jsonbackend" -port "$BACKEND2_PORT" >"$work/backend2.log" 2>&1 &
pids+=($!)

{
	haproxy_defaults
	cat <<CONF
frontend front
	bind 127.0.0.1:$HAPROXY_PORT
	default_backend backends
backend backends
	balance roundrobin
	option httpchk GET /
	server b1 127.0.0.1:$BACKEND1_PORT check inter 2s fall 3 rise 2
	server b2 127.0.0.1:$BACKEND2_PORT check inter 2s fall 3 rise 2
CONF
} >"$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
"$work/lb" -listen "127.0.0.1:$LB_PORT" -backends "$backends" >"$work/lb.log" 2>&1 &
pids+=($!)
"$work/static" -listen "127.0.0.1:$FORWARD_PORT" -root "$work/public" -access-log=false \
	-forward "/api/=$backends" >"$work/static.log" 2>&1 &
pids+=($!)

# Wait, bounded, until each answers 200 through to a backend.
for port in "$BACKEND1_PORT" "$BACKEND2_PORT" "$HAPROXY_PORT" "$LB_PORT" "$FORWARD_PORT"; do
	waitfor "http://127.0.0.1:$port$URL_PATH"
done

declare -A urls=(
	[haproxy]="http://127.0.0.1:$HAPROXY_PORT$URL_PATH"
	[lb]="http://127.0.0.1:$LB_PORT$URL_PATH"
	[forwarder]="http://127.0.0.1:$FORWARD_PORT$URL_PATH"
)
echo "warming up" >&2
for name in haproxy lb forwarder; do
	timeout 30 wrk -t2 -c64 -d1s "${urls[$name]}" >/dev/null
done
for r in $(seq "$ROUNDS"); do
	echo "round $r of $ROUNDS" >&2
	if ((r % 2)); then order=(haproxy lb forwarder); else order=(forwarder lb haproxy); fi
	for name in "${order[@]}"; do
		measure "$name" "$name" -t2 -c64 -d"${DURATION}s" --latency "${urls[$name]}"
	done
done

echo "wrk -t2 -c64 -d${DURATION}s --latency, $ROUNDS rounds, medians, $(nproc) CPUs"
for name in haproxy lb forwarder; do
	printf '%-10s %10.0f req/s  p99 %8.0f us\n' "$name" "$(col "$name" 1)" "$(col "$name" 2)"
done
echo "examples/lb throughput / HAProxy:    $(ratio "$(col lb 1)" "$(col haproxy 1)")x"
echo "examples/lb p99 / HAProxy p99:       $(ratio "$(col lb 2)" "$(col haproxy 2)")x"
echo "web.Forwarder / examples/lb throughput: $(ratio "$(col forwarder 1)" "$(col lb 1)")x"
