package api

// Retention policy of the tenant and legal holds (admin routes).

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/termind/termind/internal/store"
)

// codeLegalHold: the request would delete records a legal hold keeps
// (erasure of a held subject). Part of the public API like the codes in
// errors.go.
const codeLegalHold = "legal_hold"

// retentionView is the policy on the wire, windows in whole days. In a
// PUT every field is optional: an omitted one keeps its value.
type retentionView struct {
	NotificationsDays     *int    `json:"notifications_days"`
	AuditDays             *int    `json:"audit_days"`
	ImportedEventsDays    *int    `json:"imported_events_days"`
	BrokenConnectionsDays *int    `json:"broken_connections_days"`
	InactiveSubjectsDays  *int    `json:"inactive_subjects_days"`
	InactivityAction      *string `json:"inactivity_action"`
}

// retentionFields maps the store's policy fields to the names in the body.
var retentionFields = map[string]string{
	store.PolicyNotifications:     "notifications_days",
	store.PolicyAudit:             "audit_days",
	store.PolicyImportedEvents:    "imported_events_days",
	store.PolicyBrokenConnections: "broken_connections_days",
	store.PolicyInactiveSubjects:  "inactive_subjects_days",
	store.PolicyInactivityAction:  "inactivity_action",
}

func viewRetention(p store.RetentionPolicy) retentionView {
	days := func(d time.Duration) *int { n := int(d / store.Day); return &n }
	action := p.InactivityAction
	return retentionView{days(p.Notifications), days(p.Audit), days(p.ImportedEvents),
		days(p.BrokenConnections), days(p.InactiveSubjects), &action}
}

// applyTo returns p with the fields given in v. Day counts far outside
// any limit become an invalid duration, so that Validate names them
// instead of the multiplication overflowing.
func (v retentionView) applyTo(p store.RetentionPolicy) store.RetentionPolicy {
	set := func(dst *time.Duration, days *int) {
		switch {
		case days == nil:
		case *days < 0 || *days > 1_000_000:
			*dst = -1
		default:
			*dst = time.Duration(*days) * store.Day
		}
	}
	set(&p.Notifications, v.NotificationsDays)
	set(&p.Audit, v.AuditDays)
	set(&p.ImportedEvents, v.ImportedEventsDays)
	set(&p.BrokenConnections, v.BrokenConnectionsDays)
	set(&p.InactiveSubjects, v.InactiveSubjectsDays)
	if v.InactivityAction != nil {
		p.InactivityAction = *v.InactivityAction
	}
	return p
}

// fieldError turns a store rule violation into a 422 naming the field as
// the client wrote it.
func fieldError(fe *store.FieldError, names map[string]string) *apiError {
	field := fe.Field
	if n, ok := names[field]; ok {
		field = n
	}
	return invalidField(field, fe.Rule)
}

func (s *server) getRetention(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	p, err := s.store.GetRetentionPolicy(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get retention policy", err)
		return
	}
	writeJSON(w, http.StatusOK, viewRetention(p))
}

// putRetention changes the policy; the store validates it, recomputes
// the expiry of stored records and audits the change (old → new).
func (s *server) putRetention(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	var req retentionView
	if !readJSON(w, r, maxBodyBytes, &req, false) {
		return
	}
	cur, err := s.store.GetRetentionPolicy(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get retention policy", err)
		return
	}
	p, err := s.store.SetRetentionPolicy(r.Context(), key.TenantID, req.applyTo(cur), actorOf(key), sourceIP("", r), s.now())
	var fe *store.FieldError
	if errors.As(err, &fe) {
		writeError(w, fieldError(fe, retentionFields))
		return
	}
	if err != nil {
		s.internalError(w, r, "set retention policy", err)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "retention policy set", slog.String("tenant_id", key.TenantID))
	writeJSON(w, http.StatusOK, viewRetention(p))
}

// holdRequest is POST /v1/holds; without subject_id the hold covers the
// whole tenant.
type holdRequest struct {
	SubjectID string `json:"subject_id"`
	Reason    string `json:"reason"`
	Until     string `json:"until"`
}

type holdView struct {
	ID        string `json:"id"`
	Scope     string `json:"scope"` // subject | tenant
	SubjectID string `json:"subject_id,omitempty"`
	Reason    string `json:"reason"`
	State     string `json:"state"` // active | released | expired
	Until     string `json:"until"`
	CreatedAt string `json:"created_at"`
	CreatedBy string `json:"created_by"`
	EndedAt   string `json:"ended_at,omitempty"`
	EndedBy   string `json:"ended_by,omitempty"`
}

func viewHold(h store.LegalHold, now time.Time) holdView {
	scope := "subject"
	if h.SubjectID == "" {
		scope = "tenant"
	}
	return holdView{ID: h.ID, Scope: scope, SubjectID: h.SubjectID, Reason: h.Reason, State: h.State(now),
		Until: rfc3339(h.Until), CreatedAt: rfc3339(h.CreatedAt), CreatedBy: h.Actor,
		EndedAt: rfc3339(h.EndedAt), EndedBy: h.EndedBy}
}

func (s *server) placeHold(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	var req holdRequest
	if !readJSON(w, r, maxBodyBytes, &req, false) {
		return
	}
	if req.SubjectID != "" {
		if msg := checkSubjectID(req.SubjectID); msg != "" {
			writeError(w, invalidField("subject_id", msg))
			return
		}
	}
	if req.Until == "" {
		writeError(w, invalidField("until", "is required: the end date of the hold (RFC 3339)"))
		return
	}
	until, err := time.Parse(time.RFC3339, req.Until)
	if err != nil {
		writeError(w, invalidField("until", "must be an RFC 3339 time such as 2027-06-30T00:00:00Z"))
		return
	}
	now := s.now()
	h, err := s.store.PlaceHold(r.Context(), store.LegalHold{TenantID: key.TenantID, SubjectID: req.SubjectID,
		Reason: req.Reason, Until: until, Actor: actorOf(key)}, sourceIP("", r), now)
	var fe *store.FieldError
	if errors.As(err, &fe) {
		writeError(w, fieldError(fe, nil))
		return
	}
	if err != nil {
		s.internalError(w, r, "place hold", err)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "legal hold placed",
		slog.String("tenant_id", key.TenantID), slog.String("hold_id", h.ID))
	writeJSON(w, http.StatusCreated, viewHold(h, now))
}

func (s *server) listHolds(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	holds, err := s.store.ListHolds(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "list holds", err)
		return
	}
	now := s.now()
	items := make([]holdView, 0, len(holds))
	for _, h := range holds {
		items = append(items, viewHold(h, now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *server) releaseHold(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	now := s.now()
	h, err := s.store.ReleaseHold(r.Context(), key.TenantID, r.PathValue("id"), actorOf(key), sourceIP("", r), now)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFound("no legal hold with this id"))
		return
	}
	if err != nil {
		s.internalError(w, r, "release hold", err)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "legal hold ended",
		slog.String("tenant_id", key.TenantID), slog.String("hold_id", h.ID), slog.String("state", h.State(now)))
	writeJSON(w, http.StatusOK, viewHold(h, now))
}

// heldConflict is the 409 for an erasure a legal hold forbids.
func heldConflict(he *store.HeldError) *apiError {
	scope := "the subject"
	if he.Tenant {
		scope = "the whole tenant"
	}
	return &apiError{Status: http.StatusConflict, Code: codeLegalHold, Field: "id",
		Message: fmt.Sprintf("legal hold %s covers %s until %s; release it first (DELETE /v1/holds/%s)",
			he.HoldID, scope, rfc3339(he.Until), he.HoldID)}
}
