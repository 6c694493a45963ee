package api

// Tenant-wide privacy operations: offboarding (stop everything, erase
// after a grace period, cancellable meanwhile) and anonymous statistics.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/termind/termind/internal/store"
)

// TenantStore is the part of *store.Store the tenant routes (offboarding,
// statistics, consent receipts, records of processing) use. Deps.Tenants
// may name it; otherwise the API uses Deps.Store when it has these methods.
type TenantStore interface {
	BeginOffboarding(ctx context.Context, tenantID string, req store.OffboardRequest) (store.OffboardReport, error)
	CancelOffboarding(ctx context.Context, tenantID, actor, sourceIP string, now time.Time) error
	GetOffboarding(ctx context.Context, tenantID string) (store.Offboarding, error)
	TenantStats(ctx context.Context, q store.StatsQuery, now time.Time) (store.Stats, error)
	GetConsent(ctx context.Context, tenantID, subjectID, id string) (store.Consent, error)
	GetTenantController(ctx context.Context, tenantID string) (store.Controller, error)
	SetTenantController(ctx context.Context, c store.Controller) error
}

// Error codes of the tenant routes.
const (
	// codeTenantOffboarding: the tenant is being offboarded; its keys reach
	// only the offboarding routes (403), and offboarding twice is a 409.
	codeTenantOffboarding = "tenant_offboarding"
	// codeNotOffboarding: cancel without an offboarding to cancel.
	codeNotOffboarding = "not_offboarding"
)

// maxGraceDays bounds the grace period of an offboarding.
const maxGraceDays = 365

// tenantStore answers 503 when no TenantStore is wired.
func (s *server) tenantStore(w http.ResponseWriter) TenantStore {
	if s.tenants == nil {
		writeError(w, notConfigured("tenant operations"))
	}
	return s.tenants
}

// refuseSuspended lets a key of an offboarding tenant through only to the
// routes marked for it (the offboarding routes): processing has stopped.
func refuseSuspended(allow bool, next authedHandler) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, key store.APIKey) {
		if key.Suspended && !allow {
			writeError(w, &apiError{Status: http.StatusForbidden, Code: codeTenantOffboarding,
				Message: "the tenant is being offboarded: processing has stopped; an admin key may cancel with POST /v1/tenant/offboard/cancel"})
			return
		}
		next(w, r, key)
	}
}

type offboardRequest struct {
	// GraceDays is how long the offboarding can be cancelled (default 28).
	GraceDays *int `json:"grace_days"`
}

type offboardingView struct {
	TenantID            string   `json:"tenant_id"`
	Status              string   `json:"status"` // offboarding | erased | active
	RequestedAt         string   `json:"requested_at,omitempty"`
	PurgeAt             string   `json:"purge_at,omitempty"`
	PurgedAt            string   `json:"purged_at,omitempty"`
	ConnectionsRevoking []string `json:"connections_revoking,omitempty"`
	// NotificationsCancelled and KeysSuspended are set on the answer to
	// POST /v1/tenant/offboard.
	NotificationsCancelled *int64 `json:"notifications_cancelled,omitempty"`
	KeysSuspended          *int64 `json:"keys_suspended,omitempty"`
}

func viewOffboarding(o store.Offboarding) offboardingView {
	v := offboardingView{TenantID: o.TenantID, Status: "offboarding", RequestedAt: rfc3339(o.RequestedAt),
		PurgeAt: rfc3339(o.PurgeAt), PurgedAt: rfc3339(o.PurgedAt)}
	if !o.PurgedAt.IsZero() {
		v.Status = "erased"
	}
	return v
}

// offboardTenant is POST /v1/tenant/offboard: in one commit every
// connection is revoked, scheduled notifications are cancelled and the
// tenant's keys are suspended; the calendar cleanup of each connection
// then goes to the queue, as for a single revocation.
func (s *server) offboardTenant(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	ts := s.tenantStore(w)
	if ts == nil {
		return
	}
	var req offboardRequest
	if !readJSON(w, r, maxBodyBytes, &req, true) {
		return
	}
	grace := store.DefaultOffboardingGrace
	if req.GraceDays != nil {
		if *req.GraceDays < 1 || *req.GraceDays > maxGraceDays {
			writeError(w, invalidField("grace_days", "must be a whole number of days from 1 to 365"))
			return
		}
		grace = time.Duration(*req.GraceDays) * 24 * time.Hour
	}
	rep, err := ts.BeginOffboarding(r.Context(), key.TenantID, store.OffboardRequest{Grace: grace, Actor: actorOf(key),
		SourceIP: sourceIP("", r), Now: s.now()})
	if errors.Is(err, store.ErrConflict) {
		writeError(w, &apiError{Status: http.StatusConflict, Code: codeTenantOffboarding, Message: "the tenant is already being offboarded"})
		return
	}
	if err != nil {
		s.internalError(w, r, "begin offboarding", err)
		return
	}
	for _, id := range rep.Revoking {
		s.enqueueRevoke(r, key.TenantID, id)
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "tenant offboarding",
		slog.String("tenant_id", key.TenantID), slog.Int("connections_revoking", len(rep.Revoking)),
		slog.Int64("notifications_cancelled", rep.Notifications), slog.Int64("keys_suspended", rep.Keys))
	v := viewOffboarding(rep.Offboarding)
	v.ConnectionsRevoking = rep.Revoking
	v.NotificationsCancelled, v.KeysSuspended = &rep.Notifications, &rep.Keys
	writeJSON(w, http.StatusAccepted, v)
}

