package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/connectors/mail"
	"github.com/termind/termind/connectors/sms"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/templates"
)

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// providerError is a connector error as the notifier sees it.
type providerError struct {
	temporary  bool
	code       string
	retryAfter time.Duration
}

func (e *providerError) Error() string {
	return fmt.Sprintf("provider said %s to someone@example.org", e.code)
}
func (e *providerError) Temporary() bool           { return e.temporary }
func (e *providerError) Code() string              { return e.code }
func (e *providerError) RetryAfter() time.Duration { return e.retryAfter }

func tempErr(code string) error { return &providerError{temporary: true, code: code} }
func permErr(code string) error { return &providerError{temporary: false, code: code} }

// sent is one message a recording sender accepted (or refused).
type sent struct {
	mail   mail.Message
	sms    sms.Message
	taskID string // the asynq task that sent it, when run by a server
	err    error
}

// recorder records sends. Its failures are handed out in order, one per
// call; after them every send succeeds (or fails with always, if set).
type recorder struct {
	mu       sync.Mutex
	calls    []sent
	failures []error
	always   error
	delay    time.Duration
	n        atomic.Int64
}

func (r *recorder) fail(errs ...error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, errs...)
}

func (r *recorder) record(ctx context.Context, c sent) (string, error) {
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	c.taskID, _ = asynq.GetTaskID(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case len(r.failures) > 0:
		c.err = r.failures[0]
		r.failures = r.failures[1:]
	case r.always != nil:
		c.err = r.always
	}
	r.calls = append(r.calls, c)
	if c.err != nil {
		return "", c.err
	}
	return fmt.Sprintf("prov-%d", r.n.Add(1)), nil
}

func (r *recorder) sends() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.calls...)
}

type mailRecorder struct{ recorder }

func (m *mailRecorder) Send(ctx context.Context, msg mail.Message) (string, error) {
	return m.record(ctx, sent{mail: msg})
}

type smsRecorder struct{ recorder }

func (m *smsRecorder) Send(ctx context.Context, msg sms.Message) (string, error) {
	return m.record(ctx, sent{sms: msg})
}

// fakeRenderer renders every template except "broken"; it records the
// locales it was asked for.
type fakeRenderer struct {
	mu      sync.Mutex
	locales [][]string
}

func (f *fakeRenderer) note(name string, locales []string) error {
	f.mu.Lock()
	f.locales = append(f.locales, locales)
	f.mu.Unlock()
	if name == "broken" {
		return errors.New("missing variable start")
	}
	return nil
}

func (f *fakeRenderer) Mail(tenantID, name string, locales []string, data map[string]any) (templates.Mail, error) {
	if err := f.note(name, locales); err != nil {
		return templates.Mail{}, err
	}
	return templates.Mail{Subject: "Subject " + name, Text: fmt.Sprintf("Hello %v", data["customer_name"]), Locale: locales[0]}, nil
}

func (f *fakeRenderer) SMS(tenantID, name string, locales []string, data map[string]any) (templates.SMS, error) {
	if err := f.note(name, locales); err != nil {
		return templates.SMS{}, err
	}
	return templates.SMS{Body: fmt.Sprintf("Hi %v", data["customer_name"]), Segments: 1, Encoding: "GSM-7", Locale: locales[0]}, nil
}

// env is one store, one tenant and the fakes around a notifier.
type env struct {
	t        *testing.T
	store    *store.Store
	tenant   store.Tenant
	mail     *mailRecorder
	sms      *smsRecorder
	renderer *fakeRenderer
	queue    Enqueuer
	seq      atomic.Int64
}

func newEnv(t *testing.T, dialect string, q Enqueuer) *env {
	t.Helper()
	s := storetest.New(t, dialect)
	tn, _ := storetest.NewTenant(t, s)
	if q == nil {
		q = &enqueueRecorder{}
	}
	return &env{t: t, store: s, tenant: tn, mail: &mailRecorder{}, sms: &smsRecorder{}, renderer: &fakeRenderer{}, queue: q}
}

