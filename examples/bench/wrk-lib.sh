# Shared by lb.sh, shop.sh and rapidreset.sh (source it, do not run it): a work directory
# and the processes a script starts, killed by PID on exit; the tools the
# benchmarks need; a bounded wait for a server to answer; one wrk run with
# its throughput and p99 kept; medians and ratios.

work=$(mktemp -d)
pids=()
bench_cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$work"
}
trap bench_cleanup EXIT

# bench_install tool...: installs from Debian packages what is missing, and
# refuses to measure beside another wrk.
bench_install() {
	local need=()
	for tool in wrk curl "$@"; do command -v "$tool" >/dev/null || need+=("$tool"); done
	if ((${#need[@]})); then
		echo "installing ${need[*]}" >&2
		apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
	fi
	if pgrep -x wrk >/dev/null; then
		echo "another wrk is running: the figures would be meaningless" >&2
		pgrep -a wrk >&2
		exit 1
	fi
}

# haproxy_defaults [maxconn] prints the global and defaults sections every
# HAProxy the benchmarks run starts with: one thread per CPU, keep-alive on
# both sides with connections to the backends shared (http-reuse always),
# X-Forwarded-For added, no logging. (examples/lb's -max-conns is 10000,
# but HAProxy needs two descriptors a connection and the limit here may be
# 20000: the default 8000 are plenty for 64 clients. lb-idle.sh asks for
# more, and then HAProxy is let start below the two descriptors a
# connection it reserves, as idle clients hold only one each.)
haproxy_defaults() {
	cat <<CONF
global
	nbthread $(nproc)
	maxconn ${1:-8000}
	${1:+no strict-limits}
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
	option forwardfor
	http-reuse always
CONF
}

# waitfor url [curl-args...]: until it answers 2xx, for at most a minute, or
# a process died. (lb-tls.sh passes --cacert for its self-signed certificate.)
waitfor() {
	local deadline=$((SECONDS + 60))
	until curl -fsS -o /dev/null "$@" 2>/dev/null; do
		for pid in "${pids[@]}"; do
			if ! kill -0 "$pid" 2>/dev/null; then
				echo "a process died waiting for $1" >&2
				tail -n 20 "$work"/*.log >&2 || true
				exit 1
			fi
		done
		if ((SECONDS > deadline)); then
			echo "nothing answers on $1" >&2
			tail -n 20 "$work"/*.log >&2 || true
			exit 1
		fi
		sleep 0.2
	done
}

# measure label file wrk-args...: one wrk run; "rps p99_us" is appended to
# $work/file.txt and printed. An error or a non-2xx answer stops the script.
measure() {
	local label=$1 file=$2 out
	shift 2
	out=$(timeout $((DURATION + 30)) wrk "$@")
	if grep -qE 'Non-2xx or 3xx|Socket errors' <<<"$out"; then
		echo "errors from $label:" >&2
		echo "$out" >&2
		exit 1
	fi
	awk '
		/^Requests\/sec:/ {rps = $2}
		$1 == "99%" {
			v = $2; mult = 1
			if (v ~ /us$/) {sub(/us$/, "", v)}
			else if (v ~ /ms$/) {sub(/ms$/, "", v); mult = 1000}
			else if (v ~ /s$/) {sub(/s$/, "", v); mult = 1000000}
			p99 = v * mult
		}
		END {print rps, p99}' <<<"$out" >>"$work/$file.txt"
	tail -n 1 "$work/$file.txt" | awk -v n="$label" '{printf "  %-16s %9.0f req/s  p99 %8.0f us\n", n, $1, $2}' >&2
}

median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# col file n: the median of column n (1 throughput, 2 p99) of $work/file.txt.
col() { awk -v c="$2" '{print $c}' "$work/$1.txt" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
