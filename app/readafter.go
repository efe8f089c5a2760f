package app

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/internal/readafter"
	"github.com/threetier/threetier/tier"
)

// ReadAfterConfig configures the ReadAfter middleware.
type ReadAfterConfig struct {
	// Skipper leaves some requests out.
	Skipper middleware.Skipper
	// MaxAge is how long the browser keeps the cookie: past it, the data
	// tier's MaxLag bound on the replicas is the only guarantee left.
	// Zero means 1m.
	MaxAge time.Duration
}

// DefaultReadAfterConfig keeps the cookie for a minute.
func DefaultReadAfterConfig() ReadAfterConfig {
	return ReadAfterConfig{Skipper: middleware.DefaultSkipper, MaxAge: time.Minute}
}

// ReadAfter gives clients read-your-writes across requests and app
// instances when the data tier reads from replicas. A request that
// commits a write answers with the database position of its commit, in
// the tier.ReadAfterHeader response header (for API clients, which send
// it back in the same request header; Access-Control-Expose-Headers names
// it, for scripts of another origin) and in the tier.ReadAfterCookie
// cookie (HttpOnly, SameSite=Lax, MaxAge; Secure over HTTPS). A request
// that carries a position, on any instance, reads from a replica that has
// replayed that far, else from the primary: the request's context holds
// it for the data tier to read. A request that
// carries none reads as before. A position that does not parse is a 400
// problem, whose answer clears the cookie.
func ReadAfter() echo.MiddlewareFunc { return ReadAfterWithConfig(DefaultReadAfterConfig()) }

// ReadAfterWithConfig is ReadAfter with cfg.
func ReadAfterWithConfig(cfg ReadAfterConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultReadAfterConfig().MaxAge
	}
	cookie := func(c echo.Context, value string, maxAge int) {
		c.SetCookie(&http.Cookie{
			Name: tier.ReadAfterCookie, Value: value, Path: "/", MaxAge: maxAge,
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Scheme() == "https",
		})
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			req := c.Request()
			var after tier.Position
			if v := req.Header.Get(tier.ReadAfterHeader); v != "" {
				p, err := tier.ParsePosition(v)
				if err != nil {
					return tier.NewProblem(http.StatusBadRequest, "the "+tier.ReadAfterHeader+" header is "+err.Error())
				}
				after = p
			}
			if k, err := req.Cookie(tier.ReadAfterCookie); err == nil {
				p, err := tier.ParsePosition(k.Value)
				if err != nil {
					cookie(c, "", -1)
					return tier.NewProblem(http.StatusBadRequest, "the "+tier.ReadAfterCookie+" cookie is "+err.Error()+"; this answer clears it")
				}
				after = max(after, p)
			}
			ra := readafter.New(after)
			c.SetRequest(req.WithContext(readafter.With(req.Context(), ra)))
			handed := false
			hand := func() {
				if p := ra.Written(); p != 0 && !handed {
					handed = true
					c.Response().Header().Set(tier.ReadAfterHeader, p.String())
					// A browser's script calling the API from another origin
					// may read only the response headers CORS exposes; Add
					// keeps those a CORS middleware exposed already.
					c.Response().Header().Add(echo.HeaderAccessControlExposeHeaders, tier.ReadAfterHeader)
					cookie(c, p.String(), max(1, int(cfg.MaxAge.Seconds())))
				}
			}
			// The handler has written to the database by the time it
			// writes its answer's header; one that writes none gets it
			// on return.
			c.Response().Before(hand)
			err := next(c)
			if err == nil && !c.Response().Committed {
				hand()
			}
			return err
		}
	}
}
