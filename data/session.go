package data

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
)

// A session remembers whether a request wrote, for read-your-writes.
type session struct{ wrote atomic.Bool }

func (s *session) markWrote()  { s.wrote.Store(true) }
func (s *session) Wrote() bool { return s.wrote.Load() }

type sessionKey struct{}

// WithSession returns a context that carries a read-your-writes session:
// once a statement run with it (or a context derived from it) writes, later
// reads with it go to the primary rather than to a replica that may not
// have the write yet. Without a session, reads go to replicas. Start one per
// request (see SessionMiddleware); without replicas it changes nothing.
func WithSession(ctx context.Context) context.Context {
	if sessionFrom(ctx) != nil {
		return ctx
	}
	return context.WithValue(ctx, sessionKey{}, new(session))
}

// SessionMiddleware starts a read-your-writes session for each request. In
// Echo: e.Use(echo.WrapMiddleware(data.SessionMiddleware)).
func SessionMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(WithSession(r.Context())))
	})
}

func sessionFrom(ctx context.Context) *session {
	if ctx == nil {
		return nil
	}
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// isSelect reports whether raw SQL only reads, as dbresolver guesses it.
func isSelect(sql string) bool {
	sql = strings.TrimSpace(sql)
	return len(sql) > 10 && strings.EqualFold(sql[:6], "select") && !strings.EqualFold(sql[len(sql)-10:], "for update")
}
