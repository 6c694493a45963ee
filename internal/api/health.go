package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

const readyTimeout = 2 * time.Second

type healthStatus struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthStatus{Status: "ok"})
}

// readyz reports whether the dependencies answer. The error's text stays in
// the log: it may name hosts or users.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "not ready", slog.String("err", err.Error()))
		writeJSON(w, http.StatusServiceUnavailable, healthStatus{Status: "unavailable", Reason: "a dependency (store or queue) is not reachable"})
		return
	}
	writeJSON(w, http.StatusOK, healthStatus{Status: "ready"})
}
