package web

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/threetier/threetier/internal/configcheck"
	"github.com/threetier/threetier/tier"
)

// EnvPrefix is the prefix of the web tier's environment variables
// (THREETIER_WEB_LISTEN, THREETIER_WEB_FILES_ROOT, ...).
const EnvPrefix = tier.EnvPrefix + "WEB_"

// Defaults applied when a Config or FilesConfig field is left at zero.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultIndex             = "index.html"
	DefaultCompressMinSize   = 1024
	DefaultCompressFileMax   = 8 << 20
	DefaultCompressCacheMax  = 32 << 20
	DefaultCacheMaxBytes     = 64 << 20
	DefaultCacheFileMax      = 32 << 10
	DefaultCacheCheck        = time.Second
	DefaultOpenFilesMax      = 1000
	DefaultHashFileMax       = 8 << 20
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
)

// FilesConfig configures the file handler. The zero value serves nothing
// until Root is set (or a file system is given with WithFS), with every
// default below.
type FilesConfig struct {
	// Root is the directory to serve. Files are opened through os.Root, so
	// a symbolic link that leads outside Root is refused. Ignored when
	// WithFS is given.
	Root string `env:"ROOT" json:"root"`
	// Prefix is stripped from the request path before the file is looked up
	// ("/static/" serves Root/app.js at /static/app.js). Empty means "/".
	Prefix string `env:"PREFIX" json:"prefix"`
	// Index is the file served for a directory; empty means "index.html".
	Index string `env:"INDEX" json:"index"`
	// Listing enables an HTML listing of directories without an index.
	// Off by default: a directory without index answers 403.
	Listing bool `env:"LISTING" json:"listing"`
	// SPA enables the single-page-app fallback: a GET for a missing file
	// from a browser navigation (Accept: text/html) gets the root index
	// with status 200, except under SPAExclude.
	SPA bool `env:"SPA" json:"spa"`
	// SPAExclude lists path prefixes that never fall back, so that API
	// clients still see 404; empty means "/api/".
	SPAExclude []string `env:"SPA_EXCLUDE" json:"spa_exclude"`
	// ErrorPages is a directory under Root with pages for the errors the
	// files answer, as nginx's error_page: "404.html" for one status,
	// "4xx.html" or "5xx.html" for the rest of a class. A client that
	// prefers HTML (a browser's navigation) gets the page, with the
	// error's status; API clients, and errors without a page, get the
	// problem as every tier answers it (problem+json, or a small page of
	// its own for a browser). Empty means none, "/" the root itself; a
	// hidden directory (".errors") keeps the pages from being served at
	// their own URLs.
	ErrorPages string `env:"ERROR_PAGES" json:"error_pages"`
	// Dotfiles serves names starting with "." (hidden by default, except
	// /.well-known/).
	Dotfiles bool `env:"DOTFILES" json:"dotfiles"`
	// CacheControl sets Cache-Control by path pattern; the first matching
	// rule wins and no rule means no header.
	CacheControl CacheRules `env:"CACHE_CONTROL" json:"cache_control"`
	// DisableCompression turns off on-the-fly compression. Precompressed
	// sidecar files (.br, .zst, .gz) are still served.
	DisableCompression bool `env:"DISABLE_COMPRESSION" json:"disable_compression"`
	// CompressMinSize is the smallest file compressed on the fly; zero
	// means 1 KiB.
	CompressMinSize int64 `env:"COMPRESS_MIN_SIZE" json:"compress_min_size"`
	// CompressLimit bounds the compressions running at once, each of which
	// holds an encoder of a few megabytes and a core; zero means two per
	// GOMAXPROCS. A response that finds every slot taken goes out
	// uncompressed (still with Vary: Accept-Encoding) rather than wait.
	CompressLimit int `env:"COMPRESS_LIMIT" json:"compress_limit"`
	// CompressFileMax is the largest file whose compressed forms are made
	// once and kept in memory; zero means 8 MiB. Larger files are
	// compressed while they are sent, within CompressLimit.
	CompressFileMax int64 `env:"COMPRESS_FILE_MAX" json:"compress_file_max"`
	// CompressCacheMaxBytes bounds the compressed forms kept in memory,
	// apart from CacheMaxBytes; zero means 32 MiB, negative keeps none (every
	// compressed response is then compressed while it is sent).
	CompressCacheMaxBytes int64 `env:"COMPRESS_CACHE_MAX_BYTES" json:"compress_cache_max_bytes"`
	// CacheMaxBytes bounds the in-memory cache of file contents; zero means
	// 64 MiB, negative keeps no contents in memory.
	CacheMaxBytes int64 `env:"CACHE_MAX_BYTES" json:"cache_max_bytes"`
	// CacheFileMax is the largest file kept in memory; zero means 32 KiB.
	// Larger files are sent from disk with sendfile, which beats copying
	// from memory from about that size on (at 64 KiB by a third).
	CacheFileMax int64 `env:"CACHE_FILE_MAX" json:"cache_file_max"`
	// CacheCheck is how often a cached file is checked for changes on
	// disk; zero means one second, negative checks on every request.
	// Between checks a file is sent as it was seen, from the descriptor
	// opened then (as nginx's open_file_cache_valid): replace files by
	// renaming a new one over them, not by rewriting them in place.
	CacheCheck time.Duration `env:"CACHE_CHECK" json:"cache_check"`
	// HashFileMax is the largest file hashed for its ETag when first
	// requested; zero means 8 MiB, negative hashes none then. A larger
	// file (beyond CacheFileMax too) is hashed in the background and
	// served meanwhile with Last-Modified as its only validator.
	HashFileMax int64 `env:"HASH_FILE_MAX" json:"hash_file_max"`
	// OpenFilesMax bounds the descriptors of files larger than
	// CacheFileMax kept open between requests, so that sending one
	// costs no open; zero means 1000, negative keeps none.
	OpenFilesMax int `env:"OPEN_FILES_MAX" json:"open_files_max"`
}

