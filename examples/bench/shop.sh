#!/usr/bin/env bash
# The shop's front door beside HAProxy, in front of the same processes: two
# web servers and two app servers of examples/shop (-role web, -role app)
# over one SQLite file, with stock set high enough for the run. One
# threetier front door (examples/shop -role balancer) and one HAProxy each
# balance over the two web servers, with the same health check (/readyz
# every second, fall 3, rise 2), round robin, keep-alive both sides.
#
# Two loads through each, with wrk -t2 -c32 -d${DURATION}s --latency:
#   reads    GET /api/products (the whole catalogue, through all tiers)
#   orders   shop-orders.lua: 80% GET /api/products/{id}, 20% POST
#            /api/orders, each with an Idempotency-Key of its own
# The order of the front doors alternates by round; the medians over the
# rounds give the ratios. Everything runs on 127.0.0.1: wrk, the proxies,
# the web and app servers share the machine's CPUs.
#
# Usage: [ROUNDS=3] [DURATION=10] examples/bench/shop.sh   (from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
BASE_PORT=${BASE_PORT:-18700}
APP1=$((BASE_PORT + 1)) APP2=$((BASE_PORT + 2))
WEB1=$((BASE_PORT + 11)) WEB2=$((BASE_PORT + 12))
DOOR=$((BASE_PORT + 20)) HAPROXY=$((BASE_PORT + 21))

. examples/bench/wrk-lib.sh
bench_install haproxy python3

echo "building" >&2
go build -o "$work/shop" ./examples/shop
export THREETIER_LOG_LEVEL=warn
unset THREETIER_DATA_DSN DATABASE_URL

# The database: migrated by a first app server, then given stock for the
# whole run, so that orders measure the path rather than an empty shelf.
db="$work/shop.db"
"$work/shop" -role app -listen "127.0.0.1:$APP1" -db "$db" >"$work/migrate.log" 2>&1 &
pids+=($!)
waitfor "http://127.0.0.1:$APP1/readyz"
kill "${pids[-1]}" && wait "${pids[-1]}" 2>/dev/null || true
unset 'pids[-1]'
python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE products SET stock = 1000000000"); c.commit()' "$db"

for port in "$APP1" "$APP2"; do
	"$work/shop" -role app -listen "127.0.0.1:$port" -db "$db" -name "app-$port" >"$work/app-$port.log" 2>&1 &
	pids+=($!)
done
for port in "$WEB1" "$WEB2"; do
	"$work/shop" -role web -listen "127.0.0.1:$port" -backends "http://127.0.0.1:$APP1,http://127.0.0.1:$APP2" >"$work/web-$port.log" 2>&1 &
	pids+=($!)
done
"$work/shop" -role balancer -listen "127.0.0.1:$DOOR" -backends "http://127.0.0.1:$WEB1,http://127.0.0.1:$WEB2" >"$work/door.log" 2>&1 &
pids+=($!)
{
	haproxy_defaults
	cat <<CONF
frontend front
	bind 127.0.0.1:$HAPROXY
	default_backend web
backend web
	balance roundrobin
	option httpchk GET /readyz
	server w1 127.0.0.1:$WEB1 check inter 1s fall 3 rise 2
	server w2 127.0.0.1:$WEB2 check inter 1s fall 3 rise 2
CONF
} >"$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
for port in "$DOOR" "$HAPROXY"; do
	waitfor "http://127.0.0.1:$port/api/products"
done

cat >"$work/shop-orders.lua" <<'LUA'
-- 80% product reads, 20% orders, each order with a key of its own.
local n = 0
local counter = 0
setup = function(thread)
	counter = counter + 1
	thread:set("thread_id", counter)
end
request = function()
	n = n + 1
	if n % 5 == 0 then
		local body = string.format('{"items":[{"product_id":%d,"quantity":1}]}', (n % 8) + 1)
		local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = string.format("bench-%d-%d-%d", thread_id or 0, os.time(), n)}
		return wrk.format("POST", "/api/orders", headers, body)
	end
	return wrk.format("GET", string.format("/api/products/%d", (n % 8) + 1))
end
LUA

# measure_load name load url: one wrk run of a load ("reads" or the
# "orders" mix) through name's front door.
measure_load() {
	local name=$1 load=$2 url=$3 script=()
	[[ $load == orders ]] && script=(-s "$work/shop-orders.lua")
	[[ $load == reads ]] && url="$url/api/products"
	measure "$name $load" "$name-$load" -t2 -c32 -d"${DURATION}s" --latency "${script[@]}" "$url"
}

declare -A urls=([haproxy]="http://127.0.0.1:$HAPROXY" [threetier]="http://127.0.0.1:$DOOR")
echo "warming up" >&2
for name in haproxy threetier; do timeout 30 wrk -t2 -c32 -d1s "${urls[$name]}/api/products" >/dev/null; done
for r in $(seq "$ROUNDS"); do
	echo "round $r of $ROUNDS" >&2
	if ((r % 2)); then order=(haproxy threetier); else order=(threetier haproxy); fi
	for load in reads orders; do
		for name in "${order[@]}"; do measure_load "$name" "$load" "${urls[$name]}"; done
	done
done

echo "wrk -t2 -c32 -d${DURATION}s --latency, $ROUNDS rounds, medians, $(nproc) CPUs; 2 web + 2 app processes, SQLite"
for load in reads orders; do
	for name in haproxy threetier; do
		printf '%-10s %-7s %9.0f req/s  p99 %8.0f us\n' "$name" "$load" "$(col "$name-$load" 1)" "$(col "$name-$load" 2)"
	done
	echo "$load: threetier front door / HAProxy throughput $(ratio "$(col threetier-$load 1)" "$(col haproxy-$load 1)")x, p99 $(ratio "$(col threetier-$load 2)" "$(col haproxy-$load 2)")x"
done
