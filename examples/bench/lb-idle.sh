#!/usr/bin/env bash
# Memory of the front door holding many idle keep-alive client connections,
# beside HAProxy holding as many: HAProxy, then examples/lb (and, when it
# takes -engine, examples/lb with -engine net/http), each started afresh in
# front of the same two backends (examples/bench/jsonbackend) with lb.sh's
# configuration and room for $CONNS connections.
#
# For each proxy in turn, examples/bench/idleclients opens $CONNS
# connections to it, sends one GET on each, reads the answer and holds them
# all open, idle. Once every one has had its answer, the proxy's resident
# memory is read from /proc/PID/status (VmRSS) and its established client
# connections are counted with ss, to show that none was closed; then the
# clients and the proxy are stopped. Both proxies close a connection idle
# for 60s, far longer than a reading takes.
#
# Each connection takes one descriptor in the clients and one in the
# proxy: the script raises ulimit -n as far as it is allowed and stops if
# that is too little for $CONNS.
#
# Usage: [CONNS=10000] examples/bench/lb-idle.sh   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${CONNS:-10000}
HAPROXY_PORT=${HAPROXY_PORT:-18580}
LB_PORT=${LB_PORT:-18581}
LB_NETHTTP_PORT=${LB_NETHTTP_PORT:-18585}
URL_PATH=/api/item

. examples/bench/lb-lib.sh
bench_install haproxy

# Room for the clients plus the checks and backend connections; examples/lb
# keeps an eighth of its descriptor limit in reserve beside -max-conns.
room=$((CONNS + 1000))
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < room * 8 / 7)); then
	echo "ulimit -n is $(ulimit -n): $CONNS connections need at least $((room * 8 / 7)) (lower CONNS)" >&2
	exit 1
fi

lb_build
go build -o "$work/idleclients" ./examples/bench/idleclients
start_backends

haproxy_config "127.0.0.1:$HAPROXY_PORT" "$room" >"$work/haproxy.cfg"
names=(haproxy lb)
if lb_has_engine; then names+=(lb-nethttp); fi
declare -A port=([haproxy]=$HAPROXY_PORT [lb]=$LB_PORT [lb-nethttp]=$LB_NETHTTP_PORT)
declare -A command=(
	[haproxy]="haproxy -f $work/haproxy.cfg -db"
	[lb]="$work/lb -listen 127.0.0.1:$LB_PORT -max-conns $room -backends $backends"
	[lb-nethttp]="$work/lb -engine net/http -listen 127.0.0.1:$LB_NETHTTP_PORT -max-conns $room -backends $backends"
)

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
established() { ss -Htn state established "( sport = :$1 )" | wc -l; }

# awaitready: until the clients print "ready", for at most two minutes, or
# they or the proxy died.
awaitready() {
	local name=$1 deadline=$((SECONDS + 120))
	until grep -q '^ready' "$work/clients.log"; do
		if ! kill -0 "${pid_of[clients]}" 2>/dev/null || ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
			echo "the clients or $name died before all $CONNS connections were open" >&2
			tail -n 20 "$work/clients.log" "$work/$name.log" >&2 || true
			exit 1
		fi
		if ((SECONDS > deadline)); then
			echo "$CONNS connections to $name not open after two minutes" >&2
			exit 1
		fi
		sleep 0.2
	done
}

declare -A rest held open
for name in "${names[@]}"; do
	echo "$name: opening $CONNS connections" >&2
	# shellcheck disable=SC2086 # the commands above are split on purpose
	start "$name" ${command[$name]}
	waitfor "http://127.0.0.1:${port[$name]}$URL_PATH"
	rest[$name]=$(rss_kb "${pid_of[$name]}")
	start clients "$work/idleclients" -url "http://127.0.0.1:${port[$name]}$URL_PATH" -conns "$CONNS"
	awaitready "$name"
	held[$name]=$(rss_kb "${pid_of[$name]}")
	open[$name]=$(established "${port[$name]}")
	stop clients
	stop "$name"
done

echo "$CONNS idle keep-alive connections, one request each; VmRSS of the proxy, $(nproc) CPUs"
printf '%-16s %12s %14s %16s %10s\n' proxy "at rest" "with them" "per connection" "open"
for name in "${names[@]}"; do
	printf '%-16s %9s kB %11s kB %13s kB %10s\n' "${proxy_label[$name]}" "${rest[$name]}" "${held[$name]}" \
		"$(awk -v a="${held[$name]}" -v b="${rest[$name]}" -v n="$CONNS" 'BEGIN {printf "%.2f", (a - b) / n}')" \
		"${open[$name]}"
done
for name in "${names[@]:1}"; do
	echo "${proxy_label[$name]} RSS / HAProxy RSS with them open: $(ratio "${held[$name]}" "${held[haproxy]}")x"
done
