#!/usr/bin/env bash
# HTTP/2 rapid reset (CVE-2023-44487) against examples/lb and HAProxy, each
# a TLS front door with HTTP/2 over one JSON backend: the attacker (the
# balancer tests' own, run as a process: 8 connections opening and
# resetting streams as fast as the node reads them, connecting again when
# sent away, for 3 s) beside a bystander sending one request after another
# over HTTP/2 with curl. Reported per proxy: RSS before and peak RSS
# (VmHWM), the bystander's requests, median and slowest.
#
# Usage: [ROUNDS=3] examples/bench/rapidreset.sh   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
BACKEND_PORT=${BACKEND_PORT:-18691}
HAPROXY_PORT=${HAPROXY_PORT:-18680}
LB_PORT=${LB_PORT:-18681}

. examples/bench/wrk-lib.sh
bench_install haproxy

echo "building" >&2
go build -o "$work/jsonbackend" ./examples/bench/jsonbackend
go build -o "$work/lb" ./examples/lb
go test -c -o "$work/balancer.test" ./balancer
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/haproxy.pem"

"$work/jsonbackend" -port "$BACKEND_PORT" >"$work/backend.log" 2>&1 &
pids+=($!)
{
	haproxy_defaults
	cat <<CONF
frontend front
	bind 127.0.0.1:$HAPROXY_PORT ssl crt $work/haproxy.pem alpn h2,http/1.1
	default_backend backends
backend backends
	server b1 127.0.0.1:$BACKEND_PORT
CONF
} >"$work/haproxy.cfg"

# run_one NAME PID PORT: one attack on the proxy PID listening on PORT.
run_one() {
	local name=$1 pid=$2 port=$3 url="https://127.0.0.1:$3/api/item"
	local before peak result="$work/flood-$name"
	before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
	rm -f "$result"
	THREETIER_BALANCER_TEST_FLOOD="127.0.0.1:$port,$work/cert.pem,$result" "$work/balancer.test" -test.run='^$' >/dev/null &
	local attacker=$!
	local end=$((SECONDS + 3))
	: >"$work/took-$name"
	while ((SECONDS < end)); do
		curl -s -o /dev/null --http2 --cacert "$work/cert.pem" -w '%{time_total}\n' --max-time 10 "$url" >>"$work/took-$name" || echo 10 >>"$work/took-$name"
	done
	wait "$attacker" || true
	peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
	printf '%s %d %d %d %s %s\n' "$name" "$before" "$peak" "$(wc -l <"$work/took-$name")" \
		"$(median <"$work/took-$name")" "$(sort -n "$work/took-$name" | tail -1)"
}

echo "proxy rss_before_kB peak_rss_kB bystander_requests median_s slowest_s"
for r in $(seq "$ROUNDS"); do
	# A fresh process each round: VmHWM is the peak since it started.
	haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
	hp=$!
	"$work/lb" -listen "127.0.0.1:$LB_PORT" -backends "http://127.0.0.1:$BACKEND_PORT" \
		-tls-cert "$work/cert.pem" -tls-key "$work/key.pem" -access-log=false >"$work/lb.log" 2>&1 &
	lp=$!
	pids+=("$hp" "$lp")
	for port in "$HAPROXY_PORT" "$LB_PORT"; do
		for _ in $(seq 100); do
			curl -s -o /dev/null --cacert "$work/cert.pem" "https://127.0.0.1:$port/api/item" && break
			sleep 0.1
		done
	done
	run_one haproxy "$hp" "$HAPROXY_PORT"
	run_one lb "$lp" "$LB_PORT"
	kill "$hp" "$lp"
	wait "$hp" "$lp" 2>/dev/null || true
done