func (e *env) notifier(mod func(*NotifierConfig)) *Notifier {
	cfg := NotifierConfig{
		Store:     e.store,
		Renderer:  e.renderer,
		Mail:      e.mail,
		SMS:       e.sms,
		Queue:     e.queue,
		MailFrom:  "Praxis <noreply@praxis.example>",
		PublicURL: "https://termind.example/",
		Backoff:   ExponentialBackoff(time.Millisecond, 20*time.Millisecond),
		Logger:    testLogger(e.t),
	}
	if mod != nil {
		mod(&cfg)
	}
	return NewNotifier(cfg)
}

// create stores one notification; fill tweaks the defaults (an email
// confirmation due now).
func (e *env) create(fill func(*store.Notification)) store.Notification {
	e.t.Helper()
	k := e.seq.Add(1)
	n := store.Notification{
		TenantID:       e.tenant.ID,
		IdempotencyKey: fmt.Sprintf("key-%d", k),
		RequestHash:    fmt.Sprintf("hash-%d", k),
		Purpose:        store.PurposeTransactional,
		Channel:        store.ChannelEmail,
		Recipient:      "kunde@example.org",
		Locale:         "de",
		Template:       "confirmation",
		Data:           json.RawMessage(`{"customer_name":"Alex"}`),
		SendAt:         time.Now().Add(-time.Second),
	}
	if fill != nil {
		fill(&n)
	}
	res, err := e.store.CreateNotifications(context.Background(), []store.Notification{n})
	if err != nil {
		e.t.Fatalf("create notification: %v", err)
	}
	return res[0].Notification
}

func (e *env) consent(subjectID, purpose, decision string) {
	e.t.Helper()
	_, err := e.store.RecordConsent(context.Background(), store.Consent{
		TenantID: e.tenant.ID, SubjectID: subjectID, Purpose: purpose, Decision: decision,
		PolicyVersion: "v1", Actor: "test",
	})
	if err != nil {
		e.t.Fatalf("record consent: %v", err)
	}
}

func (e *env) get(id string) store.Notification {
	e.t.Helper()
	n, err := e.store.GetNotificationByID(context.Background(), id)
	if err != nil {
		e.t.Fatalf("get notification: %v", err)
	}
	return n
}

// waitStatus polls the store until the notification reaches status.
func (e *env) waitStatus(id, status string) store.Notification {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := e.get(id)
		if n.Status == status {
			return n
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("notification status = %s (%s), want %s", n.Status, n.StatusReason, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func outcomes(n store.Notification) []string {
	var out []string
	for _, a := range n.Attempts {
		out = append(out, a.Outcome)
	}
	return out
}

// enqueueRecorder stands in for the queue where a test drives Deliver itself.
type enqueueRecorder struct {
	mu    sync.Mutex
	tasks []string
}

func (q *enqueueRecorder) EnqueueNotification(_ context.Context, id string, attempt int, _ time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tasks = append(q.tasks, queue.NotifyTaskID(id, attempt))
	return nil
}

func (q *enqueueRecorder) ids() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.tasks...)
}

// openQueue connects to redisURL and returns a client for queueName.
func openQueue(t *testing.T, redisURL, queueName string) (*queue.Redis, *queue.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := queue.OpenRedis(ctx, redisURL, testLogger(t))
	if err != nil {
		t.Fatalf("open redis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	c := queue.NewClient(r, queueName)
	t.Cleanup(func() { _ = c.Close() })
	return r, c
}

// startWorker runs an asynq server with the handlers on queueName.
func startWorker(t *testing.T, r *queue.Redis, queueName string, n *Notifier, s *Sweeper, p *Purger) {
	t.Helper()
	srv := queue.NewServer(r, queueName, 4, testLogger(t))
	mux := asynq.NewServeMux()
	Register(mux, n, s, p)
	if err := srv.Start(mux); err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
}