// DefaultFilesConfig returns a FilesConfig with every default spelled out
// and no Root.
func DefaultFilesConfig() FilesConfig { return FilesConfig{}.withDefaults() }

func (c FilesConfig) withDefaults() FilesConfig {
	if c.Prefix == "" {
		c.Prefix = "/"
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.Index == "" {
		c.Index = DefaultIndex
	}
	if c.SPAExclude == nil {
		c.SPAExclude = []string{"/api/"}
	}
	if c.ErrorPages != "" {
		if c.ErrorPages = strings.Trim(c.ErrorPages, "/"); c.ErrorPages == "" {
			c.ErrorPages = "."
		}
	}
	if c.CompressMinSize == 0 {
		c.CompressMinSize = DefaultCompressMinSize
	}
	if c.CompressFileMax == 0 {
		c.CompressFileMax = DefaultCompressFileMax
	}
	if c.CompressCacheMaxBytes == 0 {
		c.CompressCacheMaxBytes = DefaultCompressCacheMax
	}
	if c.CacheMaxBytes == 0 {
		c.CacheMaxBytes = DefaultCacheMaxBytes
	}
	if c.CacheFileMax == 0 {
		c.CacheFileMax = DefaultCacheFileMax
	}
	if c.CacheCheck == 0 {
		c.CacheCheck = DefaultCacheCheck
	}
	if c.HashFileMax == 0 {
		c.HashFileMax = DefaultHashFileMax
	}
	if c.OpenFilesMax == 0 {
		c.OpenFilesMax = DefaultOpenFilesMax
	}
	return c
}

// Validate reports settings that cannot work, naming the FilesConfig field.
func (c FilesConfig) Validate() error {
	var errs []error
	if c.Prefix != "" && !strings.HasPrefix(c.Prefix, "/") {
		errs = append(errs, &tier.ConfigError{Field: "Prefix", Value: c.Prefix, Problem: "must start with /"})
	}
	if c.Index != "" && (strings.ContainsAny(c.Index, "/\\\x00") || c.Index == "." || c.Index == "..") {
		errs = append(errs, &tier.ConfigError{Field: "Index", Value: c.Index, Problem: "must be a plain file name"})
	}
	for _, p := range c.SPAExclude {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, &tier.ConfigError{Field: "SPAExclude", Value: p, Problem: "must start with /"})
		}
	}
	if c.ErrorPages != "" && !validErrorPages(c.ErrorPages) {
		errs = append(errs, &tier.ConfigError{Field: "ErrorPages", Value: c.ErrorPages, Problem: "must be a directory under the root", Allowed: `a path such as "errors", or "/" for the root`})
	}
	if c.CompressMinSize < 0 {
		errs = append(errs, &tier.ConfigError{Field: "CompressMinSize", Value: fmt.Sprint(c.CompressMinSize), Problem: "must not be negative"})
	}
	if c.CompressLimit < 0 {
		errs = append(errs, &tier.ConfigError{Field: "CompressLimit", Value: fmt.Sprint(c.CompressLimit), Problem: "must not be negative", Allowed: "0 for two per core"})
	}
	if c.CompressFileMax < 0 {
		errs = append(errs, &tier.ConfigError{Field: "CompressFileMax", Value: fmt.Sprint(c.CompressFileMax), Problem: "must not be negative"})
	}
	if c.CacheFileMax < 0 {
		errs = append(errs, &tier.ConfigError{Field: "CacheFileMax", Value: fmt.Sprint(c.CacheFileMax), Problem: "must not be negative"})
	}
	if err := c.CacheControl.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// A CacheRule sets Cache-Control for the paths matching Pattern.
