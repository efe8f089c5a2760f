# Shared by lb.sh, lb-tls.sh and lb-idle.sh (source it, do not run it; it
# sources wrk-lib.sh): the two backends every front door is measured over,
# HAProxy's configuration for them, starting and stopping the proxies by
# PID, the rotated wrk rounds and the table of ratios to HAProxy.

. examples/bench/wrk-lib.sh

BACKEND1_PORT=${BACKEND1_PORT:-18591}
BACKEND2_PORT=${BACKEND2_PORT:-18592}
# shellcheck disable=SC2034 # used by the scripts that source this file
backends="http://127.0.0.1:$BACKEND1_PORT,http://127.0.0.1:$BACKEND2_PORT"

# What the table calls each proxy the scripts run.
declare -A proxy_label=(
	[haproxy]="HAProxy"
	[lb]="examples/lb"
	[lb-nethttp]="lb (net/http)"
	[lb-limited]="lb (rate limit)"
	[forwarder]="web.Forwarder"
	[caddy]="Caddy"
	[fastproxy]="bare fasthttp"
)
declare -A pid_of=()

# start name command...: runs the command in the background, its output in
# $work/name.log, its PID kept in pids (killed on exit) and pid_of[name].
start() {
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	pid_of[$name]=$!
}

# stop name: ends what start name started, by its PID, and waits for it.
stop() {
	local pid=${pid_of[$1]} kept=()
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${pids[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
	pids=("${kept[@]}")
	unset "pid_of[$1]"
}

# lb_build: the backends' server and examples/lb, built into $work.
lb_build() {
	echo "building" >&2
	go build -o "$work/jsonbackend" ./examples/bench/jsonbackend
	go build -o "$work/lb" ./examples/lb
}

# lb_has_engine: whether this examples/lb takes -engine (fasthttp, its
# default, or net/http); the scripts add a row for net/http when it does.
lb_has_engine() {
	local help
	help=$("$work/lb" -h 2>&1 || true)
	grep -q -- -engine <<<"$help"
}

# start_backends: the two backends (examples/bench/jsonbackend, plain
# net/http answering a 72-byte JSON body), answering once it returns.
start_backends() {
	start backend1 "$work/jsonbackend" -port "$BACKEND1_PORT"
	start backend2 "$work/jsonbackend" -port "$BACKEND2_PORT"
	waitfor "http://127.0.0.1:$BACKEND1_PORT/"
	waitfor "http://127.0.0.1:$BACKEND2_PORT/"
}

# haproxy_config bind-arguments [maxconn]: a whole haproxy.cfg with the
# configuration examples/lb has by default: round robin over the two
# backends, an HTTP health check of / on each every 2s (fall 3, rise 2).
haproxy_config() {
	haproxy_defaults "${2:-}"
	cat <<CONF
frontend front
	bind $1
	${2:+maxconn $2}
	default_backend backends
backend backends
	balance roundrobin
	option httpchk GET /
	server b1 127.0.0.1:$BACKEND1_PORT check inter 2s fall 3 rise 2
	server b2 127.0.0.1:$BACKEND2_PORT check inter 2s fall 3 rise 2
CONF
}

# bench_rounds name...: a one-second warm-up of each, then $ROUNDS rounds
# of wrk -t2 -c64 -d${DURATION}s --latency against ${urls[name]}, each
# round starting one further along the list, so that every proxy takes
# every place in the order in turn. urls is the calling script's.
# shellcheck disable=SC2154
bench_rounds() {
	local names=("$@") n=$# order i r
	echo "warming up" >&2
	for name in "${names[@]}"; do
		timeout 30 wrk -t2 -c64 -d1s "${urls[$name]}" >/dev/null
	done
	for r in $(seq "$ROUNDS"); do
		echo "round $r of $ROUNDS" >&2
		order=()
		for ((i = 0; i < n; i++)); do order+=("${names[(i + r - 1) % n]}"); done
		for name in "${order[@]}"; do
			measure "${proxy_label[$name]}" "$name" -t2 -c64 -d"${DURATION}s" --latency "${urls[$name]}"
		done
	done
}

# report_vs_haproxy name...: the medians of each, with its throughput and
# p99 as multiples of HAProxy's (which must have been measured). Above 1
# is better in the first ratio, worse in the second.
report_vs_haproxy() {
	local rps0 p990 rps p99
	rps0=$(col haproxy 1)
	p990=$(col haproxy 2)
	echo "wrk -t2 -c64 -d${DURATION}s --latency, $ROUNDS rounds, medians, $(nproc) CPUs"
	printf '%-16s %10s %11s %17s %15s\n' proxy req/s p99 "× HAProxy req/s" "× HAProxy p99"
	for name in "$@"; do
		rps=$(col "$name" 1)
		p99=$(col "$name" 2)
		printf '%-16s %10.0f %8.0f us %16s %14s\n' "${proxy_label[$name]}" "$rps" "$p99" \
			"$(ratio "$rps" "$rps0")" "$(ratio "$p99" "$p990")"
	done
}
