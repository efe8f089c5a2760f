# Shared by web-compare.sh and web.sh (source it, do not run it, from the
# repository's root): builds the same tree of files, starts nginx with its
# own configuration and examples/static over it on 127.0.0.1, and stops
# both by PID on exit (wrk-lib.sh's bookkeeping).
#
# Variables: NGINX_PORT (18480), STATIC_PORT (18481), WORKERS (nginx
# worker_processes and the GOMAXPROCS of examples/static; default: the
# number of CPUs, which is what both pick on their own).
#
# nginx is configured as a production site would be: sendfile, tcp_nopush,
# an open_file_cache revalidated every second (examples/static checks its
# cache every second too), gzip_static, no access log (examples/static runs
# with -access-log=false), and the same security and request ID headers
# examples/static sends. Nothing is pinned with taskset: wrk and both
# servers share every CPU alike.

NGINX_PORT=${NGINX_PORT:-18480}
STATIC_PORT=${STATIC_PORT:-18481}
NGINX_URL="http://127.0.0.1:$NGINX_PORT"
STATIC_URL="http://127.0.0.1:$STATIC_PORT"
WORKERS=${WORKERS:-$(nproc)}
. examples/bench/wrk-lib.sh # work directory, processes, tools, waits
chmod 755 "$work"           # nginx workers run as an unprivileged user

# web_tree writes the files both servers serve, with fixed mtimes so that
# Last-Modified is the same on both sides.
web_tree() {
	local p="$work/public"
	mkdir -p "$p/dir" "$p/noindex/sub" "$p/.git" "$p/assets"
	head -c 1024 /dev/urandom >"$p/1k.bin"
	head -c 65536 /dev/urandom >"$p/64k.bin"
	head -c 1048576 /dev/urandom >"$p/1m.bin"
	awk 'BEGIN { for (i = 0; i < 500; i++) print "body { color: #333; margin: 0 auto; }" }' >"$p/app.css"
	gzip -9 -k "$p/app.css"
	printf '<h1>root</h1>\n' >"$p/index.html"
	printf '<h1>dir</h1>\n' >"$p/dir/index.html"
	printf 'a\n' >"$p/noindex/a.txt"
	printf 'secret\n' >"$p/.env"
	printf 'secret\n' >"$p/.git/config"
	printf 'small\n' >"$p/small.txt"
	: >"$p/empty.txt"
	printf 'console.log(1)\n' >"$p/assets/app.1234.js"
	printf 'outside\n' >"$work/outside.txt"
	ln -s "$work/outside.txt" "$p/link-out"
	find "$p" -exec touch -h -d '2026-01-02 03:04:05 UTC' {} +
}

# web_start starts nginx and examples/static and waits until both answer.
web_start() {
	mkdir -p "$work/nginx/logs"
	cat >"$work/nginx/nginx.conf" <<CONF
worker_processes $WORKERS;
error_log $work/nginx/logs/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	open_file_cache max=1000 inactive=60s;
	open_file_cache_valid 1s;
	gzip_static on;
	# The headers examples/static sends by default, so that both servers
	# do the same work and send the same bytes.
	add_header X-Content-Type-Options nosniff always;
	add_header Referrer-Policy strict-origin-when-cross-origin always;
	add_header X-Frame-Options SAMEORIGIN always;
	add_header X-Request-Id \$request_id always;
	client_body_temp_path $work/nginx/tmp;
	proxy_temp_path $work/nginx/tmp;
	fastcgi_temp_path $work/nginx/tmp;
	uwsgi_temp_path $work/nginx/tmp;
	scgi_temp_path $work/nginx/tmp;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $work/public;
		index index.html;
	}
}
CONF
	nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
	pids+=($!)
	go build -o "$work/static" ./examples/static
	GOMAXPROCS=$WORKERS "$work/static" -listen "127.0.0.1:$STATIC_PORT" -root "$work/public" -access-log=false 2>"$work/static.log" &
	pids+=($!)
	waitfor "$NGINX_URL/small.txt"
	waitfor "$STATIC_URL/small.txt"
}