type CacheRule struct {
	// Pattern is a path.Match pattern, matched against the URL path of the
	// file served (for a directory, its index file). With a "/" it is
	// matched against the whole path ("/assets/*"); without, against the
	// last element ("*.html").
	Pattern string `json:"pattern"`
	// Value is the Cache-Control header value ("public, max-age=31536000, immutable").
	Value string `json:"value"`
}

// ParseCacheRule reads "pattern=value", the form flags and environment use.
func ParseCacheRule(s string) (CacheRule, error) {
	pat, val, ok := strings.Cut(s, "=")
	pat, val = strings.TrimSpace(pat), strings.TrimSpace(val)
	if !ok || pat == "" || val == "" {
		return CacheRule{}, &tier.ConfigError{Field: "CacheControl", Value: s, Problem: "want pattern=value", Allowed: "for example *.html=no-cache"}
	}
	r := CacheRule{Pattern: pat, Value: val}
	return r, r.validate()
}

func (r CacheRule) validate() error {
	if _, err := path.Match(r.Pattern, ""); err != nil {
		return &tier.ConfigError{Field: "CacheControl", Value: r.Pattern, Problem: "bad pattern: " + err.Error()}
	}
	if strings.ContainsAny(r.Value, "\r\n\x00") {
		return &tier.ConfigError{Field: "CacheControl", Value: r.Value, Problem: "value must be one header line"}
	}
	return nil
}

func (r CacheRule) matches(urlPath string) bool {
	target := urlPath
	if !strings.Contains(r.Pattern, "/") {
		target = path.Base(urlPath)
	}
	ok, _ := path.Match(r.Pattern, target)
	return ok
}

// CacheRules is an ordered list of rules; the first match wins. In the
// environment it is written "pattern=value;pattern=value".
type CacheRules []CacheRule

// UnmarshalText parses "pattern=value;pattern=value".
func (rs *CacheRules) UnmarshalText(b []byte) error {
	*rs = nil
	for part := range strings.SplitSeq(string(b), ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r, err := ParseCacheRule(part)
		if err != nil {
			// The environment loader names the variable; say only what is wrong.
			var ce *tier.ConfigError
			if errors.As(err, &ce) {
				return fmt.Errorf("rule %q: %s", part, ce.Problem)
			}
			return err
		}
		*rs = append(*rs, r)
	}
	return nil
}

