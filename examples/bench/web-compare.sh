#!/usr/bin/env bash
# Sends the same requests (conditional, range, HEAD, directories, missing
# files, hostile paths) to nginx and to examples/static over the same files
# and lists where the answers differ: status, the headers that carry
# meaning, and the body. Differences kept on purpose are documented in the
# web package docs ("Differences from nginx").
# Usage: examples/bench/web-compare.sh   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/bench/web-lib.sh
bench_install nginx
web_tree
web_start

# One request per line: METHOD PATH [| Header: value]... ; {etag} and {lm}
# are replaced by the ETag and Last-Modified each server gave for PATH.
requests=(
	"GET /small.txt"
	"HEAD /small.txt"
	"GET /1m.bin"
	"HEAD /1m.bin"
	"GET /small.txt | If-None-Match: {etag}"
	"GET /small.txt | If-None-Match: \"other\""
	"GET /small.txt | If-None-Match: *"
	"GET /small.txt | If-Modified-Since: {lm}"
	"GET /small.txt | If-Modified-Since: Thu, 01 Jan 2026 00:00:00 GMT"
	"GET /small.txt | If-Match: {etag}"
	"GET /small.txt | If-Match: \"other\""
	"GET /small.txt | If-Unmodified-Since: Thu, 01 Jan 2026 00:00:00 GMT"
	"GET /small.txt | If-Unmodified-Since: {lm}"
	"GET /small.txt | If-None-Match: \"other\" | If-Modified-Since: {lm}"
	"GET /1m.bin | Range: bytes=0-99"
	"GET /1m.bin | Range: bytes=-100"
	"GET /1m.bin | Range: bytes=1048000-"
	"GET /1m.bin | Range: bytes=2000000-"
	"GET /1m.bin | Range: bytes=0-9,100-109"
	"GET /1m.bin | Range: bytes=abc"
	"GET /1m.bin | Range: bytes=0-99 | If-Range: {etag}"
	"GET /1m.bin | Range: bytes=0-99 | If-Range: \"other\""
	"GET /1m.bin | Range: bytes=0-99 | If-Range: {lm}"
	"HEAD /1m.bin | Range: bytes=0-99"
	"GET /empty.txt"
	"GET /empty.txt | Range: bytes=0-"
	"GET /app.css | Accept-Encoding: gzip"
	"GET /app.css"
	"GET /app.css | Range: bytes=0-9 | Accept-Encoding: gzip"
	"GET /"
	"GET /dir"
	"GET /dir/"
	"GET /dir?x=1"
	"GET /dir/index.html"
	"GET /noindex/"
	"GET /small.txt/"
	"GET /missing.txt"
	"GET /missing/"
	"POST /small.txt"
	"DELETE /small.txt"
	"GET /.env"
	"GET /.git/config"
	"GET /%2eenv"
	"GET /../outside.txt"
	"GET /%2e%2e/outside.txt"
	"GET /dir/../small.txt"
	"GET /dir/%2e%2e/small.txt"
	"GET /./small.txt"
	"GET //small.txt"
	"GET /dir//index.html"
	"GET /..%2foutside.txt"
	"GET /%2e%2e%2f%2e%2e%2foutside.txt"
	"GET /..\\outside.txt"
	"GET /dir%5c..%5csmall.txt"
	"GET /small.txt%00.png"
	"GET /link-out"
	"GET /%252e%252e/outside.txt"
	"GET /%c0%ae%c0%ae/outside.txt"
	"GET /small%2etxt"
	"GET /assets/app.1234.js"
)

headers_of() { # server path -> "etag|lm" for the substitutions
	curl -s --path-as-is -o /dev/null -D - -I "$1$2" | tr -d '\r' | awk -F': ' '
		tolower($1) == "etag" {e = $2} tolower($1) == "last-modified" {l = $2} END {print e "|" l}'
}

# probe server request -> one line summarising the answer.
probe() {
	local base=$1 line=$2 method path rest
	method=${line%% *}
	rest=${line#* }
	path=${rest%% |*}
	local vals etag lm
	vals=$(headers_of "$base" "$path")
	etag=${vals%%|*}
	lm=${vals#*|}
	local args=(-s --path-as-is -o "$work/body" -D "$work/hdrs" -X "$method")
	[[ $method == HEAD ]] && args=(-s --path-as-is -I -o "$work/body" -D "$work/hdrs")
	if [[ $rest == *" | "* ]]; then
		local hs=${rest#* | } h
		while [[ -n $hs ]]; do
			h=${hs%% | *}
			h=${h//\{etag\}/$etag}
			h=${h//\{lm\}/$lm}
			args+=(-H "$h")
			[[ $hs == *" | "* ]] && hs=${hs#* | } || hs=""
		done
	fi
	curl "${args[@]}" "$base$path" || true
	tr -d '\r' <"$work/hdrs" >"$work/h"
	local status
	status=$(awk 'NR == 1 {print $2}' "$work/h")
	hv() { awk -F': ' -v k="$1" 'tolower($1) == k {sub(/^[^:]*: /, ""); print; exit}' "$work/h"; }
	local ctype clen crange cenc loc vary arng lmod et
	ctype=$(hv content-type)
	ctype=${ctype%%;*}
	[[ $ctype == multipart/byteranges* ]] && ctype=multipart/byteranges
	clen=$(hv content-length)
	crange=$(hv content-range)
	cenc=$(hv content-encoding)
	loc=$(hv location)
	loc=${loc#"$base"}
	vary=$(hv vary)
	arng=$(hv accept-ranges)
	lmod=$(hv last-modified)
	et=$(hv etag)
	local body="-"
	if [[ $status == 2* && $method != HEAD && $ctype != multipart/byteranges ]]; then
		body=$(sha256sum "$work/body" | cut -c1-12)
	fi
	# Multipart lengths depend on the boundary each server picks.
	[[ $ctype == multipart/byteranges ]] && clen="(boundary-dependent)"
	# Error bodies differ by design (problem+json vs HTML): not compared.
	if [[ $status != 2* ]]; then
		clen="" ctype=""
	fi
	crange=${crange// /_}
	vary=${vary// /_}
	echo "status=$status type=$ctype length=$clen range=$crange encoding=$cenc location=$loc vary=$vary accept-ranges=$arng last-modified=${lmod:+yes} etag=${et:+yes} body=$body"
}

same=0
diffs=0
printf '%-70s %s\n' "REQUEST" "RESULT"
for req in "${requests[@]}"; do
	a=$(probe "$NGINX_URL" "$req")
	b=$(probe "$STATIC_URL" "$req")
	if [[ $a == "$b" ]]; then
		same=$((same + 1))
		printf '%-70s same   %s\n' "$req" "$(awk '{print $1}' <<<"$a")"
	else
		diffs=$((diffs + 1))
		printf '%-70s DIFF\n' "$req"
		# Only the fields that differ, one line per server.
		read -r -a fa <<<"$a"
		read -r -a fb <<<"$b"
		da="" db=""
		for i in "${!fa[@]}"; do
			if [[ ${fa[$i]} != "${fb[$i]}" ]]; then
				da+=" ${fa[$i]}"
				db+=" ${fb[$i]}"
			fi
		done
		printf '      nginx: %s\n      static:%s\n' "$da" "$db"
	fi
done
echo
echo "$same same, $diffs different (nginx $(nginx -v 2>&1 | cut -d/ -f2), examples/static at $(git rev-parse --short HEAD))"