// getOffboarding is GET /v1/tenant/offboard: the offboarding's state.
func (s *server) getOffboarding(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	ts := s.tenantStore(w)
	if ts == nil {
		return
	}
	o, err := ts.GetOffboarding(r.Context(), key.TenantID)
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusOK, offboardingView{TenantID: key.TenantID, Status: "active"})
		return
	}
	if err != nil {
		s.internalError(w, r, "get offboarding", err)
		return
	}
	writeJSON(w, http.StatusOK, viewOffboarding(o))
}

// cancelOffboarding is POST /v1/tenant/offboard/cancel: within the grace
// period the keys work again. Revoked connections stay revoked and
// cancelled notifications stay cancelled.
func (s *server) cancelOffboarding(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	ts := s.tenantStore(w)
	if ts == nil {
		return
	}
	err := ts.CancelOffboarding(r.Context(), key.TenantID, actorOf(key), sourceIP("", r), s.now())
	if errors.Is(err, store.ErrConflict) {
		writeError(w, &apiError{Status: http.StatusConflict, Code: codeNotOffboarding,
			Message: "the tenant is not being offboarded, or its grace period is over"})
		return
	}
	if err != nil {
		s.internalError(w, r, "cancel offboarding", err)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "tenant offboarding cancelled", slog.String("tenant_id", key.TenantID))
	writeJSON(w, http.StatusOK, offboardingView{TenantID: key.TenantID, Status: "active"})
}

// Statistics ranges: a day series covers at most 366 days, a month series
// at most 10 years.
const (
	maxStatsDays   = 366
	maxStatsMonths = 120
)

type statValue struct {
	Period     string `json:"period,omitempty"`
	Metric     string `json:"metric"`
	Channel    string `json:"channel,omitempty"`
	Status     string `json:"status,omitempty"`
	Provider   string `json:"provider,omitempty"`
	State      string `json:"state,omitempty"`
	Count      *int64 `json:"count"` // null when suppressed
	Suppressed bool   `json:"suppressed,omitempty"`
}

type statsView struct {
	From                 string      `json:"from"`
	To                   string      `json:"to"`
	Granularity          string      `json:"granularity"`
	SuppressionThreshold int         `json:"suppression_threshold"`
	Items                []statValue `json:"items"`
	Connections          struct {
		AsOf  string      `json:"as_of"`
		Items []statValue `json:"items"`
	} `json:"connections"`
}

func viewStat(v store.StatValue) statValue {
	out := statValue{Period: v.Period, Metric: v.Metric, Channel: v.Channel, Status: v.Status, Provider: v.Provider,
		State: v.State, Suppressed: v.Suppressed}
	if !v.Suppressed {
		n := v.Count
		out.Count = &n
	}
	return out
}

// tenantStats is GET /v1/stats?from=&to=&granularity=: anonymous counts
// (bookings, reschedules, cancellations, notifications by channel and
// status, connections by provider and state), small counts suppressed.
// from and to are days (YYYY-MM-DD, UTC, inclusive); default the last 30
// days up to today, per day.
func (s *server) tenantStats(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	ts := s.tenantStore(w)
	if ts == nil {
		return
	}
	q := r.URL.Query()
	now := s.now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	to, from := today, today.AddDate(0, 0, -29)
	var aerr *apiError
	if v := q.Get("to"); v != "" {
		if to, aerr = parseDay("to", v); aerr != nil {
			writeError(w, aerr)
			return
		}
		from = to.AddDate(0, 0, -29)
	}
	if v := q.Get("from"); v != "" {
		if from, aerr = parseDay("from", v); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	granularity := q.Get("granularity")
	if granularity == "" {
		granularity = store.GranularityDay
	}
	if granularity != store.GranularityDay && granularity != store.GranularityMonth {
		writeError(w, invalidField("granularity", "must be day or month"))
		return
	}
	if from.After(to) {
		writeError(w, invalidField("from", "must not be after to"))
		return
	}
	switch {
	case granularity == store.GranularityDay && to.Sub(from) >= maxStatsDays*24*time.Hour:
		writeError(w, invalidField("from", "a day series covers at most 366 days; use granularity=month"))
		return
	case granularity == store.GranularityMonth && from.AddDate(0, maxStatsMonths, 0).Before(to):
		writeError(w, invalidField("from", "a month series covers at most 120 months"))
		return
	}
	st, err := ts.TenantStats(r.Context(), store.StatsQuery{TenantID: key.TenantID, From: from.Format(time.DateOnly),
		To: to.Format(time.DateOnly), Granularity: granularity}, now)
	if err != nil {
		s.internalError(w, r, "tenant stats", err)
		return
	}
	out := statsView{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Granularity: granularity,
		SuppressionThreshold: store.StatsSuppressBelow, Items: []statValue{}}
	for _, v := range st.Items {
		out.Items = append(out.Items, viewStat(v))
	}
	out.Connections.AsOf = rfc3339(st.AsOf)
	out.Connections.Items = []statValue{}
	for _, v := range st.Connections {
		out.Connections.Items = append(out.Connections.Items, viewStat(v))
	}
	writeJSON(w, http.StatusOK, out)
}

func parseDay(field, v string) (time.Time, *apiError) {
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, invalidField(field, "must be a date YYYY-MM-DD")
	}
	return d, nil
}
