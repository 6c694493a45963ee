package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/termind/termind/internal/processing"
	"github.com/termind/termind/internal/store"
)

// ProcessingRecords builds a tenant's records of processing from the
// running setup, the tenant's retention policy and the connections that
// are not revoked (their CalDAV hosts are processors). The CLI uses it too.
func ProcessingRecords(setup processing.Setup, t store.Tenant, p store.RetentionPolicy, conns []store.Connection, now func() time.Time) processing.Records {
	var in []processing.Connection
	for _, c := range conns {
		if c.State != store.ConnRevoked {
			in = append(in, processing.Connection{Provider: c.Provider, CalendarURL: c.CalendarURL})
		}
	}
	return processing.Build(setup, processing.Tenant{ID: t.ID, Name: t.Name, NotificationRetention: p.Notifications,
		AuditRetention: p.Audit, ImportedEventRetention: p.ImportedEvents, BrokenConnectionRetention: p.BrokenConnections,
		InactiveSubjects: p.InactiveSubjects, InactivityAction: p.InactivityAction}, in, now())
}

// processingRecords is GET /v1/tenant/processing-records: JSON, or
// Markdown with Accept: text/markdown or ?format=markdown.
func (s *server) processingRecords(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	format := r.URL.Query().Get("format")
	switch format {
	case "":
		if strings.Contains(r.Header.Get("Accept"), "text/markdown") {
			format = "markdown"
		}
	case "json", "markdown":
	default:
		writeError(w, invalidField("format", "must be json or markdown"))
		return
	}
	t, err := s.store.GetTenant(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get tenant", err)
		return
	}
	conns, err := s.store.ListConnections(r.Context(), key.TenantID, "")
	if err != nil {
		s.internalError(w, r, "list connections", err)
		return
	}
	policy, err := s.store.GetRetentionPolicy(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get retention policy", err)
		return
	}
	rec := ProcessingRecords(s.cfg.Processing, t, policy, conns, s.now)
	if format == "markdown" {
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(rec.Markdown()))
		return
	}
	writeJSON(w, http.StatusOK, rec)
}
