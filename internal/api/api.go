// Package api is termind's HTTP interface: booking systems enqueue
// notifications, upsert and cancel appointments (copied to consented
// calendars, with their notices and reminders), read busy times, record
// consent decisions and connect their customers' calendars; operators restrict, export and erase subjects and revoke
// connections; Twilio reports deliveries and Google sends the browser back
// from its consent screen. Input is validated completely before anything is
// stored or enqueued; every refusal names the field and the rule. Every
// change to consent, connections or subjects leaves an audit entry.
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
//	audit.go          audit entries and the source address they record
//	calendar.go       calendar consent: which purposes a connection needs
//	connections.go    CalDAV connect, list, show, revoke
//	google.go         Google authorization and its OAuth callback
//	subjects.go       data-subject rights: export and erasure
//	appointments.go   appointment upsert and cancel: validation, pushes, notices and reminders
//	busy.go           a subject's busy times
//	sync.go           sync now, and the sync block of a connection's view
//	blocking.go       cross-calendar blocking of a connection (PATCH)
//	twilio.go         Twilio delivery callbacks
//	health.go         liveness and readiness
//	openapi.go        the embedded OpenAPI document (openapi.yaml) and /metrics access
//	retention.go      the tenant's retention policy and legal holds
//	tenant.go         tenant offboarding and anonymous statistics
//	records.go        records of processing
//	receipts.go       consent receipts and the controller details they name
package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/internal/processing"
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
	// PushDebounce: Google push notifications within one such period fold
	// into one pull (default 2 s).
	PushDebounce time.Duration
	// MaxBatch caps the items of one batch request (default 1000).
	MaxBatch int
	// OAuthStateKey signs the state parameter of Google authorizations
	// (HMAC-SHA256, at least google.MinStateKeyLen = 32 bytes). Shorter or
	// empty: the Google routes answer 503 not_configured.
	OAuthStateKey []byte
	// MetricsToken, when set, is the bearer token GET /metrics needs;
	// empty: /metrics answers loopback clients only.
	MetricsToken string
	// Processing is what the running configuration says about processors,
	// for the records of processing and consent receipts.
	Processing processing.Setup
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

	Audit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)
	CreateConnection(ctx context.Context, c store.Connection, credentials []byte, consents []store.Consent, audit store.AuditEntry) (store.Connection, error)
	GetConnection(ctx context.Context, tenantID, id string) (store.Connection, error)
	ListConnections(ctx context.Context, tenantID, subjectID string) ([]store.Connection, error)
	BeginRevocation(ctx context.Context, tenantID, id string, r store.Revocation) (store.Connection, error)
	SaveOAuthState(ctx context.Context, st store.OAuthState) error
	ConsumeOAuthState(ctx context.Context, nonce string, now time.Time) (store.OAuthState, error)
	ExportSubject(ctx context.Context, tenantID, subjectID string) (store.SubjectExport, error)
	EraseSubject(ctx context.Context, tenantID, subjectID, actor, sourceIP string) (store.EraseReport, error)

	UpsertAppointment(ctx context.Context, a store.Appointment) (store.AppointmentChange, error)
	GetAppointment(ctx context.Context, tenantID, id string) (store.Appointment, error)
	CancelAppointment(ctx context.Context, tenantID, id string) (store.AppointmentChange, error)
	AppointmentConnections(ctx context.Context, tenantID, appointmentID string) ([]store.Connection, error)
	CancelAppointmentNotifications(ctx context.Context, tenantID, appointmentID, purpose string) (int, error)
	BusyIntervals(ctx context.Context, tenantID, subjectID string, from, to time.Time) ([]store.BusyInterval, error)
	GetSyncStatus(ctx context.Context, connectionID string) (store.SyncStatus, error)
	VerifyWatchChannel(ctx context.Context, id, token string, now time.Time) (string, error)

	GetRetentionPolicy(ctx context.Context, tenantID string) (store.RetentionPolicy, error)
	SetRetentionPolicy(ctx context.Context, tenantID string, p store.RetentionPolicy, actor, sourceIP string, now time.Time) (store.RetentionPolicy, error)
	PlaceHold(ctx context.Context, h store.LegalHold, sourceIP string, now time.Time) (store.LegalHold, error)
	ListHolds(ctx context.Context, tenantID string) ([]store.LegalHold, error)
	ReleaseHold(ctx context.Context, tenantID, id, actor, sourceIP string, now time.Time) (store.LegalHold, error)
}

