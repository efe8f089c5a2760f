#!/usr/bin/env bash
# Throughput and tail latency of the front door, examples/lb, side by side
# in one run with the other proxies one could put in its place, all in
# front of the same two backends (examples/bench/jsonbackend, a 72-byte
# JSON answer):
#
#   HAProxy        round robin, keep-alive on both sides with connections to
#                  the backends shared (http-reuse always), X-Forwarded-For
#                  added, an HTTP health check of / on each backend every 2s
#                  (fall 3, rise 2), no logging, one thread per CPU: the
#                  configuration examples/lb has by default.
#   examples/lb    with its defaults (GOMAXPROCS = the number of CPUs,
#                  access log off); when it takes -engine, a second row
#                  "lb (net/http)" runs it with -engine net/http, and
#                  "lb (rate limit)" with a per-client rate limit this
#                  load never reaches (what counting costs).
#   web.Forwarder  examples/static -forward, the web tier's use of the
#                  proxy path, access log off.
#   Caddy          reverse_proxy, round robin over the two backends,
#                  keep-alive (up to 64 idle connections a backend), no
#                  access log, admin API off, GOMAXPROCS its default.
#                  Installed with go install when missing.
#   bare fasthttp  examples/bench/fastproxy: fasthttp's server and clients,
#                  round robin and X-Forwarded-For, nothing else: the
#                  engine's own limit, which examples/lb's features should
#                  not fall measurably below.
#
# Each round runs wrk -t2 -c64 -d${DURATION}s --latency against each in
# turn, every round starting one further along the list; the medians over
# the rounds give the ratios to HAProxy. Everything runs on 127.0.0.1, on
# one machine: wrk, the proxies and the backends share its CPUs alike, so
# run it on an otherwise idle machine.
#
# Usage: [ROUNDS=5] [DURATION=10] examples/bench/lb.sh   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
HAPROXY_PORT=${HAPROXY_PORT:-18580}
LB_PORT=${LB_PORT:-18581}
FORWARD_PORT=${FORWARD_PORT:-18582}
FASTPROXY_PORT=${FASTPROXY_PORT:-18583}
CADDY_PORT=${CADDY_PORT:-18584}
LB_NETHTTP_PORT=${LB_NETHTTP_PORT:-18585}
LB_LIMITED_PORT=${LB_LIMITED_PORT:-18586}
CADDY_VERSION=v2.11.9
URL_PATH=/api/item # under the prefix examples/static forwards

. examples/bench/lb-lib.sh
bench_install haproxy

# caddy_binary prints the path of caddy, from PATH or Go's bin directory,
# installing it there first when it is in neither.
caddy_binary() {
	local gobin
	gobin=$(go env GOBIN)
	gobin=${gobin:-$(go env GOPATH)/bin}
	if command -v caddy >/dev/null; then
		command -v caddy
		return
	fi
	if [[ ! -x $gobin/caddy ]]; then
		echo "installing caddy $CADDY_VERSION" >&2
		go install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION" || return 1
	fi
	echo "$gobin/caddy"
}

lb_build
go build -o "$work/static" ./examples/static
go build -o "$work/fastproxy" ./examples/bench/fastproxy
caddy=$(caddy_binary)
mkdir "$work/public"
start_backends

haproxy_config "127.0.0.1:$HAPROXY_PORT" >"$work/haproxy.cfg"
cat >"$work/Caddyfile" <<CONF
{
	admin off
	auto_https off
}
http://127.0.0.1:$CADDY_PORT {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$BACKEND1_PORT 127.0.0.1:$BACKEND2_PORT {
		lb_policy round_robin
		transport http {
			keepalive 60s
			keepalive_idle_conns_per_host 64
		}
	}
}
CONF

names=(haproxy lb)
start haproxy haproxy -f "$work/haproxy.cfg" -db
start lb "$work/lb" -listen "127.0.0.1:$LB_PORT" -backends "$backends"
if lb_has_engine; then
	names+=(lb-nethttp)
	start lb-nethttp "$work/lb" -engine net/http -listen "127.0.0.1:$LB_NETHTTP_PORT" -backends "$backends"
fi
# The same node with a per-client rate limit that this load never reaches:
# what counting every request costs.
names+=(lb-limited)
start lb-limited "$work/lb" -rate-limit 1000000 -rate-burst 1000000 -listen "127.0.0.1:$LB_LIMITED_PORT" -backends "$backends"
names+=(forwarder caddy fastproxy)
start forwarder "$work/static" -listen "127.0.0.1:$FORWARD_PORT" -root "$work/public" -access-log=false \
	-forward "/api/=$backends"
start caddy "$caddy" run --config "$work/Caddyfile" --adapter caddyfile
start fastproxy "$work/fastproxy" -listen "127.0.0.1:$FASTPROXY_PORT" -backends "$backends"

declare -A urls=(
	[haproxy]="http://127.0.0.1:$HAPROXY_PORT$URL_PATH"
	[lb]="http://127.0.0.1:$LB_PORT$URL_PATH"
	[lb-nethttp]="http://127.0.0.1:$LB_NETHTTP_PORT$URL_PATH"
	[lb-limited]="http://127.0.0.1:$LB_LIMITED_PORT$URL_PATH"
	[forwarder]="http://127.0.0.1:$FORWARD_PORT$URL_PATH"
	[caddy]="http://127.0.0.1:$CADDY_PORT$URL_PATH"
	[fastproxy]="http://127.0.0.1:$FASTPROXY_PORT$URL_PATH"
)
# Wait, bounded, until each answers 200 through to a backend.
for name in "${names[@]}"; do waitfor "${urls[$name]}"; done

bench_rounds "${names[@]}"
report_vs_haproxy "${names[@]}"
echo "examples/lb × bare fasthttp: $(ratio "$(col lb 1)" "$(col fastproxy 1)") req/s, $(ratio "$(col lb 2)" "$(col fastproxy 2)") p99"
echo "examples/lb with a rate limit never hit × without: $(ratio "$(col lb-limited 1)" "$(col lb 1)") req/s, $(ratio "$(col lb-limited 2)" "$(col lb 2)") p99"
