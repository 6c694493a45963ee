// Package admin serves the operator pages at /admin/: sign-in with an
// admin API key, the key's tenant and its settings, calendar connections
// (with revocation), a subject's consent ledger and audit trail,
// notifications with masked recipients, retention status, and the asynq
// dashboard at /admin/queues. Pages are rendered on the server from
// embedded templates; they need no JavaScript.
//
// Where things are:
//
//	admin.go     Config, Deps, the interfaces the pages need, routes, headers
//	session.go   sign-in and sign-out, session cookies, CSRF tokens
//	limit.go     the per-address limit on failed sign-ins
//	pages.go     the pages
//	mask.go      masked recipients
package admin

import (
	"context"
	"embed"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/termind/termind/internal/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Store is the part of *store.Store the pages use.
type Store interface {
	LookupAPIKey(ctx context.Context, token string) (store.APIKey, error)
	GetTenant(ctx context.Context, id string) (store.Tenant, error)
	Audit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)

	CreateAdminSession(ctx context.Context, id string, sess store.AdminSession) error
	GetAdminSession(ctx context.Context, id string, now time.Time) (store.AdminSession, error)
	DeleteAdminSession(ctx context.Context, id string) error

	ListConnections(ctx context.Context, tenantID, subjectID string) ([]store.Connection, error)
	GetConnection(ctx context.Context, tenantID, id string) (store.Connection, error)
	CountConnectionData(ctx context.Context, tenantID string) (map[string]store.ConnectionCounts, error)
	BeginRevocation(ctx context.Context, tenantID, id string, r store.Revocation) (store.Connection, error)

	GetSubject(ctx context.Context, tenantID, subjectID string) (store.Subject, error)
	ListConsents(ctx context.Context, tenantID, subjectID string) ([]store.Consent, error)
	ListAudit(ctx context.Context, tenantID, subjectID string) ([]store.AuditEntry, error)

	ListNotifications(ctx context.Context, f store.NotificationFilter) ([]store.Notification, error)
	DeliveryStats(ctx context.Context, tenantID string) ([]store.DeliveryStat, error)
	LastPurgeRun(ctx context.Context) (store.PurgeRun, error)
}

// Queue takes the cleanup of a committed revocation (queue.Client).
type Queue interface {
	EnqueueRevoke(ctx context.Context, connectionID string) error
}

// Config holds the pages' settings.
type Config struct {
	// PublicURL is where operators reach termind; an https URL makes the
	// session cookie Secure (and __Host- prefixed).
	PublicURL string
	// PurgeInterval is how often the scheduler runs retention:purge; the
	// retention page shows the next run from it.
	PurgeInterval time.Duration
	// SessionTTL is how long a sign-in lasts (default 8 hours).
	SessionTTL time.Duration
}

// Deps are the pages' collaborators.
type Deps struct {
	Store Store
	Queue Queue
	// Queues is the asynq dashboard, served at /admin/queues behind the
	// same sign-in; its RootPath must be "/admin/queues". nil: 404.
	Queues http.Handler
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

// Defaults.
const (
	defaultSessionTTL = 8 * time.Hour
	// Failed sign-ins allowed per client address within failWindow; the
	// next attempt is answered 429 until the oldest failure is older.
	maxFailures = 5
	failWindow  = time.Minute
	// maxFormBytes bounds a form body: a key, a reason, a token.
	maxFormBytes = 16 << 10
)

// Prefix is where the pages are mounted.
const Prefix = "/admin/"

type server struct {
	cfg     Config
	store   Store
	queue   Queue
	queues  http.Handler
	log     *slog.Logger
	now     func() time.Time
	pages   map[string]*template.Template
	limiter *limiter
	static  http.Handler
	secure  bool
}

// New returns the handler of everything under /admin/ (and /admin itself).
func New(cfg Config, d Deps) (http.Handler, error) {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = defaultSessionTTL
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = time.Hour
	}
	s := &server{
		cfg:    cfg,
		store:  d.Store,
		queue:  d.Queue,
		queues: d.Queues,
		log:    d.Logger,
		now:    d.Now,
		secure: strings.HasPrefix(strings.ToLower(cfg.PublicURL), "https://"),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limiter = newLimiter(maxFailures, failWindow)
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	s.static = http.StripPrefix("/admin/static/", http.FileServerFS(static))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/signin", s.signInForm)
	mux.HandleFunc("POST /admin/signin", s.signIn)
	mux.HandleFunc("GET /admin/static/", s.static.ServeHTTP)

	mux.HandleFunc("POST /admin/signout", s.authed(s.signOut))
	mux.HandleFunc("GET /admin/{$}", s.authed(s.tenantPage))
	mux.HandleFunc("GET /admin/connections", s.authed(s.connectionsPage))
	mux.HandleFunc("GET /admin/connections/{id}/revoke", s.authed(s.revokeForm))
	mux.HandleFunc("POST /admin/connections/{id}/revoke", s.authed(s.revoke))
	mux.HandleFunc("GET /admin/subjects", s.authed(s.subjectPage))
	mux.HandleFunc("GET /admin/notifications", s.authed(s.notificationsPage))
	mux.HandleFunc("GET /admin/retention", s.authed(s.retentionPage))
	mux.HandleFunc("/admin/queues", s.authed(s.queuesPage))
	mux.HandleFunc("/admin/queues/", s.authed(s.queuesPage))
	mux.HandleFunc("/admin/", s.authed(s.notFoundPage))
	mux.Handle("/admin", http.RedirectHandler(Prefix, http.StatusMovedPermanently))
	return s.headers(mux), nil
}

// headers sets what every answer carries: no caching of pages that show
// personal data, no framing, no sniffing, no referrer. Our own pages also
// get a policy that allows no scripts at all; the asynq dashboard is a
// script application and gets its own.
func (s *server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if !isQueuesPath(r.URL.Path) {
			h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; "+
				"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		} else {
			h.Set("Content-Security-Policy", "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		}
		next.ServeHTTP(w, r)
	})
}

func isQueuesPath(p string) bool {
	return p == "/admin/queues" || strings.HasPrefix(p, "/admin/queues/")
}

// queuesPage hands signed-in requests to the asynq dashboard. Its own
// requests carry no CSRF token; the SameSite=Strict cookie keeps other
// sites' requests out, and changes are refused unless the browser says
// they come from this origin.
func (s *server) queuesPage(w http.ResponseWriter, r *http.Request, sess session) {
	if s.queues == nil {
		s.notFoundPage(w, r, sess)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
		s.errorPage(w, r, http.StatusForbidden, "This request did not come from these pages.")
		return
	}
	if r.URL.Path == "/admin/queues" {
		http.Redirect(w, r, "/admin/queues/", http.StatusSeeOther)
		return
	}
	s.queues.ServeHTTP(w, r)
}

// sameOrigin reports whether a browser request comes from a page of this
// origin, by Sec-Fetch-Site (sent by current browsers) or else Origin.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	_, host, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(host, r.Host)
}