func (rs CacheRules) validate() error {
	var errs []error
	for _, r := range rs {
		if err := r.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// value returns the Cache-Control of the first rule matching urlPath.
func (rs CacheRules) value(urlPath string) string {
	for _, r := range rs {
		if r.matches(urlPath) {
			return r.Value
		}
	}
	return ""
}

// Config values of Engine.
const (
	// EngineFast serves HTTP/1.1 on github.com/valyala/fasthttp: the
	// files natively, the routes of Echo() through an adapter to
	// net/http. Requests it cannot hold whole (uploads of unknown or large
	// length, Expect: 100-continue, Upgrade) and HTTP/2 are served by
	// net/http on the same listener.
	EngineFast = "fasthttp"
	// EngineStd serves every request on net/http.
	EngineStd = "net/http"
)

// Config configures the web tier server. The zero value listens on
// 127.0.0.1:8080 over plain HTTP with every default below.
type Config struct {
	// Name names the instance in lifecycle logs and errors ("web-1"), so
	// that two of one process tell apart; empty means "web".
	Name string `env:"NAME" json:"name,omitempty"`
	// Listen is the address to serve on; empty means 127.0.0.1:8080.
	Listen string `env:"LISTEN" json:"listen"`
	// Engine serves the listener's HTTP/1.1 requests: EngineFast (the
	// default) or EngineStd. Both give the same answers. On EngineFast
	// the files and forwarded prefixes are served beside Echo, unless
	// middleware was added with Echo().Use or Pre before Start: then they
	// go through Echo too, so that it runs for them. The routes added take
	// precedence over the files on both.
	Engine string `env:"ENGINE" json:"engine,omitempty"`
	// TLSCert and TLSKey are PEM files; with both set the server speaks
	// HTTPS with HTTP/2.
	TLSCert string `env:"TLS_CERT" json:"tls_cert"`
	TLSKey  string `env:"TLS_KEY" json:"tls_key"`
	// RedirectListen, with TLS on, is a plain-HTTP address whose every
	// request is redirected (308) to the HTTPS server.
	RedirectListen string `env:"REDIRECT_LISTEN" json:"redirect_listen"`
	// HSTS, when positive and TLS is on, sends Strict-Transport-Security
	// with this max-age.
	HSTS time.Duration `env:"HSTS" json:"hsts"`
	// NoSecurityHeaders turns off X-Content-Type-Options, Referrer-Policy
	// and X-Frame-Options, which are sent by default.
	NoSecurityHeaders bool `env:"NO_SECURITY_HEADERS" json:"no_security_headers"`
	// FrameOptions is the X-Frame-Options value; empty means SAMEORIGIN.
	FrameOptions string `env:"FRAME_OPTIONS" json:"frame_options"`
	// ReadHeaderTimeout bounds the time to read request headers; zero
	// means 5s.
	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT" json:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request; zero means no bound
	// beyond ReadHeaderTimeout.
	ReadTimeout time.Duration `env:"READ_TIMEOUT" json:"read_timeout"`
	// WriteTimeout bounds writing a response; zero means none, so that
	// large files reach slow clients.
	WriteTimeout time.Duration `env:"WRITE_TIMEOUT" json:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections; zero means 120s.
	IdleTimeout time.Duration `env:"IDLE_TIMEOUT" json:"idle_timeout"`
	// MaxHeaderBytes bounds the request headers; zero means 16 KiB.
	MaxHeaderBytes int `env:"MAX_HEADER_BYTES" json:"max_header_bytes"`
	// MetricsPath, when set, serves the threetier_web_* metrics (and
	// whatever else is registered) on the public listener at this path,
	// when WithRegistry gives a *prometheus.Registry. Empty (or "-") means
	// not served: the series name the app tier's instances and count every
	// client's requests, so they belong on an admin listener
	// (tier.NewAdmin), which binds to loopback. The route takes precedence
	// over a file of the same name.
	MetricsPath string `env:"METRICS_PATH" json:"metrics_path"`
	// Files configures the file handler mounted at the root. Files.Root
	// empty and no WithFS option means no files are served.
	Files FilesConfig `envPrefix:"FILES_" json:"files"`
	// Limits bounds what a client can hold on the listeners:
	// THREETIER_WEB_BODY_TIMEOUT, _SEND_TIMEOUT, _MAX_CONNS.
	tier.Limits
}

// DefaultConfig returns a Config with every default spelled out. Its
// Files are left zero: the file handler fills their defaults itself.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "web"
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Engine == "" {
		c.Engine = EngineFast
	}
	if c.FrameOptions == "" {
		c.FrameOptions = "SAMEORIGIN"
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return c
}

// Validate reports settings that cannot work, naming the Config field
// (tier.LoadEnv names the variable).
func (c Config) Validate() error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, &tier.ConfigError{Field: "TLSCert", Problem: "TLS needs both a certificate and a key file"})
	}
	if c.RedirectListen != "" && c.TLSCert == "" {
		errs = append(errs, &tier.ConfigError{Field: "RedirectListen", Value: c.RedirectListen, Problem: "redirecting to HTTPS needs TLS on"})
	}
	switch c.Engine {
	case "", EngineFast, EngineStd:
	default:
		errs = append(errs, &tier.ConfigError{Field: "Engine", Value: c.Engine, Problem: "unknown engine", Allowed: EngineFast + ", " + EngineStd})
	}
	if c.HSTS < 0 {
		errs = append(errs, &tier.ConfigError{Field: "HSTS", Value: c.HSTS.String(), Problem: "must not be negative"})
	}
	if strings.ContainsAny(c.FrameOptions, "\r\n\x00") {
		errs = append(errs, &tier.ConfigError{Field: "FrameOptions", Value: c.FrameOptions, Problem: "must be one header line", Allowed: "DENY, SAMEORIGIN"})
	}
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, &tier.ConfigError{Field: "MaxHeaderBytes", Value: fmt.Sprint(c.MaxHeaderBytes), Problem: "must not be negative"})
	}
	if c.MaxConns < 0 {
		errs = append(errs, &tier.ConfigError{Field: "MaxConns", Value: fmt.Sprint(c.MaxConns), Problem: "must not be negative", Allowed: "0 for the default"})
	}
	if err := configcheck.RoutePath("MetricsPath", c.MetricsPath); err != nil {
		errs = append(errs, err)
	}
	if err := c.Files.Validate(); err != nil {
		errs = append(errs, configcheck.InField("Files", err))
	}
	return errors.Join(errs...)
}
