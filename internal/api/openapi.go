package api

import (
	"crypto/subtle"
	_ "embed"
	"net"
	"net/http"
	"net/netip"
)

// openAPIDocument describes every route of table(); openapi_test.go fails
// when the two disagree.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3 description of the API.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

func (s *server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openAPIDocument)
}

// metrics serves Deps.Metrics. With Config.MetricsToken it needs that
// bearer token; without one only loopback peers may scrape, so that a
// listener exposed to the internet does not publish operational figures.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.metricsHandler == nil {
		writeError(w, notFound("no such route"))
		return
	}
	if s.cfg.MetricsToken != "" {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.MetricsToken)) != 1 {
			unauthenticated(w, "send Authorization: Bearer <TERMIND_METRICS_TOKEN>")
			return
		}
	} else if !loopbackPeer(r) {
		writeError(w, &apiError{Status: http.StatusForbidden, Code: codeForbidden,
			Message: "metrics are served to loopback clients only; set TERMIND_METRICS_TOKEN to scrape from elsewhere"})
		return
	}
	s.metricsHandler.ServeHTTP(w, r)
}

func loopbackPeer(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

type noObserver struct{}

func (noObserver) NotificationState(string, string, string) {}
