#!/usr/bin/env bash
# Throughput of examples/static (on its default engine, fasthttp, and on
# net/http) beside nginx, examples/bench/bareserver, net/http's FileServer
# (examples/bench/fileserver) and fasthttp's FS (examples/bench/fastfs, the
# fast engine's limit) over the same files:
# wrk -t2 -c64 against 1 KiB, 64 KiB and 1 MiB files and a 304
# revalidation of the 1 KiB file (If-None-Match with each server's own
# ETag; If-Modified-Since for the FileServer, which sends no ETag).
#
# nginx runs as web-lib.sh configures it (sendfile, tcp_nopush,
# open_file_cache, no access log) with worker_processes WORKERS, and the
# Go servers with GOMAXPROCS=WORKERS; WORKERS defaults to the number of
# CPUs (2 here), so every server may use the same cores. bareserver is
# plain net/http answering from memory with the same headers: the most a
# net/http server gets here, and static/bareserver what the web tier
# costs on top. Nothing is pinned: wrk and the servers share the CPUs.
#
# Each round measures every case against every server, the order
# reversed every other round; the table gives medians over the rounds and
# their ratios.
# Targets: static/nginx 1 MiB >= 1.0, 64 KiB >= 0.9; static/bare 1 KiB
# and 304 >= 0.95; static/FileServer >= 1.0 everywhere.
#
# Usage: [ROUNDS=5] [DURATION=5] [WORKERS=n] [CASES="1k 64k 1m 304"] examples/bench/web.sh   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
BARE_PORT=${BARE_PORT:-18482}
FILESERVER_PORT=${FILESERVER_PORT:-18483}
FASTFS_PORT=${FASTFS_PORT:-18484}
STATICSTD_PORT=${STATICSTD_PORT:-18485}

. examples/bench/web-lib.sh
bench_install nginx
web_tree
echo "building" >&2
web_start
go build -o "$work/bareserver" ./examples/bench/bareserver
go build -o "$work/fileserver" ./examples/bench/fileserver
go build -o "$work/fastfs" ./examples/bench/fastfs
GOMAXPROCS=$WORKERS "$work/bareserver" -listen "127.0.0.1:$BARE_PORT" -root "$work/public" >"$work/bare.log" 2>&1 &
pids+=($!)
GOMAXPROCS=$WORKERS "$work/fileserver" -listen "127.0.0.1:$FILESERVER_PORT" -root "$work/public" >"$work/fileserver.log" 2>&1 &
pids+=($!)
GOMAXPROCS=$WORKERS "$work/fastfs" -listen "127.0.0.1:$FASTFS_PORT" -root "$work/public" >"$work/fastfs.log" 2>&1 &
pids+=($!)
# examples/static again, on net/http.
GOMAXPROCS=$WORKERS "$work/static" -engine net/http -listen "127.0.0.1:$STATICSTD_PORT" -root "$work/public" -access-log=false -admin - 2>"$work/static-std.log" &
pids+=($!)

servers=(nginx static staticstd fastfs bare fileserver)
declare -A urls=(
	[nginx]=$NGINX_URL
	[static]=$STATIC_URL
	[staticstd]="http://127.0.0.1:$STATICSTD_PORT"
	[fastfs]="http://127.0.0.1:$FASTFS_PORT"
	[bare]="http://127.0.0.1:$BARE_PORT"
	[fileserver]="http://127.0.0.1:$FILESERVER_PORT"
)
for srv in staticstd fastfs bare fileserver; do waitfor "${urls[$srv]}/1k.bin"; done

# header url name: the value of one response header of a GET of url.
header() { curl -s -o /dev/null -D - "$1" | tr -d '\r' | awk -F': ' -v k="$2" 'tolower($1) == k {print $2}'; }
# The 304 request of each server, by its own validator.
declare -A revalidate
for srv in "${servers[@]}"; do
	if etag=$(header "${urls[$srv]}/1k.bin" etag) && [[ -n $etag ]]; then
		revalidate[$srv]="If-None-Match: $etag"
	else
		revalidate[$srv]="If-Modified-Since: $(header "${urls[$srv]}/1k.bin" last-modified)"
	fi
done

read -ra cases <<<"${CASES:-1k 64k 1m 304}" # CASES="1m 304" measures only those
# args server case: wrk's arguments for one measurement.
args() {
	local base=${urls[$1]} a=(-t2 -c64 -d"${DURATION}s" --latency)
	case $2 in
	1k) a+=("$base/1k.bin") ;;
	64k) a+=("$base/64k.bin") ;;
	1m) a+=("$base/1m.bin") ;;
	304) a+=(-H "${revalidate[$1]}" "$base/1k.bin") ;;
	esac
	echo "${a[@]@Q}"
}

echo "warming up" >&2
for srv in "${servers[@]}"; do
	for kase in "${cases[@]}"; do
		eval "a=($(args "$srv" "$kase"))"
		a[2]=-d1s
		timeout 30 wrk "${a[@]}" >/dev/null
	done
done
for r in $(seq "$ROUNDS"); do
	echo "round $r of $ROUNDS" >&2
	order=("${servers[@]}")
	if ((r % 2 == 0)); then order=(fileserver bare fastfs staticstd static nginx); fi
	for kase in "${cases[@]}"; do
		for srv in "${order[@]}"; do
			eval "a=($(args "$srv" "$kase"))"
			measure "$srv $kase" "$srv-$kase" "${a[@]}"
		done
	done
done

echo
echo "wrk -t2 -c64 -d${DURATION}s, $ROUNDS alternating rounds, medians (nginx $(nginx -v 2>&1 | cut -d/ -f2), worker_processes $WORKERS; Go servers GOMAXPROCS=$WORKERS; $(nproc) CPUs; examples/static at $(git rev-parse --short HEAD))"
printf '%-5s %10s %10s %10s %10s %10s %11s %8s %8s %8s %8s %8s %10s\n' case nginx static static FS bare FileServer static/ static/ FS/ static/ bare/ static/
printf '%-5s %10s %10s %10s %10s %10s %11s %8s %8s %8s %8s %8s %10s\n' "" req/s req/s "net/http" req/s req/s req/s nginx FS nginx bare nginx FileServer
for kase in "${cases[@]}"; do
	n=$(col "nginx-$kase" 1) s=$(col "static-$kase" 1) sd=$(col "staticstd-$kase" 1) q=$(col "fastfs-$kase" 1) b=$(col "bare-$kase" 1) f=$(col "fileserver-$kase" 1)
	printf '%-5s %10.0f %10.0f %10.0f %10.0f %10.0f %11.0f %7.2fx %7.2fx %7.2fx %7.2fx %7.2fx %9.2fx\n' "$kase" "$n" "$s" "$sd" "$q" "$b" "$f" \
		"$(ratio "$s" "$n")" "$(ratio "$s" "$q")" "$(ratio "$q" "$n")" "$(ratio "$s" "$b")" "$(ratio "$b" "$n")" "$(ratio "$s" "$f")"
done
