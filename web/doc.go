// Package web is the static web tier of a threetier service: it answers
// HTTP and HTTPS, serves static files as well as nginx does, and hands
// dynamic routes to the app tier.
//
// # Files
//
// Files is an http.Handler (and, through EchoHandler, an Echo handler)
// over a directory or any fs.FS, embed.FS included. It can be used alone
// in any Echo app or net/http mux:
//
//   - validators: a strong ETag computed from the content (so it works
//     without modification times and is the same on every server of the
//     tier) and Last-Modified. A file larger than HashFileMax is hashed in
//     the background, not on the request path: until its hash is known it
//     is served with Last-Modified only (and uncompressed); If-Match, If-Unmodified-Since, If-None-Match
//     and If-Modified-Since evaluated in the order of RFC 9110 §13.2.2;
//     HEAD answers with the headers of GET.
//   - ranges: single ranges, multipart/byteranges for several, If-Range,
//     and 416 with "Content-Range: bytes */size" when nothing overlaps.
//     More than 16 ranges, or ranges adding up to more than the file, get
//     the whole file instead.
//   - compression: precompressed sidecars (name.br, name.zst, name.gz) and,
//     for compressible types of at least CompressMinSize bytes, brotli,
//     zstd or gzip made on the fly, chosen by the Accept-Encoding q-values;
//     every negotiated response carries Vary: Accept-Encoding and each
//     coding has its own ETag. A range is always served from the identity
//     form. A file of at most CompressFileMax bytes is compressed once per
//     coding (concurrent first requests share that compression) and the
//     result kept in a cache bounded by CompressCacheMaxBytes, sent with
//     its length; larger files are compressed while sent. At most
//     CompressLimit compressions run at once, with encoders sized for
//     streaming (a few megabytes each); a request that finds them all busy
//     gets the identity form rather than wait.
//   - Cache-Control by path pattern (CacheRule).
//   - directories: the index file, a 301 to the path with a trailing
//     slash, 403 without an index unless the HTML listing is on, and an
//     optional single-page-app fallback to the root index for browser
//     navigations (Accept: text/html) outside SPAExclude, so that API
//     clients still get their 404.
//   - safety: a directory is opened with os.Root, so no path and no
//     symbolic link leads outside it; the path is percent-decoded exactly
//     once (by net/http); "." and ".." segments, empty segments, NUL,
//     backslashes, encoded slashes ("%2F") and invalid UTF-8 are refused
//     with 400; names starting
//     with "." are hidden (404) except /.well-known/.
//   - speed: files up to CacheFileMax live in a CLOCK cache bounded by
//     CacheMaxBytes that checks the disk (size, mtime, inode, sidecars)
//     every CacheCheck; larger files go out with sendfile, also through
//     Echo, whose response wrapper would otherwise hide ReadFrom, from
//     descriptors kept open between requests (at most OpenFilesMax, as
//     nginx's open_file_cache) and dropped when the check finds the file
//     changed. Files
//     from disk are sent corked (TCP_CORK on Linux, like nginx's
//     tcp_nopush) when the server's ConnContext is ConnContext, as the
//     Server's is: headers and body leave in full segments. Bodies of at
//     most 2 KiB get their Content-Length from net/http, which keeps a
//     typical response within the eight header entries a Go map holds
//     before it grows.
//
// Errors are RFC 9457 problem+json, or a small HTML page for a client that
// prefers text/html, a browser (tier.ServeProblem). FilesConfig.ErrorPages
// gives browsers pages of the site's own instead, as nginx's error_page.
//
// # Server
//
// Server is the web tier as a tier.Tier: an Echo app (Echo returns it, to
// add routes and middleware) with the files mounted at Config.Files.Prefix,
// HTTPS with HTTP/2 from certificate and key files, an optional plain-HTTP
// listener that redirects to HTTPS, optional HSTS, security headers by
// default (X-Content-Type-Options, Referrer-Policy, X-Frame-Options),
// ReadHeaderTimeout and MaxHeaderBytes against slow or hostile clients,
// request IDs, slog access logs and threetier_web_* Prometheus metrics
// (registered with WithRegistry's registry, for an admin listener such as
// tier.NewAdmin to serve; the public listener serves them only at
// Config.MetricsPath, when one is set).
//
// Routes given with WithForward go to the app tier through a balancer
// Pool (Forwarder). The security headers and request ID the web tier sets
// are defaults there: a header the app tier sends replaces the web tier's,
// so none goes out twice. ForwardConfig.ResponseTimeout is the request's deadline:
// each attempt takes what is left of it to the app tier in
// tier.HeaderTimeout, whose requests end with it, and a deadline sent by
// the front door in front (or a client) can shorten it, never lengthen
// it.
//
// # Engines
//
// The listener serves HTTP/1.1 on github.com/valyala/fasthttp by default
// (Config.Engine, THREETIER_WEB_ENGINE, -engine in examples/static:
// "fasthttp" or "net/http"), through tier.WithFastHTTP1. The files
// (Files.ServeFast) and the forwarded prefixes (Forwarder.ServeFast, the
// front door's fast proxy path) are served on it natively, with the
// request ID, security headers, metrics, access log and span of the Echo
// path; the routes added on Echo (and /healthz, /readyz, MetricsPath) go
// through an adapter to Echo on net/http, and take precedence over the
// files on both engines. Middleware added with Echo().Use or Pre before
// Start sends the files and forwarded prefixes through Echo too, so that
// it runs for every request (at the adapter's cost). What fasthttp cannot hold whole (uploads of unknown or large
// length, Expect: 100-continue, WebSocket) and HTTP/2 go to the net/http
// path on the same listener.
//
// The file rules are written once, over an exchange: the request's method,
// path and headers as the rules read them, and the answer as they write
// it. Each engine has a thin exchange: on net/http the headers are the
// ResponseWriter's map and a file goes out through io.Copy (sendfile); on
// fasthttp a body in memory is handed over as it is, a file as a body
// stream that fasthttp sends with sendfile, and multipart and compressed
// bodies are streamed.
//
// # Differences from nginx
//
// examples/bench/web-compare.sh sends the same 60 requests (conditional,
// range, HEAD, directories, missing files, hostile paths) to nginx 1.22
// and to examples/static over the same files. Status, validators,
// lengths, Content-Range, Location and bodies agree except for these
// differences, all deliberate:
//
//   - Non-canonical paths ("/dir/../a", "/./a", "//a", "/dir//a") are
//     refused with 400; nginx resolves them. One file has one URL, so a
//     cache in front cannot be poisoned through aliases.
//   - An encoded slash ("%2F") in a path is 400; nginx decodes it, so that
//     /dir%2Fa.txt is a second URL of /dir/a.txt and /api%2Fx goes to the
//     location for /api/. Here routes match the escaped path, so /api%2Fx
//     never reaches a route forwarded under /api/, and the files refuse it
//     rather than serve api/x.
//   - Backslashes and invalid UTF-8 (overlong "%c0%ae") in paths are 400;
//     nginx looks them up as literal names (404).
//   - Dotfiles (".env", ".git/") are 404 by default; nginx serves them.
//   - A symbolic link leading outside the root is 404; nginx follows it
//     (disable_symlinks is off by default).
//   - A malformed Range ("bytes=abc") is ignored and the whole file sent
//     (RFC 9110 §14.2 allows it); nginx answers 416.
//   - Range is ignored on HEAD, which RFC 9110 §14.2 defines for GET only;
//     nginx answers 206.
//   - A range of a file that has a precompressed sidecar is served from the
//     identity file with 206; nginx ignores the Range and sends the whole
//     .gz (a resumed download then mixes codings).
//   - Vary: Accept-Encoding is sent whenever the answer depends on it;
//     nginx needs gzip_vary on.
//   - Accept-Ranges is sent on full 200 answers only, as nginx does; ETags
//     are content hashes where nginx uses mtime and size, so they agree
//     across the servers of a tier and survive a touch.
//   - JavaScript is text/javascript (RFC 9239, Go's table); nginx 1.22's
//     mime.types says application/javascript.
//   - Error bodies are problem+json rather than HTML pages.
package web
