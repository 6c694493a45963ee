package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/queue"
)

const testPublicURL = "https://termind.example.com"
const testTwilioToken = "twilio-test-auth-token"

// testEnv is one API over a fresh store with one tenant and its admin key.
type testEnv struct {
	t       *testing.T
	store   *store.Store
	counter *countingStore
	handler http.Handler
	queue   *recordingQueue
	tenant  store.Tenant
	token   string // admin key
	now     time.Time
	logs    *syncBuffer
}

type envOption func(*Config, *Deps)

func newEnv(t *testing.T, dialect string, opts ...envOption) *testEnv {
	t.Helper()
	s := storetest.New(t, dialect)
	s.UseSealer(newKeyring(t))
	tenant, token := storetest.NewTenant(t, s)
	e := &testEnv{
		t:       t,
		store:   s,
		counter: &countingStore{Store: s},
		queue:   &recordingQueue{},
		tenant:  tenant,
		token:   token,
		now:     time.Now().UTC().Truncate(time.Millisecond),
		logs:    &syncBuffer{},
	}
	cfg := Config{PublicURL: testPublicURL, TwilioAuthToken: testTwilioToken}
	deps := Deps{
		Store:    e.counter,
		Renderer: newTestRenderer(t),
		Queue:    e.queue,
		Logger:   slog.New(slog.NewJSONHandler(e.logs, nil)),
		Now:      func() time.Time { return e.now },
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	e.handler = New(cfg, deps)
	return e
}

// do sends one request through the handler and returns the recorded answer.
func (e *testEnv) do(method, path, token, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r.WithContext(ctx))
	return w
}

func (e *testEnv) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// countRows counts the rows of a table, to prove that a refusal stored nothing.
func (e *testEnv) countRows(table string) int {
	e.t.Helper()
	var n int
	if err := e.store.DB().QueryRowContext(e.ctx(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		e.t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// ingestKey creates an ingest-role key for the env's tenant.
func (e *testEnv) ingestKey() (string, store.APIKey) {
	e.t.Helper()
	token, key, err := e.store.CreateAPIKey(e.ctx(), e.tenant.ID, store.RoleIngest)
	if err != nil {
		e.t.Fatalf("create ingest key: %v", err)
	}
	return token, key
}

// markSent makes a notification sent by a provider, as a worker would.
func (e *testEnv) markSent(id, providerID string) {
	e.t.Helper()
	now := time.Now()
	if _, ok, err := e.store.ClaimNotification(e.ctx(), id, now.Add(time.Second), now.Add(time.Minute)); err != nil || !ok {
		e.t.Fatalf("claim %s: ok=%v err=%v", id, ok, err)
	}
	_, err := e.store.FinishAttempt(e.ctx(), id, now.Add(time.Second), store.AttemptResult{
		Status:     store.StatusSent,
		ProviderID: providerID,
		Attempt:    store.Attempt{Outcome: "sent", ProviderID: providerID, Error: "provider said something long"},
	})
	if err != nil {
		e.t.Fatalf("finish %s: %v", id, err)
	}
}

// createOK posts a notification and fails unless it was accepted.
func (e *testEnv) createOK(body string) string {
	e.t.Helper()
	w := e.do("POST", "/v1/notifications", e.token, body)
	if w.Code != http.StatusAccepted {
		e.t.Fatalf("create: status %d, body %s", w.Code, w.Body)
	}
	var got notificationCreated
	decodeBody(e.t, w, &got)
	return got.ID
}

func decodeBody(t *testing.T, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json (body %s)", ct, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
}

// wantError asserts the status and the error envelope's code and field.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code, field string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d (body %s)", w.Code, status, w.Body)
	}
	var got errorBody
	decodeBody(t, w, &got)
	if code != "" && got.Error.Code != code {
		t.Errorf("error.code = %q, want %q", got.Error.Code, code)
	}
	if got.Error.Field != field {
		t.Errorf("error.field = %q, want %q (message %q)", got.Error.Field, field, got.Error.Message)
	}
	if got.Error.Message == "" {
		t.Errorf("error.message is empty")
	}
}

func templateData() map[string]any {
	return map[string]any{
		"customer_name": "Jane Doe",
		"provider_name": "Dr. Muster",
		"service":       "Check-up",
		"start":         "2030-03-01T09:00:00Z",
		"end":           "2030-03-01T09:30:00Z",
		"time_zone":     "Europe/Berlin",
	}
}

// emailRequest is a valid single-notification body as a map, for tests to
// change one field at a time.
func emailRequest(key string) map[string]any {
	return map[string]any{
		"idempotency_key": key,
		"channel":         "email",
		"to":              "jane@example.com",
		"locale":          "en",
		"template":        "confirmation",
		"purpose":         "transactional",
		"data":            templateData(),
	}
}

func smsRequest(key string) map[string]any {
	m := emailRequest(key)
	m["channel"] = "sms"
	m["to"] = "+4915112345678"
	m["subject_id"] = "cust-42"
	return m
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// with returns a copy of m with key set to value (nil value: removed).
func with(m map[string]any, key string, value any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	if value == nil {
		delete(c, key)
	} else {
		c[key] = value
	}
	return c
}

// recordingQueue records enqueued tasks; failing makes every call fail.
type recordingQueue struct {
	mu       sync.Mutex
	tasks    []enqueued
	revokes  []string // connection ids, in order
	pushList []queue.PushPayload
	pullList []pulled
	// noticeList: connections whose push notification asked for a pull.
	noticeList []string
	failing    bool
}

type pulled struct {
	ConnectionID string
	Full         bool
}

func (q *recordingQueue) EnqueuePush(ctx context.Context, p queue.PushPayload) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failing {
		return context.DeadlineExceeded
	}
	q.pushList = append(q.pushList, p)
	return nil
}

func (q *recordingQueue) EnqueuePull(ctx context.Context, connectionID string, full bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failing {
		return context.DeadlineExceeded
	}
	q.pullList = append(q.pullList, pulled{ConnectionID: connectionID, Full: full})
	return nil
}

func (q *recordingQueue) pushes() []queue.PushPayload {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queue.PushPayload(nil), q.pushList...)
}

