package stats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/tier"
)

// maxActionBody bounds an action's JSON body: a URL, a weight and a flag.
const maxActionBody = 16 << 10

// actionRequest is the body of a runtime action.
type actionRequest struct {
	URL    string `json:"url"`
	Weight *int   `json:"weight,omitempty"`
	Backup bool   `json:"backup,omitempty"`
}

// Runtime actions, the last segment of /api/pools/{pool}/endpoints/{action}.
const (
	actionDrain   = "drain"
	actionUndrain = "undrain"
	actionWeight  = "weight"
	actionAdd     = "add"
	actionRemove  = "remove"
)

func (s *Stats) serveAction(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.problem(w, r, http.StatusMethodNotAllowed, "runtime actions are POST requests")
		return
	}
	// The token comes first, so that a caller without it learns nothing,
	// not even which pools exist.
	if !s.authorized(w, r) {
		return
	}
	action := r.PathValue("action")
	switch action {
	case actionDrain, actionUndrain, actionWeight, actionAdd, actionRemove:
	default:
		s.problem(w, r, http.StatusNotFound, fmt.Sprintf("no action %q: use drain, undrain, weight, add or remove", action))
		return
	}
	p := s.byName[r.PathValue("pool")]
	if p == nil {
		s.problem(w, r, http.StatusNotFound, fmt.Sprintf("no pool %q", r.PathValue("pool")))
		return
	}
	req, err := decodeAction(w, r)
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if req.URL == "" {
		s.problem(w, r, http.StatusBadRequest, `the body needs the endpoint's "url"`)
		return
	}
	if action == actionWeight && req.Weight == nil {
		s.problem(w, r, http.StatusBadRequest, `the body needs the new "weight"`)
		return
	}
	weight := 0
	if req.Weight != nil {
		weight = *req.Weight
	}

	start := time.Now()
	switch action {
	case actionDrain, actionRemove:
		// The wait is the client's, capped: an endpoint with a stuck
		// request must not hold an admin's terminal for ever. It stays
		// drained (or removed) when the wait ends first.
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.DrainTimeout)
		defer cancel()
		if action == actionDrain {
			err = p.Drain(ctx, req.URL)
		} else {
			err = p.Remove(ctx, req.URL)
		}
	case actionUndrain:
		err = p.Undrain(req.URL)
	case actionWeight:
		err = p.SetWeight(req.URL, weight)
	case actionAdd:
		err = p.Add(balancer.Endpoint{URL: req.URL, Weight: weight, Backup: req.Backup})
	}

	attrs := []any{"action", action, "pool", p.Name(), "endpoint", req.URL,
		"remote", r.RemoteAddr, "user_agent", r.UserAgent(), "took", time.Since(start)}
	if req.Weight != nil {
		attrs = append(attrs, "weight", weight)
	}
	if req.Backup {
		attrs = append(attrs, "backup", true)
	}
	status := http.StatusOK
	var ce *tier.ConfigError
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		// Drained or removed, with requests still finishing.
		status = http.StatusAccepted
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		s.log.InfoContext(r.Context(), "runtime action", append(attrs, "result", "client left while waiting; the action stands")...)
		return
	case errors.Is(err, balancer.ErrUnknownEndpoint):
		s.log.InfoContext(r.Context(), "runtime action", append(attrs, "result", "unknown endpoint")...)
		s.problem(w, r, http.StatusNotFound, fmt.Sprintf("pool %q has no endpoint %q", p.Name(), req.URL))
		return
	case errors.As(err, &ce):
		s.log.InfoContext(r.Context(), "runtime action", append(attrs, "result", "rejected", "error", err)...)
		s.problem(w, r, http.StatusUnprocessableEntity, ce.Error())
		return
	case action == actionAdd:
		// Add's only error that is not about its argument: the endpoint
		// is in the pool already.
		s.log.InfoContext(r.Context(), "runtime action", append(attrs, "result", "rejected", "error", err)...)
		s.problem(w, r, http.StatusConflict, err.Error())
		return
	default:
		s.log.ErrorContext(r.Context(), "runtime action", append(attrs, "result", "failed", "error", err)...)
		s.problem(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	result := "done"
	if status == http.StatusAccepted {
		result = "requests still in flight after " + s.cfg.DrainTimeout.String()
	}
	s.log.InfoContext(r.Context(), "runtime action", append(attrs, "result", result)...)
	writeJSON(w, status, p.Status())
}

// decodeAction reads the one JSON object of an action's body; unknown
// fields are refused, so that a typo ("wieght") is not silently a no-op.
func decodeAction(w http.ResponseWriter, r *http.Request) (actionRequest, error) {
	return decodeOne[actionRequest](w, r, `{"url": "http://host:port"}`)
}

// decodeOne reads a body that must be one JSON object of type T, and no
// field T does not have; example shows the object in the error for an
// empty body.
func decodeOne[T any](w http.ResponseWriter, r *http.Request, example string) (T, error) {
	var req T
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return req, fmt.Errorf("the body must be application/json, not %q", ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxActionBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return req, errors.New("the body must be a JSON object: " + example)
		}
		return req, fmt.Errorf("the body is not the expected JSON object: %v", err)
	}
	if dec.More() {
		return req, errors.New("the body must hold one JSON object")
	}
	return req, nil
}
