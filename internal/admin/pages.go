package admin

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/termind/termind/internal/api"
	"github.com/termind/termind/internal/store"
)

// Limits of what the forms accept.
const (
	maxSubjectID     = 200
	maxRevokeReason  = 200
	notificationRows = 100
	statsRows        = 100
)

// view is what every page template gets.
type view struct {
	Title    string
	Nav      string
	Tenant   string
	CSRF     string
	SignedIn bool
	Flash    string
	Data     any
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"span": span,
	"mask": maskRecipient,
}

// span says a duration in the largest whole unit: "30 days", "1 hour".
func span(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}} {
		if d > 0 && d%u.d == 0 {
			n := int64(d / u.d)
			if n == 1 {
				return "1 " + u.name
			}
			return fmt.Sprintf("%d %ss", n, u.name)
		}
	}
	return d.String()
}

// parsePages parses each page together with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := pageNames()
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		if name == "layout.html" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("admin: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

func pageNames() ([]string, error) {
	entries, err := assets.ReadDir("templates")
	if err != nil {
		return nil, fmt.Errorf("admin: templates: %w", err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".html") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// render executes a page into a buffer first, so a template error is a
// clean 500 rather than half a page.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, name, v); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "admin: render failed", slog.String("page", name), slog.String("err", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// page renders a signed-in page with the tenant's name in the header.
func (s *server) page(w http.ResponseWriter, r *http.Request, sess session, status int, name string, v view) {
	v.SignedIn, v.CSRF = true, sess.csrf
	if t, err := s.store.GetTenant(r.Context(), sess.tenant); err == nil {
		v.Tenant = t.Name
	}
	s.render(w, r, status, name, v)
}

func (s *server) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error.html", view{Title: http.StatusText(status), Data: msg})
}

func (s *server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.LogAttrs(r.Context(), slog.LevelError, "admin: request failed",
		slog.String("route", r.Pattern), slog.String("op", what), slog.String("err", err.Error()))
	s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong; the log says what.")
}

func (s *server) notFoundPage(w http.ResponseWriter, r *http.Request, sess session) {
	s.page(w, r, sess, http.StatusNotFound, "error.html", view{Title: "Not found", Data: "There is no such page."})
}

// tenantPage shows the signed-in key's tenant and its settings.
func (s *server) tenantPage(w http.ResponseWriter, r *http.Request, sess session) {
	t, err := s.store.GetTenant(r.Context(), sess.tenant)
	if err != nil {
		s.internalError(w, r, "get tenant", err)
		return
	}
	s.page(w, r, sess, http.StatusOK, "tenant.html", view{Title: "Tenant", Nav: "tenant", Data: struct {
		Tenant store.Tenant
		KeyID  string
	}{t, sess.key}})
}

type connectionRow struct {
	store.Connection
	Counts    store.ConnectionCounts
	Revocable bool
}

// connectionsPage lists the tenant's connections, of one subject if asked.
func (s *server) connectionsPage(w http.ResponseWriter, r *http.Request, sess session) {
	subjectID := strings.TrimSpace(r.URL.Query().Get("subject_id"))
	if !validSubjectID(subjectID, true) {
		s.page(w, r, sess, http.StatusBadRequest, "error.html", view{Title: "Bad request", Data: "That is not a subject id."})
		return
	}
	conns, err := s.store.ListConnections(r.Context(), sess.tenant, subjectID)
	if err != nil {
		s.internalError(w, r, "list connections", err)
		return
	}
	counts, err := s.store.CountConnectionData(r.Context(), sess.tenant)
	if err != nil {
		s.internalError(w, r, "count connection data", err)
		return
	}
	rows := make([]connectionRow, 0, len(conns))
	var flash string
	revoked := r.URL.Query().Get("revoked")
	for _, c := range conns {
		rows = append(rows, connectionRow{Connection: c, Counts: counts[c.ID], Revocable: revocable(c.State)})
		if revoked != "" && c.ID == revoked {
			flash = fmt.Sprintf("Connection %s is revoking: its cleanup is queued.", c.ID)
			if c.State == store.ConnRevoked {
				flash = fmt.Sprintf("Connection %s is revoked: its credentials, imported events and links are deleted.", c.ID)
			}
		}
	}
	s.page(w, r, sess, http.StatusOK, "connections.html", view{Title: "Connections", Nav: "connections", Flash: flash,
		Data: struct {
			SubjectID string
			Rows      []connectionRow
		}{subjectID, rows}})
}

func revocable(state string) bool {
	return state == store.ConnActive || state == store.ConnPaused || state == store.ConnBroken
}

// revokeForm asks for confirmation before a revocation.
func (s *server) revokeForm(w http.ResponseWriter, r *http.Request, sess session) {
	c, ok := s.connection(w, r, sess)
	if !ok {
		return
	}
	s.page(w, r, sess, http.StatusOK, "revoke.html", view{Title: "Revoke connection", Nav: "connections",
		Data: struct {
			C         store.Connection
			Revocable bool
		}{c, revocable(c.State)}})
}

func (s *server) connection(w http.ResponseWriter, r *http.Request, sess session) (store.Connection, bool) {
	id := r.PathValue("id")
	var c store.Connection
	err := store.ErrNotFound
	if len(id) <= 100 {
		c, err = s.store.GetConnection(r.Context(), sess.tenant, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		s.page(w, r, sess, http.StatusNotFound, "error.html", view{Title: "Not found", Nav: "connections", Data: "There is no such connection."})
		return store.Connection{}, false
	}
	if err != nil {
		s.internalError(w, r, "get connection", err)
		return store.Connection{}, false
	}
	return c, true
}

// revoke commits the revocation and queues its cleanup, through the same
// code as POST /v1/connections/{id}/revoke.
func (s *server) revoke(w http.ResponseWriter, r *http.Request, sess session) {
	id := r.PathValue("id")
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if utf8.RuneCountInString(reason) > maxRevokeReason || !printable(reason) {
		s.page(w, r, sess, http.StatusBadRequest, "error.html", view{Title: "Bad request", Nav: "connections",
			Data: "The reason must be at most 200 printable characters."})
		return
	}
	if len(id) > 100 {
		s.page(w, r, sess, http.StatusNotFound, "error.html", view{Title: "Not found", Nav: "connections", Data: "There is no such connection."})
		return
	}
	c, err := api.RevokeConnection(r.Context(), s.store, s.queue, s.log, sess.tenant, id, store.Revocation{
		Actor:    s.actor(sess),
		Reason:   strings.TrimSpace("admin: " + reason),
		SourceIP: clientIP(r),
	})
	if errors.Is(err, store.ErrNotFound) {
		s.page(w, r, sess, http.StatusNotFound, "error.html", view{Title: "Not found", Nav: "connections", Data: "There is no such connection."})
		return
	}
	if err != nil {
		s.internalError(w, r, "revoke connection", err)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "admin: connection revoked",
		slog.String("tenant_id", sess.tenant), slog.String("connection_id", c.ID), slog.String("state", c.State))
	http.Redirect(w, r, "/admin/connections?revoked="+c.ID, http.StatusSeeOther)
}

// subjectPage shows a subject's consent ledger and audit trail.
func (s *server) subjectPage(w http.ResponseWriter, r *http.Request, sess session) {
	subjectID := strings.TrimSpace(r.URL.Query().Get("subject_id"))
	type data struct {
		SubjectID string
		Searched  bool
		Found     bool
		Subject   store.Subject
		Consents  []store.Consent
		Audit     []store.AuditEntry
	}
	d := data{SubjectID: subjectID, Searched: subjectID != ""}
	if !validSubjectID(subjectID, true) {
		s.page(w, r, sess, http.StatusBadRequest, "subject.html", view{Title: "Subjects", Nav: "subjects",
			Flash: "That is not a subject id.", Data: data{}})
		return
	}
	if d.Searched {
		var err error
		d.Subject, err = s.store.GetSubject(r.Context(), sess.tenant, subjectID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			s.internalError(w, r, "get subject", err)
			return
		default:
			d.Found = true
		}
		if d.Consents, err = s.store.ListConsents(r.Context(), sess.tenant, subjectID); err != nil {
			s.internalError(w, r, "list consents", err)
			return
		}
		if d.Audit, err = s.store.ListAudit(r.Context(), sess.tenant, subjectID); err != nil {
			s.internalError(w, r, "list audit", err)
			return
		}
	}
	s.page(w, r, sess, http.StatusOK, "subject.html", view{Title: "Subjects", Nav: "subjects", Data: d})
}

var (
	statuses = []string{store.StatusScheduled, store.StatusSending, store.StatusSent, store.StatusDelivered,
		store.StatusUndelivered, store.StatusFailed, store.StatusCancelled, store.StatusSuppressed}
	templateName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
)

type notificationFilter struct {
	Status, Template, From, To string
}

// notificationsPage lists notifications, newest first, filtered by status,
// template and creation date. Recipients are shown masked only.
func (s *server) notificationsPage(w http.ResponseWriter, r *http.Request, sess session) {
	q := r.URL.Query()
	f := notificationFilter{Status: q.Get("status"), Template: strings.TrimSpace(q.Get("template")), From: q.Get("from"), To: q.Get("to")}
	sf := store.NotificationFilter{TenantID: sess.tenant, Status: f.Status, Template: f.Template, Limit: notificationRows}
	var problem string
	if f.Status != "" && !slices.Contains(statuses, f.Status) {
		problem = "Unknown status."
	}
	if f.Template != "" && !templateName.MatchString(f.Template) {
		problem = "A template name has lower-case letters, digits, - and _ only."
	}
	for _, d := range []struct {
		text string
		to   *time.Time
		add  time.Duration
	}{{f.From, &sf.From, 0}, {f.To, &sf.To, 24 * time.Hour}} {
		if d.text == "" {
			continue
		}
		t, err := time.Parse("2006-01-02", d.text)
		if err != nil {
			problem = "Dates are YYYY-MM-DD."
			continue
		}
		*d.to = t.Add(d.add) // "to" includes its whole day
	}
	type data struct {
		Filter   notificationFilter
		Statuses []string
		Rows     []store.Notification
		Limit    int
	}
	d := data{Filter: f, Statuses: statuses, Limit: notificationRows}
	if problem != "" {
		s.page(w, r, sess, http.StatusBadRequest, "notifications.html", view{Title: "Notifications", Nav: "notifications", Flash: problem, Data: d})
		return
	}
	rows, err := s.store.ListNotifications(r.Context(), sf)
	if err != nil {
		s.internalError(w, r, "list notifications", err)
		return
	}
	d.Rows = rows
	s.page(w, r, sess, http.StatusOK, "notifications.html", view{Title: "Notifications", Nav: "notifications", Data: d})
}

// retentionPage shows the tenant's retention windows, when the next purge
// runs, what the last one deleted and the anonymous delivery statistics.
func (s *server) retentionPage(w http.ResponseWriter, r *http.Request, sess session) {
	t, err := s.store.GetTenant(r.Context(), sess.tenant)
	if err != nil {
		s.internalError(w, r, "get tenant", err)
		return
	}
	last, err := s.store.LastPurgeRun(r.Context())
	hasLast := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.internalError(w, r, "last purge run", err)
		return
	}
	stats, err := s.store.DeliveryStats(r.Context(), sess.tenant)
	if err != nil {
		s.internalError(w, r, "delivery stats", err)
		return
	}
	slices.Reverse(stats) // newest day first
	if len(stats) > statsRows {
		stats = stats[:statsRows]
	}
	now := s.now()
	s.page(w, r, sess, http.StatusOK, "retention.html", view{Title: "Retention", Nav: "retention", Data: struct {
		Tenant    store.Tenant
		Interval  time.Duration
		NextPurge time.Time
		HasLast   bool
		Last      store.PurgeRun
		Stats     []store.DeliveryStat
		StatsRows int
	}{t, s.cfg.PurgeInterval, now.Truncate(s.cfg.PurgeInterval).Add(s.cfg.PurgeInterval), hasLast, last, stats, statsRows}})
}

// validSubjectID accepts what the API accepts as a subject id in a path
// or query: printable, at most 200 characters.
func validSubjectID(id string, emptyOK bool) bool {
	if id == "" {
		return emptyOK
	}
	return utf8.RuneCountInString(id) <= maxSubjectID && printable(id)
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
