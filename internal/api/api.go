// Package api is termind's HTTP interface: booking systems enqueue
// notifications and record consent decisions, operators restrict subjects,
// and Twilio reports deliveries. Input is validated completely before
// anything is stored or enqueued; every refusal names the field and the rule.
//
// Where things are:
//
//	api.go            Config, Deps, the interfaces the API needs, the route table
//	middleware.go     access log, panic recovery, JSON 404/405, bearer auth
//	errors.go         the error envelope and its codes
//	jsonio.go         body limits, strict JSON decoding, JSON answers
//	validate.go       notification rules and the idempotency hash
//	notifications.go  create, batch, show, cancel
//	consents.go       consent ledger and subject restriction
//	twilio.go         Twilio delivery callbacks
//	health.go         liveness and readiness
package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/termind/termind/internal/store"
)

// Config holds the settings the HTTP layer needs.
type Config struct {
	// PublicURL is the base URL providers reach termind at; Twilio signs
	// PublicURL + path and query.
	PublicURL string
	// TwilioAuthToken verifies X-Twilio-Signature. Empty: the Twilio webhook
	// answers 404, as if it did not exist.
	TwilioAuthToken string
	// MaxBatch caps the items of one batch request (default 1000).
	MaxBatch int
}

// Store is the part of *store.Store the API uses.
type Store interface {
	LookupAPIKey(ctx context.Context, token string) (store.APIKey, error)
	GetTenant(ctx context.Context, id string) (store.Tenant, error)
	CreateNotifications(ctx context.Context, items []store.Notification) ([]store.CreateResult, error)
	GetNotification(ctx context.Context, tenantID, id string) (store.Notification, error)
	CancelNotification(ctx context.Context, tenantID, id string, now time.Time) (store.Notification, error)
	RecordConsent(ctx context.Context, c store.Consent) (store.Consent, error)
	ListConsents(ctx context.Context, tenantID, subjectID string) ([]store.Consent, error)
	SetSubjectRestricted(ctx context.Context, tenantID, subjectID string, restricted bool) error
	GetSubject(ctx context.Context, tenantID, subjectID string) (store.Subject, error)
	UpdateDeliveryStatus(ctx context.Context, providerID, status, reason string, now time.Time) (store.Notification, error)
	SetSMSOptedOut(ctx context.Context, tenantID, subjectID string) error
}

// Renderer checks that a notification can be rendered: the template and
// locale exist, every variable is present and well-formed, and an SMS fits
// its segment limit. A *templates.FieldError names the offending field.
type Renderer interface {
	Check(tenantID, channel, name string, locales []string, data map[string]any) error
}

// Enqueuer hands a stored notification to the queue. The task carries ids
// only.
type Enqueuer interface {
	EnqueueNotification(ctx context.Context, id string, attempt int, at time.Time) error
}

// Deps are the collaborators of the API.
type Deps struct {
	Store    Store
	Renderer Renderer
	Queue    Enqueuer
	Logger   *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now
	// Ready reports whether the process can serve (store and queue
	// reachable). nil: always ready. Its error text is not shown to clients.
	Ready func(ctx context.Context) error
}

const defaultMaxBatch = 1000

// server holds the handlers' shared state; it is immutable after New.
type server struct {
	cfg      Config
	store    Store
	renderer Renderer
	queue    Enqueuer
	log      *slog.Logger
	now      func() time.Time
	ready    func(ctx context.Context) error
}

// New returns the HTTP handler of the API.
func New(cfg Config, d Deps) http.Handler {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = defaultMaxBatch
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	s := &server{
		cfg:      cfg,
		store:    d.Store,
		renderer: d.Renderer,
		queue:    d.Queue,
		log:      d.Logger,
		now:      d.Now,
		ready:    d.Ready,
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ready == nil {
		s.ready = func(context.Context) error { return nil }
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/notifications", s.auth(store.RoleIngest, s.createNotification))
	mux.HandleFunc("POST /v1/notifications/batch", s.auth(store.RoleIngest, s.createNotificationBatch))
	mux.HandleFunc("GET /v1/notifications/{id}", s.auth(store.RoleIngest, s.getNotification))
	mux.HandleFunc("DELETE /v1/notifications/{id}", s.auth(store.RoleIngest, s.cancelNotification))
	mux.HandleFunc("POST /v1/consents", s.auth(store.RoleIngest, s.recordConsent))
	mux.HandleFunc("GET /v1/subjects/{id}/consents", s.auth(store.RoleIngest, s.listConsents))
	mux.HandleFunc("POST /v1/subjects/{id}/restrict", s.auth(store.RoleAdmin, s.restrictSubject(true)))
	mux.HandleFunc("POST /v1/subjects/{id}/unrestrict", s.auth(store.RoleAdmin, s.restrictSubject(false)))
	mux.HandleFunc("POST /webhooks/twilio/status", s.twilioStatus)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)

	return s.accessLog(s.recoverPanics(jsonFallbacks(mux)))
}