// Renderer checks that a notification can be rendered: the template and
// locale exist, every variable is present and well-formed, and an SMS fits
// its segment limit. A *templates.FieldError names the offending field.
type Renderer interface {
	Check(tenantID, channel, name string, locales []string, data map[string]any) error
}

// Enqueuer hands stored work to the queue: a notification to send, or the
// cleanup of a connection whose revocation has committed. Tasks carry ids
// only. Queues that also carry calendar work implement EnqueuePush
// (appointment copies) and EnqueuePull (sync now), as queue.Client does;
// the API finds them by type assertion.
type Enqueuer interface {
	EnqueueNotification(ctx context.Context, id string, attempt int, at time.Time) error
	EnqueueRevoke(ctx context.Context, connectionID string) error
}

// CalDAVConnector checks a CalDAV URL and credentials against the server
// and returns the calendar to sync with (see caldav.Connect). Its errors are
// *caldav.Error values. NewCalDAVConnector builds one on an HTTP client.
type CalDAVConnector interface {
	Connect(ctx context.Context, p caldav.ConnectParams) (caldav.Calendar, error)
}

// GoogleOAuth is the part of *google.OAuth the API uses: the consent
// screen's URL and the code exchange of the callback.
type GoogleOAuth interface {
	AuthCodeURL(state, verifier string, scopes []string) string
	Exchange(ctx context.Context, code, verifier string) (google.Token, error)
}

// Deps are the collaborators of the API.
type Deps struct {
	Store    Store
	Renderer Renderer
	Queue    Enqueuer
	// CalDAV connects CalDAV calendars. nil: POST /v1/connections/caldav
	// answers 503 not_configured.
	CalDAV CalDAVConnector
	// Google runs the OAuth flow of Google calendars. nil: the Google
	// routes answer 503 not_configured.
	Google GoogleOAuth
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// Ready reports whether the process can serve (store and queue
	// reachable). nil: always ready. Its error text is not shown to clients.
	Ready func(ctx context.Context) error
	// Metrics serves GET /metrics (a Prometheus handler). nil: 404.
	Metrics http.Handler
	// Observer counts the notification states the API sets (cancelled,
	// delivered, undelivered). nil: none.
	Observer NotificationObserver
	// Tenants serves offboarding, statistics and consent receipts. nil:
	// Store, when it implements TenantStore.
	Tenants TenantStore
}

// NotificationObserver is told each state a notification reaches
// (*metrics.Metrics).
type NotificationObserver interface {
	NotificationState(channel, template, status string)
}

const defaultMaxBatch = 1000

// server holds the handlers' shared state; it is immutable after New.
type server struct {
	cfg      Config
	store    Store
	renderer Renderer
	queue    Enqueuer
	caldav   CalDAVConnector
	google   GoogleOAuth
	log      *slog.Logger
	now      func() time.Time
	ready    func(ctx context.Context) error

	metricsHandler http.Handler
	observer       NotificationObserver
	tenants        TenantStore
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
		caldav:   d.CalDAV,
		google:   d.Google,
		log:      d.Logger,
		now:      d.Now,
		ready:    d.Ready,

		metricsHandler: d.Metrics,
		observer:       d.Observer,
		tenants:        d.Tenants,
	}
	if s.tenants == nil {
		s.tenants, _ = d.Store.(TenantStore)
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
	if s.observer == nil {
		s.observer = noObserver{}
	}

	mux := http.NewServeMux()
	for _, r := range s.table() {
		h := r.open
		if r.Role != "" {
			h = s.auth(r.Role, refuseSuspended(r.duringOffboarding, r.keyed))
		}
		mux.HandleFunc(r.Method+" "+r.Pattern, h)
	}
	return s.accessLog(s.recoverPanics(jsonFallbacks(mux)))
}

// Route is one endpoint of the API, as the OpenAPI description and the
// security tests enumerate them.
type Route struct {
	Method, Pattern string
	// Role is the API key role the route needs (store.RoleIngest,
	// store.RoleAdmin); "" for routes reached without an API key (OAuth
	// callback, signed webhooks, health checks).
	Role string
}

// Routes lists every route New serves.
func Routes() []Route {
	var out []Route
	for _, r := range (&server{}).table() {
		out = append(out, r.Route)
	}
	return out
}

// route is a Route with its handler: keyed for routes with a Role, open
// for the others.
type route struct {
	Route
	keyed authedHandler
	open  http.HandlerFunc
	// duringOffboarding: keys of an offboarding tenant may use the route.
	duringOffboarding bool
}

