#!/usr/bin/env bash
# The front door over HTTPS with keep-alive, beside HAProxy: lb.sh's
# comparison with TLS on the client side. Both terminate TLS with the same
# self-signed ECDSA P-256 certificate, made here with openssl, and proxy in
# plain HTTP to the same two backends (examples/bench/jsonbackend):
#
#   HAProxy      lb.sh's configuration with bind ... ssl crt <pem>
#                alpn http/1.1.
#   examples/lb  its defaults with -tls-cert and -tls-key (it offers h2 and
#                http/1.1 by ALPN; wrk asks for neither, so speaks
#                HTTP/1.1); when it takes -engine, a second row
#                "lb (net/http)" runs it with -engine net/http.
#
# wrk keeps its 64 connections open, so the handshakes are few: what is
# measured is encryption and proxying. Rounds, medians and ratios as in
# lb.sh.
#
# Usage: [ROUNDS=5] [DURATION=10] examples/bench/lb-tls.sh   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
HAPROXY_PORT=${HAPROXY_PORT:-18580}
LB_PORT=${LB_PORT:-18581}
LB_NETHTTP_PORT=${LB_NETHTTP_PORT:-18585}
URL_PATH=/api/item

. examples/bench/lb-lib.sh
bench_install haproxy openssl

lb_build
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/haproxy.pem" # HAProxy takes both in one file
start_backends

haproxy_config "127.0.0.1:$HAPROXY_PORT ssl crt $work/haproxy.pem alpn http/1.1" >"$work/haproxy.cfg"
tls=(-tls-cert "$work/cert.pem" -tls-key "$work/key.pem")
names=(haproxy lb)
start haproxy haproxy -f "$work/haproxy.cfg" -db
start lb "$work/lb" -listen "127.0.0.1:$LB_PORT" "${tls[@]}" -backends "$backends"
if lb_has_engine; then
	names+=(lb-nethttp)
	start lb-nethttp "$work/lb" -engine net/http -listen "127.0.0.1:$LB_NETHTTP_PORT" "${tls[@]}" -backends "$backends"
fi

declare -A urls=(
	[haproxy]="https://127.0.0.1:$HAPROXY_PORT$URL_PATH"
	[lb]="https://127.0.0.1:$LB_PORT$URL_PATH"
	[lb-nethttp]="https://127.0.0.1:$LB_NETHTTP_PORT$URL_PATH"
)
for name in "${names[@]}"; do waitfor "${urls[$name]}" --cacert "$work/cert.pem"; done

bench_rounds "${names[@]}"
echo "HTTPS with keep-alive, ECDSA P-256 certificate"
report_vs_haproxy "${names[@]}"