func (q *recordingQueue) pulls() []pulled {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]pulled(nil), q.pullList...)
}

func (q *recordingQueue) EnqueueRevoke(ctx context.Context, connectionID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failing {
		return context.DeadlineExceeded
	}
	q.revokes = append(q.revokes, connectionID)
	return nil
}

func (q *recordingQueue) revoked() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.revokes...)
}

func (q *recordingQueue) setFailing(on bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.failing = on
}

type enqueued struct {
	ID      string
	Attempt int
	At      time.Time
}

func (q *recordingQueue) EnqueueNotification(ctx context.Context, id string, attempt int, at time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failing {
		return context.DeadlineExceeded
	}
	q.tasks = append(q.tasks, enqueued{ID: id, Attempt: attempt, At: at})
	return nil
}

func (q *recordingQueue) all() []enqueued {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]enqueued(nil), q.tasks...)
}

// countingStore counts the store calls that must not repeat per item.
type countingStore struct {
	*store.Store
	mu      sync.Mutex
	creates int
}

func (c *countingStore) CreateNotifications(ctx context.Context, items []store.Notification) ([]store.CreateResult, error) {
	c.mu.Lock()
	c.creates++
	c.mu.Unlock()
	return c.Store.CreateNotifications(ctx, items)
}

func (c *countingStore) createCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.creates
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// forEachDialect runs a store-backed test on SQLite and PostgreSQL.
func forEachDialect(t *testing.T, fn func(t *testing.T, dialect string)) {
	t.Helper()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// newKeyring returns a keyring with a fresh random key, for the store to
// seal credentials with.
func newKeyring(t testing.TB) *secrets.Keyring {
	t.Helper()
	key := make([]byte, secrets.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	k, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	return k
}

// personalTables are the tables a refused connection or consent request
// must leave untouched.
var personalTables = []string{"connections", "consents", "audit", "oauth_states"}

// counts returns the row count of each of personalTables.
func (e *testEnv) counts() map[string]int {
	e.t.Helper()
	out := make(map[string]int, len(personalTables))
	for _, table := range personalTables {
		out[table] = e.countRows(table)
	}
	return out
}

// wantCounts fails unless the tables hold exactly the rows in want.
func (e *testEnv) wantCounts(t *testing.T, want map[string]int) {
	t.Helper()
	got := e.counts()
	for _, table := range personalTables {
		if got[table] != want[table] {
			t.Errorf("%s holds %d rows, want %d", table, got[table], want[table])
		}
	}
}

// wantNothingStored fails if any of personalTables holds a row.
func (e *testEnv) wantNothingStored(t *testing.T) {
	t.Helper()
	e.wantCounts(t, map[string]int{})
}

// auditActions lists the actions of the tenant's audit entries about
// subjectID ("" = all), oldest first.
func (e *testEnv) auditActions(subjectID string) []string {
	e.t.Helper()
	entries, err := e.store.ListAudit(e.ctx(), e.tenant.ID, subjectID)
	if err != nil {
		e.t.Fatalf("list audit: %v", err)
	}
	out := make([]string, 0, len(entries))
	for _, a := range entries {
		out = append(out, a.Action)
	}
	return out
}

// findAudit returns the newest entry with the action, failing if none.
func (e *testEnv) findAudit(subjectID, action string) store.AuditEntry {
	e.t.Helper()
	entries, err := e.store.ListAudit(e.ctx(), e.tenant.ID, subjectID)
	if err != nil {
		e.t.Fatalf("list audit: %v", err)
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Action == action {
			return entries[i]
		}
	}
	e.t.Fatalf("no audit entry %q among %v", action, e.auditActions(subjectID))
	return store.AuditEntry{}
}

// seedConnection stores an active connection directly, as a successful
// connect would, with a granted decision per purpose.
func (e *testEnv) seedConnection(subjectID, provider string, purposes ...string) store.Connection {
	e.t.Helper()
	consents := make([]store.Consent, 0, len(purposes))
	for _, p := range purposes {
		consents = append(consents, store.Consent{Purpose: p, Decision: store.DecisionGranted, PolicyVersion: "2025-01", Actor: "cli"})
	}
	c, err := e.store.CreateConnection(e.ctx(), store.Connection{
		TenantID:    e.tenant.ID,
		SubjectID:   subjectID,
		Provider:    provider,
		CalendarURL: "https://dav.example.com/" + subjectID + "/calendar/",
		Privacy:     store.PrivacyBusy,
		Direction:   store.DirectionBoth,
	}, []byte(`{"username":"u","password":"seeded-password"}`), consents, store.AuditEntry{Actor: "cli"})
	if err != nil {
		e.t.Fatalf("seed connection: %v", err)
	}
	return c
}

func (q *recordingQueue) EnqueuePullAfterNotice(ctx context.Context, connectionID string, debounce time.Duration, now time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failing {
		return context.DeadlineExceeded
	}
	q.noticeList = append(q.noticeList, connectionID)
	return nil
}

func (q *recordingQueue) notices() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.noticeList...)
}