func keyed(method, pattern, role string, h authedHandler) route {
	return route{Route: Route{method, pattern, role}, keyed: h}
}

// offboarding is an admin route that stays open to the keys of an
// offboarding tenant, so that the offboarding can be inspected and cancelled.
func offboarding(method, pattern string, h authedHandler) route {
	r := keyed(method, pattern, store.RoleAdmin, h)
	r.duringOffboarding = true
	return r
}

func open(method, pattern string, h http.HandlerFunc) route {
	return route{Route: Route{Method: method, Pattern: pattern}, open: h}
}

// table is the API's routing table; one place, so that Routes and New
// cannot disagree. New puts the API key check of Role in front of each
// handler.
func (s *server) table() []route {
	return []route{
		keyed("POST", "/v1/notifications", store.RoleIngest, s.createNotification),
		keyed("POST", "/v1/notifications/batch", store.RoleIngest, s.createNotificationBatch),
		keyed("GET", "/v1/notifications/{id}", store.RoleIngest, s.getNotification),
		keyed("DELETE", "/v1/notifications/{id}", store.RoleIngest, s.cancelNotification),
		keyed("POST", "/v1/consents", store.RoleIngest, s.recordConsent),
		keyed("GET", "/v1/subjects/{id}/consents", store.RoleIngest, s.listConsents),
		keyed("POST", "/v1/subjects/{id}/restrict", store.RoleAdmin, s.restrictSubject(true)),
		keyed("POST", "/v1/subjects/{id}/unrestrict", store.RoleAdmin, s.restrictSubject(false)),
		keyed("POST", "/v1/connections/caldav", store.RoleIngest, s.connectCalDAV),
		keyed("POST", "/v1/connections/google/authorize", store.RoleIngest, s.authorizeGoogle),
		open("GET", "/oauth/google/callback", s.googleCallback),
		keyed("GET", "/v1/connections", store.RoleIngest, s.listConnections),
		keyed("GET", "/v1/connections/{id}", store.RoleIngest, s.getConnection),
		keyed("POST", "/v1/connections/{id}/revoke", store.RoleIngest, s.revokeConnection),
		keyed("POST", "/v1/connections/{id}/sync", store.RoleIngest, s.syncConnection),
		keyed("PATCH", "/v1/connections/{id}", store.RoleIngest, s.patchConnection),
		keyed("PUT", "/v1/appointments/{id}", store.RoleIngest, s.putAppointment),
		keyed("DELETE", "/v1/appointments/{id}", store.RoleIngest, s.cancelAppointment),
		keyed("GET", "/v1/subjects/{id}/busy", store.RoleIngest, s.subjectBusy),
		keyed("GET", "/v1/subjects/{id}/export", store.RoleAdmin, s.exportSubject),
		keyed("DELETE", "/v1/subjects/{id}", store.RoleAdmin, s.eraseSubject),
		open("POST", "/webhooks/twilio/status", s.twilioStatus),
		open("POST", "/webhooks/google", s.googlePush),
		open("GET", "/healthz", s.healthz),
		open("GET", "/readyz", s.readyz),
		open("GET", "/openapi.yaml", s.openAPI),
		open("GET", "/metrics", s.metrics),
		keyed("GET", "/v1/tenant/retention", store.RoleAdmin, s.getRetention),
		keyed("PUT", "/v1/tenant/retention", store.RoleAdmin, s.putRetention),
		keyed("POST", "/v1/holds", store.RoleAdmin, s.placeHold),
		keyed("GET", "/v1/holds", store.RoleAdmin, s.listHolds),
		keyed("DELETE", "/v1/holds/{id}", store.RoleAdmin, s.releaseHold),
		offboarding("POST", "/v1/tenant/offboard", s.offboardTenant),
		offboarding("GET", "/v1/tenant/offboard", s.getOffboarding),
		offboarding("POST", "/v1/tenant/offboard/cancel", s.cancelOffboarding),
		keyed("GET", "/v1/stats", store.RoleIngest, s.tenantStats),
		keyed("GET", "/v1/tenant/processing-records", store.RoleAdmin, s.processingRecords),
		keyed("GET", "/v1/subjects/{id}/consents/{decision_id}/receipt", store.RoleIngest, s.consentReceipt),
		keyed("PUT", "/v1/tenant/controller", store.RoleAdmin, s.putController),
		keyed("GET", "/v1/tenant/controller", store.RoleAdmin, s.getController),
	}
}
