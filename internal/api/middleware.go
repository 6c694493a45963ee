package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/termind/termind/internal/store"
)

// statusWriter remembers the status code for the access log and whether
// anything was written (a panic after the header was sent cannot change it).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog writes one line per request. It logs the matched route pattern,
// never the raw path: paths carry subject ids.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("route", r.Pattern),
			slog.Int("status", status),
			slog.Int64("duration_ms", time.Since(start).Milliseconds()),
		)
	})
}

// recoverPanics turns a panicking handler into a 500 with the error
// envelope, so one bad request does not take the connection down silently.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			// The panic value may hold request data: log only its type.
			s.log.Error("handler panicked", "route", r.Pattern, "panic_type", typeName(v))
			if sw.status == 0 {
				writeError(sw, errInternal)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

func typeName(v any) string {
	switch v.(type) {
	case error:
		return "error"
	case string:
		return "string"
	default:
		return "other"
	}
}

// jsonFallbacks lets the mux decide between 404 and 405 for requests no
// route matches, and answers them with the error envelope instead of the
// mux's plain text.
func jsonFallbacks(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			if allow := probe.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: codeMethodNotAllowed, Message: "this method is not allowed here"})
			return
		}
		writeError(w, notFound("no such route"))
	})
}

// statusProbe records what the mux's own fallback handler would answer.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *statusProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

// authedHandler is a handler that runs with an authenticated key; the key's
// tenant scopes everything it does.
type authedHandler func(w http.ResponseWriter, r *http.Request, key store.APIKey)

// auth checks the bearer token and the key's role. An admin key may do
// everything an ingest key may.
func (s *server) auth(role string, next authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			unauthenticated(w, "send Authorization: Bearer <api key>")
			return
		}
		key, err := s.store.LookupAPIKey(r.Context(), token)
		if errors.Is(err, store.ErrNotFound) {
			unauthenticated(w, "the API key is not valid")
			return
		}
		if err != nil {
			s.internalError(w, r, "look up api key", err)
			return
		}
		if role == store.RoleAdmin && key.Role != store.RoleAdmin {
			writeError(w, &apiError{Status: http.StatusForbidden, Code: codeForbidden, Message: "this needs an admin API key"})
			return
		}
		next(w, r, key)
	}
}

func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

func unauthenticated(w http.ResponseWriter, message string) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeError(w, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthenticated, Message: message})
}

// internalError logs what failed (the error text of our own wrapping, no
// request data) and answers 500.
func (s *server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
		slog.String("route", r.Pattern), slog.String("op", what), slog.String("err", err.Error()))
	writeError(w, errInternal)
}

// detached keeps request-scoped values but not the cancellation: work that
// must finish after the commit (enqueueing) is not cut short when the
// client hangs up.
func detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
