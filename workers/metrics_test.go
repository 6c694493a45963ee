package workers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// metricsRecorder keeps what the workers report, as *metrics.Metrics
// would count it.
type metricsRecorder struct {
	mu        sync.Mutex
	states    []string // channel/template/status
	providers []string // provider/ok|error
	purged    int64
}

func (m *metricsRecorder) NotificationState(channel, template, status string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states = append(m.states, channel+"/"+template+"/"+status)
}

func (m *metricsRecorder) ProviderRequest(provider string, d time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	if d < 0 {
		outcome = "negative duration"
	}
	m.providers = append(m.providers, provider+"/"+outcome)
}

func (m *metricsRecorder) Purged(rows int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.purged += rows
}

func (m *metricsRecorder) snapshot() (states, providers []string, purged int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	states, providers = slices.Clone(m.states), slices.Clone(m.providers)
	slices.Sort(states)
	slices.Sort(providers)
	return states, providers, m.purged
}

// TestWorkersReportMetrics: each recorded state and each provider call is
// reported once, on the single and the batch send path, and the sweeper
// and the purger report theirs.
func TestWorkersReportMetrics(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, dialect, nil)
			m := &metricsRecorder{}
			nt := e.notifier(func(c *NotifierConfig) { c.Metrics = m; c.MaxAttempts = 2 })

			// Single path: sent; refused for good; a retry then sent; suppressed.
			ok := e.create(nil)
			refused := e.create(nil)
			retried := e.create(func(n *store.Notification) { n.Template = "reminder" })
			restricted := e.create(func(n *store.Notification) { n.SubjectID = "held" })
			if err := e.store.SetSubjectRestricted(ctx, e.tenant.ID, "held", true); err != nil {
				t.Fatal(err)
			}
			for _, step := range []struct {
				id   string
				fail []error
			}{{ok.ID, nil}, {refused.ID, []error{permErr("550")}}, {retried.ID, []error{tempErr("451")}}, {restricted.ID, nil}} {
				e.mail.fail(step.fail...)
				if err := nt.Deliver(ctx, step.id); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(25 * time.Millisecond) // past the retry's backoff
			if err := nt.Deliver(ctx, retried.ID); err != nil {
				t.Fatal(err)
			}

			// Batch path: two sent.
			b1, b2 := e.create(nil), e.create(nil)
			if err := nt.DeliverBatch(ctx, []string{b1.ID, b2.ID}); err != nil {
				t.Fatal(err)
			}

			// Sweeper: a send whose worker died is marked failed.
			stale := e.create(func(n *store.Notification) {
				n.Channel, n.Recipient, n.Template = store.ChannelSMS, "+4915112345678", "reminder"
			})
			now := time.Now()
			if _, claimed, err := e.store.ClaimNotification(ctx, stale.ID, now, now.Add(time.Millisecond)); err != nil || !claimed {
				t.Fatalf("claim: %v %v", claimed, err)
			}
			time.Sleep(5 * time.Millisecond)
			if _, err := NewSweeper(SweeperConfig{Store: e.store, Queue: e.queue, Logger: testLogger(t), Metrics: m}).Sweep(ctx); err != nil {
				t.Fatal(err)
			}

			// Purger: three expired rows deleted.
			for i := range 3 {
				n := e.create(func(n *store.Notification) { n.IdempotencyKey = fmt.Sprintf("old-%d", i) })
				q := "UPDATE notifications SET expires_at = ? WHERE id = ?"
				if dialect == store.DialectPostgres {
					q = "UPDATE notifications SET expires_at = $1 WHERE id = $2"
				}
				if _, err := e.store.DB().ExecContext(ctx, q, time.Now().Add(-time.Hour).UnixMilli(), n.ID); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := NewPurger(PurgerConfig{Store: e.store, Logger: testLogger(t), Metrics: m}).Purge(ctx, true); err != nil {
				t.Fatal(err)
			}
			if _, _, purged := m.snapshot(); purged != 0 {
				t.Fatalf("a dry run reported %d purged rows", purged)
			}
			if _, err := NewPurger(PurgerConfig{Store: e.store, Logger: testLogger(t), Metrics: m}).Purge(ctx, false); err != nil {
				t.Fatal(err)
			}

			states, providers, purged := m.snapshot()
			wantStates := []string{
				"email/confirmation/failed", "email/confirmation/sent", "email/confirmation/sent", "email/confirmation/sent",
				"email/confirmation/suppressed", "email/reminder/scheduled", "email/reminder/sent", "sms/reminder/failed",
			}
			wantProviders := []string{"smtp/error", "smtp/error", "smtp/ok", "smtp/ok", "smtp/ok", "smtp/ok"}
			if !slices.Equal(states, wantStates) {
				t.Errorf("states = %v\nwant     %v", states, wantStates)
			}
			if !slices.Equal(providers, wantProviders) {
				t.Errorf("provider calls = %v, want %v (no call for the suppressed one)", providers, wantProviders)
			}
			if purged != 3 {
				t.Errorf("purged = %d, want 3", purged)
			}
		})
	}
}
