package workers

import (
	gcal "google.golang.org/api/calendar/v3"

	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/connectors/google/googletest"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/internal/sync/googleremote"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/queue/queuetest"
)

// revokeEnv is one store (credentials sealed), one tenant and one subject
// whose calendar connections are revoked.
type revokeEnv struct {
	t       *testing.T
	store   *store.Store
	tenant  store.Tenant
	subject string
}

func newRevokeEnv(t *testing.T, dialect string) *revokeEnv {
	t.Helper()
	s := storetest.New(t, dialect)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	s.UseSealer(kr)
	tn, _ := storetest.NewTenant(t, s)
	return &revokeEnv{t: t, store: s, tenant: tn, subject: "patient-7"}
}

// testCtx bounds a test's calls.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect stores an active connection with the given credentials (JSON)
// and a granted calendar.write.
func (e *revokeEnv) connect(c store.Connection, credentials any) store.Connection {
	e.t.Helper()
	creds, err := json.Marshal(credentials)
	if err != nil {
		e.t.Fatal(err)
	}
	c.TenantID, c.SubjectID = e.tenant.ID, e.subject
	c.Privacy, c.Direction = store.PrivacyBusy, store.DirectionBoth
	consents := []store.Consent{
		{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
		{Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
	}
	got, err := e.store.CreateConnection(testCtx(e.t), c, creds, consents, store.AuditEntry{Actor: "test"})
	if err != nil {
		e.t.Fatalf("create connection: %v", err)
	}
	return got
}

// connectCalDAV connects alice's calendar at calURL.
func (e *revokeEnv) connectCalDAV(calURL, password string, keepCopies bool) store.Connection {
	e.t.Helper()
	return e.connect(store.Connection{Provider: store.ProviderCalDAV, CalendarURL: calURL, CalendarName: "Office",
		KeepCopiesOnRevoke: keepCopies}, caldavCredentials{Username: "alice", Password: password})
}

func (e *revokeEnv) sql(q string) string {
	if e.store.Dialect() != store.DialectPostgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// addSynced writes what a sync would have stored for the connection: one
// imported event and one link.
func (e *revokeEnv) addSynced(connID string) {
	e.t.Helper()
	ctx := testCtx(e.t)
	now := time.Now().UnixMilli()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO external_events (connection_id, uid, recurrence_id, start_at, end_at, updated_at)
			VALUES (?, 'lunch@example.com', '', ?, ?, ?)`, []any{connID, now, now + 3600_000, now}},
		{`INSERT INTO links (connection_id, item_kind, item_id, remote_id, remote_href, remote_etag, updated_at)
			VALUES (?, 'appointment', 'appt-1', ?, ?, '"e1"', ?)`, []any{connID, caldav.EventUID("appt-1"), caldav.EventName("appt-1"), now}},
	} {
		if _, err := e.store.DB().ExecContext(ctx, e.sql(q.sql), q.args...); err != nil {
			e.t.Fatalf("insert synced rows: %v", err)
		}
	}
}

// rows counts the connection's rows in table.
func (e *revokeEnv) rows(table, connID string) int {
	e.t.Helper()
	var n int
	err := e.store.DB().QueryRowContext(testCtx(e.t), e.sql("SELECT COUNT(*) FROM "+table+" WHERE connection_id = ?"), connID).Scan(&n)
	if err != nil {
		e.t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func (e *revokeEnv) begin(connID string) store.Connection {
	e.t.Helper()
	c, err := e.store.BeginRevocation(testCtx(e.t), e.tenant.ID, connID, store.Revocation{Actor: "test", Reason: "subject revoked", PolicyVersion: "v1"})
	if err != nil {
		e.t.Fatalf("begin revocation: %v", err)
	}
	if c.State != store.ConnRevoking {
		e.t.Fatalf("after BeginRevocation state = %s, want revoking", c.State)
	}
	return c
}

func (e *revokeEnv) conn(id string) store.Connection {
	e.t.Helper()
	c, err := e.store.GetConnectionByID(testCtx(e.t), id)
	if err != nil {
		e.t.Fatalf("get connection: %v", err)
	}
	return c
}

// wantRevoked checks that nothing synced is left of the connection.
func (e *revokeEnv) wantRevoked(connID string) {
	e.t.Helper()
	if c := e.conn(connID); c.State != store.ConnRevoked || c.RevokedAt.IsZero() || c.SyncCursor != "" {
		e.t.Errorf("connection = %s (revoked at %v, cursor %q), want revoked", c.State, c.RevokedAt, c.SyncCursor)
	}
	if _, err := e.store.ConnectionCredentials(testCtx(e.t), connID); !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("credentials after revocation: %v, want ErrNotFound", err)
	}
	for _, table := range []string{"external_events", "links"} {
		if n := e.rows(table, connID); n != 0 {
			e.t.Errorf("%d %s rows left", n, table)
		}
	}
}

// audit returns the details of the connection's audit entries with action.
func (e *revokeEnv) audit(connID, action string) []string {
	e.t.Helper()
	entries, err := e.store.ListAudit(testCtx(e.t), e.tenant.ID, e.subject)
	if err != nil {
		e.t.Fatalf("list audit: %v", err)
	}
	var out []string
	for _, a := range entries {
		if a.TargetID == connID && a.Action == action {
			out = append(out, a.Detail)
		}
	}
	return out
}

func (e *revokeEnv) revoker(mod func(*RevokerConfig)) *Revoker {
	cfg := RevokerConfig{
		Store:  e.store,
		CalDAV: CalDAVRemovers(caldav.NewHTTPClient(caldav.Options{AllowPrivate: true, Timeout: 10 * time.Second})),
		Logger: testLogger(e.t),
	}
	if mod != nil {
		mod(&cfg)
	}
	return NewRevoker(cfg)
}

func revokeTask(t *testing.T, connID string) *asynq.Task {
	t.Helper()
	task, err := queue.NewRevokeTask(connID)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// markedEvent is our copy of an appointment, as the sync writes it.
func markedEvent(appointmentID string) string {
	return strings.Join([]string{
		"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//termind//EN",
		"BEGIN:VEVENT",
		"UID:" + caldav.EventUID(appointmentID),
		"DTSTAMP:20260101T090000Z", "DTSTART:20260105T090000Z", "DTEND:20260105T100000Z",
		"SUMMARY:Appointment",
		caldav.MarkerProperty + ":" + appointmentID,
		"END:VEVENT", "END:VCALENDAR", "",
	}, "\r\n")
}

// ownEvent is one the user made in their calendar app.
func ownEvent(uid string) string {
	return strings.Join([]string{
		"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Example//EN",
		"BEGIN:VEVENT",
		"UID:" + uid,
		"DTSTAMP:20260101T090000Z", "DTSTART:20260106T120000Z", "DTEND:20260106T130000Z",
		"SUMMARY:Lunch",
		"END:VEVENT", "END:VCALENDAR", "",
	}, "\r\n")
}

// calendar is alice's calendar in a Radicale, with one copy of ours and
// one event of her own.
type calendar struct {
	r   *caldavtest.Radicale
	url string
	our string // URL of our copy
	own string // URL of her event
}

func newCalendar(t *testing.T) calendar {
	t.Helper()
	r := caldavtest.StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Office")
	r.PutEvent(t, "alice", cal, strings.TrimSuffix(caldav.EventName("appt-1"), ".ics"), markedEvent("appt-1"))
	r.PutEvent(t, "alice", cal, "lunch", ownEvent("lunch@example.com"))
	c := calendar{r: r, url: cal, our: cal + caldav.EventName("appt-1"), own: r.EventURL(t, cal, "lunch")}
	c.want(t, http.StatusOK, http.StatusOK)
	return c
}

// want checks the GET status of our copy and of her event.
func (c calendar) want(t *testing.T, our, own int) {
	t.Helper()
	if got, _, _ := c.r.Do(t, "alice", http.MethodGet, c.our, nil, ""); got != our {
		t.Errorf("our copy: GET = %d, want %d", got, our)
	}
	if got, _, _ := c.r.Do(t, "alice", http.MethodGet, c.own, nil, ""); got != own {
		t.Errorf("the user's event: GET = %d, want %d", got, own)
	}
}

func TestRevokeCalDAV(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()

			t.Run("removes our copies and the synced data", func(t *testing.T) {
				t.Parallel()
				e := newRevokeEnv(t, dialect)
				cal := newCalendar(t)
				c := e.connectCalDAV(cal.url, "secret", false)
				e.addSynced(c.ID)
				other := e.connectCalDAV(cal.url, "secret", false) // stays active
				e.addSynced(other.ID)
				e.begin(c.ID)

				rv := e.revoker(nil)
				if err := rv.ProcessTask(testCtx(t), revokeTask(t, c.ID)); err != nil {
					t.Fatalf("revoke: %v", err)
				}
				cal.want(t, http.StatusNotFound, http.StatusOK)
				e.wantRevoked(c.ID)
				if got := e.audit(c.ID, AuditActionCopies); !slices.Equal(got, []string{"removed:count=1"}) {
					t.Errorf("audit of the copies = %q", got)
				}

				// Again: harmless, and nothing more is recorded.
				if err := rv.ProcessTask(testCtx(t), revokeTask(t, c.ID)); err != nil {
					t.Fatalf("second run: %v", err)
				}
				e.wantRevoked(c.ID)
				if got := e.audit(c.ID, AuditActionCopies); len(got) != 1 {
					t.Errorf("second run recorded again: %q", got)
				}

				// The other connection is untouched.
				if got := e.conn(other.ID); got.State != store.ConnActive {
					t.Errorf("other connection = %s", got.State)
				}
				if e.rows("external_events", other.ID) != 1 || e.rows("links", other.ID) != 1 {
					t.Error("the other connection's rows were deleted")
				}
				// An active connection is not cleaned up by a stray task.
				if err := rv.Revoke(testCtx(t), other.ID); err != nil {
					t.Fatal(err)
				}
				if got := e.conn(other.ID); got.State != store.ConnActive {
					t.Errorf("stray task moved the other connection to %s", got.State)
				}
				if _, err := e.store.ConnectionCredentials(testCtx(t), other.ID); err != nil {
					t.Errorf("stray task: credentials of the active connection: %v", err)
				}
				// Unknown connection (erased): done.
				if err := rv.Revoke(testCtx(t), "con_unknown"); err != nil {
					t.Errorf("unknown connection: %v", err)
				}
				// A malformed payload is not retried.
				err := rv.ProcessTask(testCtx(t), asynq.NewTask(queue.TypeCalendarRevoke, []byte(`{}`)))
				if !errors.Is(err, asynq.SkipRetry) {
					t.Errorf("malformed payload: %v, want SkipRetry", err)
				}
			})

			t.Run("keeps copies when asked", func(t *testing.T) {
				t.Parallel()
				e := newRevokeEnv(t, dialect)
				cal := newCalendar(t)
				c := e.connectCalDAV(cal.url, "secret", true)
				e.addSynced(c.ID)
				e.begin(c.ID)
				if err := e.revoker(nil).ProcessTask(testCtx(t), revokeTask(t, c.ID)); err != nil {
					t.Fatalf("revoke: %v", err)
				}
				cal.want(t, http.StatusOK, http.StatusOK)
				e.wantRevoked(c.ID)
				if got := e.audit(c.ID, AuditActionCopies); !slices.Equal(got, []string{OutcomeKept}) {
					t.Errorf("audit of the copies = %q", got)
				}
			})

			t.Run("credentials rejected", func(t *testing.T) {
				t.Parallel()
				e := newRevokeEnv(t, dialect)
				cal := newCalendar(t)
				// The user changed the password: our copy cannot be
				// reached any more. That is recorded, and the rest of
				// the cleanup goes on without retrying for ever.
				c := e.connectCalDAV(cal.url, "changed", false)
				e.addSynced(c.ID)
				e.begin(c.ID)
				if err := e.revoker(nil).ProcessTask(testCtx(t), revokeTask(t, c.ID)); err != nil {
					t.Fatalf("revoke: %v", err)
				}
				cal.want(t, http.StatusOK, http.StatusOK)
				e.wantRevoked(c.ID)
				want := OutcomeNotRemoved + ":" + ReasonCredentialsRejected
				if got := e.audit(c.ID, AuditActionCopies); !slices.Equal(got, []string{want}) {
					t.Errorf("audit of the copies = %q, want %q", got, want)
				}
			})

			t.Run("retries while the server is unreachable", func(t *testing.T) {
				t.Parallel()
				e := newRevokeEnv(t, dialect)
				cal := newCalendar(t)
				c := e.connectCalDAV(cal.url, "secret", false)
				e.addSynced(c.ID)
				e.begin(c.ID)
				rv := e.revoker(nil)

				cal.r.Stop()
				err := rv.ProcessTask(testCtx(t), revokeTask(t, c.ID))
				if !errors.Is(err, caldav.ErrUnreachable) || errors.Is(err, asynq.SkipRetry) {
					t.Fatalf("revoke with the server down: %v, want a retryable ErrUnreachable", err)
				}
				if got := e.conn(c.ID); got.State != store.ConnRevoking {
					t.Fatalf("state = %s, want still revoking", got.State)
				}
				if _, err := e.store.ConnectionCredentials(testCtx(t), c.ID); err != nil {
					t.Fatalf("credentials were dropped before the copies were removed: %v", err)
				}
				if e.rows("links", c.ID) != 1 {
					t.Fatal("links were dropped before the copies were removed")
				}

				cal.r.Start()
				if err := rv.ProcessTask(testCtx(t), revokeTask(t, c.ID)); err != nil {
					t.Fatalf("revoke after the server came back: %v", err)
				}
				cal.want(t, http.StatusNotFound, http.StatusOK)
				e.wantRevoked(c.ID)
			})

			t.Run("gives up after the deadline", func(t *testing.T) {
				t.Parallel()
				e := newRevokeEnv(t, dialect)
				cal := newCalendar(t)
				c := e.connectCalDAV(cal.url, "secret", false)
				c = e.begin(c.ID)
				cal.r.Stop()
				late := func() time.Time { return c.RevokeRequestedAt.Add(DefaultCleanupDeadline + time.Hour) }
				if err := e.revoker(func(cfg *RevokerConfig) { cfg.Now = late }).ProcessTask(testCtx(t), revokeTask(t, c.ID)); err != nil {
					t.Fatalf("revoke past the deadline: %v", err)
				}
				e.wantRevoked(c.ID)
				want := OutcomeNotRemoved + ":" + ReasonDeadlinePassed
				if got := e.audit(c.ID, AuditActionCopies); !slices.Equal(got, []string{want}) {
					t.Errorf("audit of the copies = %q, want %q", got, want)
				}
			})
		})
	}
}

// Through the real queue: EnqueueRevoke → server → revoker → store.
func TestRevokeThroughQueue(t *testing.T) {
	t.Parallel()
	redisURL := queuetest.RedisURL(t)
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			qn := "revoke-" + dialect
			r, client := openQueue(t, redisURL, qn)
			e := newRevokeEnv(t, dialect)
			cal := newCalendar(t)
			c := e.connectCalDAV(cal.url, "secret", false)
			e.addSynced(c.ID)
			e.begin(c.ID)

			srv := queue.NewServer(r, queue.CalendarQueue(qn), 2, testLogger(t))
			mux := asynq.NewServeMux()
			RegisterRevoker(mux, e.revoker(nil))
			if err := srv.Start(mux); err != nil {
				t.Fatalf("start server: %v", err)
			}
			t.Cleanup(srv.Shutdown)
			if err := client.EnqueueRevoke(testCtx(t), c.ID); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for e.conn(c.ID).State != store.ConnRevoked {
				if time.Now().After(deadline) {
					t.Fatalf("connection still %s", e.conn(c.ID).State)
				}
				time.Sleep(20 * time.Millisecond)
			}
			cal.want(t, http.StatusNotFound, http.StatusOK)
			e.wantRevoked(c.ID)
		})
	}
}

func TestRevokeGoogle(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			e := newRevokeEnv(t, dialect)
			fake := googletest.Start(t)
			const redirect = "http://127.0.0.1:8080/oauth/google/callback"
			fake.RegisterRedirect(redirect)
			oauth, err := google.NewOAuth(google.OAuthConfig{
				ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret(), RedirectURL: redirect,
				AuthURL: fake.AuthURL(), TokenURL: fake.TokenURL(), RevokeURL: fake.RevokeURL(),
				HTTPClient: fake.Client(),
			})
			if err != nil {
				t.Fatal(err)
			}
			scopes, err := google.Scopes([]string{store.ConsentCalendarWrite})
			if err != nil {
				t.Fatal(err)
			}
			verifier := google.NewVerifier()
			back, err := fake.Authorize(oauth.AuthCodeURL("state", verifier, scopes), false)
			if err != nil {
				t.Fatalf("authorize: %v", err)
			}
			u, err := url.Parse(back)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := oauth.Exchange(testCtx(t), u.Query().Get("code"), verifier)
			if err != nil || tok.RefreshToken == "" {
				t.Fatalf("exchange: refresh token %t, %v", tok.RefreshToken != "", err)
			}
			// Stored as the API stores a Google connection's token.
			c := e.connect(store.Connection{Provider: store.ProviderGoogle, CalendarURL: "primary", CalendarName: "Anna"},
				map[string]any{"refresh_token": tok.RefreshToken, "access_token": tok.AccessToken,
					"token_type": tok.TokenType, "expiry": tok.Expiry, "scopes": tok.Scopes})
			e.addSynced(c.ID)
			e.begin(c.ID)
			// One copy of ours and one event of Anna's in her calendar.
			fake.AddCalendar("anna@example.com")
			fake.PutEvent("anna@example.com", &gcal.Event{Id: "annas1", Summary: "Hers",
				Start: &gcal.EventDateTime{Date: "2026-12-01"}, End: &gcal.EventDateTime{Date: "2026-12-02"}})
			ours, err := googleremote.Event(store.Appointment{TenantID: e.tenant.ID, ID: "apt-1", Title: "Ours",
				AllDay: true, StartDate: "2026-12-03", EndDate: "2026-12-04"})
			if err != nil {
				t.Fatal(err)
			}
			fake.PutEvent("anna@example.com", ours)
			rv := e.revoker(func(cfg *RevokerConfig) {
				cfg.Google = oauth
				cfg.GoogleCopies = func(conn store.Connection, creds []byte) (OurCopiesRemover, error) {
					return googleremote.New(googleremote.Config{OAuth: oauth, Store: e.store, APIURL: fake.APIURL(), HTTPClient: fake.Client()}, conn, creds)
				}
			})

			// Google down: retried, nothing dropped yet.
			fake.FailNext(1, http.StatusServiceUnavailable, `{"error":"backend_error"}`)
			if err := rv.ProcessTask(testCtx(t), revokeTask(t, c.ID)); err == nil {
				t.Fatal("revoke while Google answers 503: no error, want a retry")
			}
			if got := e.conn(c.ID); got.State != store.ConnRevoking || fake.Revoked(tok.RefreshToken) {
				t.Fatalf("after a 503: state %s, revoked %t; want revoking, not revoked", got.State, fake.Revoked(tok.RefreshToken))
			}

			if err := rv.ProcessTask(testCtx(t), revokeTask(t, c.ID)); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if !fake.Revoked(tok.RefreshToken) || !fake.Revoked(tok.AccessToken) {
				t.Errorf("grant not revoked at Google: refresh %t, access %t", fake.Revoked(tok.RefreshToken), fake.Revoked(tok.AccessToken))
			}
			if n := fake.RevokeCalls(); n < 2 {
				t.Errorf("revoke calls = %d, want ≥ 2 (the failed one and the good one)", n)
			}
			e.wantRevoked(c.ID)
			if live := fake.LiveEvents("anna@example.com"); len(live) != 1 || live[0].Id != "annas1" {
				t.Errorf("left %d events, want only Anna's own", len(live))
			}
			// The run that met the 503 removed the copy; the retry found none.
			if got := e.audit(c.ID, AuditActionCopies); !slices.Equal(got, []string{OutcomeRemoved + ":count=1", OutcomeRemoved + ":count=0"}) {
				t.Errorf("audit of the copies = %q", got)
			}
			if got := e.audit(c.ID, AuditActionToken); !slices.Equal(got, []string{OutcomeRevoked}) {
				t.Errorf("audit of the token = %q", got)
			}

			calls := fake.RevokeCalls()
			if err := rv.ProcessTask(testCtx(t), revokeTask(t, c.ID)); err != nil {
				t.Fatalf("second run: %v", err)
			}
			if fake.RevokeCalls() != calls {
				t.Error("a second run called Google again")
			}
		})
	}
}

// gate is an HTTP transport that holds each request until released and
// notes when its response arrived.
type gate struct {
	next    http.RoundTripper
	entered chan struct{}
	release chan struct{}

	mu     sync.Mutex
	sent   int
	doneAt []time.Time
}

func newGate(next http.RoundTripper) *gate {
	return &gate{next: next, entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	g.mu.Lock()
	g.sent++
	g.mu.Unlock()
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-req.Context().Done():
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, req.Context().Err()
	}
	resp, err := g.next.RoundTrip(req)
	g.mu.Lock()
	g.doneAt = append(g.doneAt, time.Now())
	g.mu.Unlock()
	return resp, err
}

func (g *gate) requests() (int, []time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sent, slices.Clone(g.doneAt)
}

// The write fence (DESIGN: after a revocation commits, no further write
// reaches that calendar): a write in flight holds the revocation back
// until it is done, and no write starts after it.
func TestRevocationWaitsForCalendarWrite(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			r := caldavtest.StartRadicale(t)
			calURL := r.MakeCalendar(t, "alice", "Office")
			c := e.connectCalDAV(calURL, "secret", false)

			hc := caldav.NewHTTPClient(caldav.Options{AllowPrivate: true, Timeout: 20 * time.Second})
			g := newGate(hc.Transport)
			hc.Transport = g
			client := caldav.NewClient(hc, calURL, "alice", "secret")
			name := caldav.EventName("appt-1")
			syncWrite := func(appointmentID string) error {
				return e.store.CalendarWrite(ctx, c.ID, func(ctx context.Context) error {
					_, err := client.PutEvent(ctx, caldav.EventName(appointmentID), []byte(markedEvent(appointmentID)), caldav.Condition{IfNoneMatch: true})
					return err
				})
			}

			wrote := make(chan error, 1)
			go func() { wrote <- syncWrite("appt-1") }()
			select {
			case <-g.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the write never reached the transport")
			}

			type begun struct {
				at  time.Time
				err error
			}
			began := make(chan begun, 1)
			go func() {
				_, err := e.store.BeginRevocation(ctx, e.tenant.ID, c.ID, store.Revocation{Actor: "test", Reason: "revoked"})
				began <- begun{time.Now(), err}
			}()
			select {
			case b := <-began:
				t.Fatalf("BeginRevocation returned (%v) while a calendar write was in flight", b.err)
			case <-time.After(300 * time.Millisecond):
			}

			close(g.release)
			if err := <-wrote; err != nil {
				t.Fatalf("write: %v", err)
			}
			var b begun
			select {
			case b = <-began:
			case <-time.After(10 * time.Second):
				t.Fatal("BeginRevocation did not return after the write finished")
			}
			if b.err != nil {
				t.Fatalf("begin revocation: %v", b.err)
			}
			sent, doneAt := g.requests()
			if sent != 1 || len(doneAt) != 1 {
				t.Fatalf("transport saw %d requests (%d answered), want 1", sent, len(doneAt))
			}
			if !doneAt[0].Before(b.at) {
				t.Errorf("the write's answer came at %v, after the revocation committed at %v", doneAt[0], b.at)
			}
			if got, _, _ := r.Do(t, "alice", http.MethodGet, calURL+name, nil, ""); got != http.StatusOK {
				t.Errorf("the write did not reach the calendar: GET = %d", got)
			}

			// From now on no write gets through.
			if err := syncWrite("appt-2"); !errors.Is(err, store.ErrNotActive) {
				t.Errorf("write after the revocation: %v, want ErrNotActive", err)
			}
			if sent, _ := g.requests(); sent != 1 {
				t.Errorf("transport saw %d requests, want no new one after the revocation", sent)
			}
			if got, _, _ := r.Do(t, "alice", http.MethodGet, calURL+caldav.EventName("appt-2"), nil, ""); got != http.StatusNotFound {
				t.Errorf("a write after the revocation reached the calendar: GET = %d", got)
			}
		})
	}
}

// revokeRecorder records EnqueueRevoke calls.
type revokeRecorder struct {
	mu  sync.Mutex
	ids []string
}

func (q *revokeRecorder) EnqueueRevoke(_ context.Context, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ids = append(q.ids, id)
	return nil
}

func (q *revokeRecorder) enqueued() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.ids)
}

func TestSweeperReenqueuesRevocations(t *testing.T) {
	t.Parallel()
	redisURL := queuetest.RedisURL(t)
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			cred := caldavCredentials{Username: "alice", Password: "secret"}
			conn := func() store.Connection {
				return e.connect(store.Connection{Provider: store.ProviderCalDAV, CalendarURL: "https://dav.example.org/alice/office/"}, cred)
			}
			left := conn()
			e.begin(left.ID)
			active := conn()
			done := conn()
			e.begin(done.ID)
			if err := e.store.FinishRevocation(ctx, done.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)

			// Without the revocation fields the sweeper does what it did.
			q := &enqueueRecorder{}
			if rep, err := NewSweeper(SweeperConfig{Store: e.store, Queue: q, Logger: testLogger(t)}).Sweep(ctx); err != nil || rep.Revokes != 0 {
				t.Fatalf("sweep without revocations: %+v, %v", rep, err)
			}

			rec := &revokeRecorder{}
			patient := NewSweeper(SweeperConfig{Store: e.store, Queue: q, Revoking: e.store, Revokes: rec, Grace: time.Hour, Logger: testLogger(t)})
			if rep, err := patient.Sweep(ctx); err != nil || rep.Revokes != 0 {
				t.Fatalf("sweep within grace: %+v, %v; want nothing", rep, err)
			}

			sw := NewSweeper(SweeperConfig{Store: e.store, Queue: q, Revoking: e.store, Revokes: rec, Grace: 10 * time.Millisecond, Logger: testLogger(t)})
			rep, err := sw.Sweep(ctx)
			if err != nil || rep.Revokes != 1 {
				t.Fatalf("sweep: %+v, %v; want 1 revoke", rep, err)
			}
			if got := rec.enqueued(); !slices.Equal(got, []string{left.ID}) {
				t.Errorf("enqueued %v, want only the connection left revoking (%s), not %s or %s", got, left.ID, active.ID, done.ID)
			}

			// With the real queue: the task is there once, however often
			// the sweeper runs.
			qn := "sweep-revoke-" + dialect
			r, client := openQueue(t, redisURL, qn)
			sw = NewSweeper(SweeperConfig{Store: e.store, Queue: client, Revoking: e.store, Revokes: client, Grace: 10 * time.Millisecond, Logger: testLogger(t)})
			for range 2 {
				if rep, err := sw.Sweep(ctx); err != nil || rep.Revokes != 1 || rep.Failed != 0 {
					t.Fatalf("sweep with redis: %+v, %v", rep, err)
				}
			}
			in := asynq.NewInspector(r.ConnOpt())
			defer in.Close()
			info, err := in.GetTaskInfo(queue.CalendarQueue(qn), queue.RevokeTaskID(left.ID))
			if err != nil {
				t.Fatalf("revoke task not queued: %v", err)
			}
			if info.Type != queue.TypeCalendarRevoke || info.State != asynq.TaskStatePending {
				t.Errorf("task = %s %v, want a pending %s", info.Type, info.State, queue.TypeCalendarRevoke)
			}
			qi := queue.NewInspector(r, qn)
			defer qi.Close()
			if sz, err := qi.Sizes(ctx); err != nil || sz.Pending != 1 {
				t.Errorf("queue = %+v, %v; want exactly 1 pending task", sz, err)
			}
		})
	}
}
