package workers

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/queue"
)

// TestDeliverBatch runs the batch path over rows that end every way the
// single path can end, and checks it sends each row at most once.
func TestDeliverBatch(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			q := &enqueueRecorder{}
			e := newEnv(t, dialect, q)
			if err := e.store.SetSubjectRestricted(ctx, e.tenant.ID, "restricted", true); err != nil {
				t.Fatal(err)
			}
			e.consent("carl", store.ConsentNotifySMS, store.DecisionGranted)
			// The same subject id in another tenant is another person.
			other, _ := storetest.NewTenant(t, e.store)
			ok1 := e.create(nil)
			ok2 := e.create(func(n *store.Notification) { n.SubjectID = "anna" })
			restricted := e.create(func(n *store.Notification) { n.SubjectID = "restricted" })
			noConsent := e.create(func(n *store.Notification) {
				n.Channel, n.Recipient, n.SubjectID = store.ChannelSMS, "+4915112345678", "ben"
			})
			smsOK := e.create(func(n *store.Notification) {
				n.Channel, n.Recipient, n.SubjectID = store.ChannelSMS, "+4915187654321", "carl"
			})
			otherOK := e.create(func(n *store.Notification) { n.TenantID, n.SubjectID = other.ID, "restricted" })
			temporary := e.create(nil)
			permanent := e.create(nil)
			// The recorder hands out failures in call order; the batch sends
			// in parallel, so make the two failing rows the only mail rows
			// sent after a first pass of the others.
			cs := &countingStore{Store: e.store}
			n := e.notifier(func(c *NotifierConfig) { c.Store = cs })
			if err := n.DeliverBatch(ctx, []string{ok1.ID, ok2.ID, restricted.ID, noConsent.ID, smsOK.ID, otherOK.ID}); err != nil {
				t.Fatal(err)
			}
			// One read of the send checks per tenant for the mail rows; the
			// two SMS rows read their own right before their send.
			if single, batch := cs.single.Load(), cs.batch.Load(); single != 2 || batch != 2 {
				t.Errorf("send checks read %d times per row and %d per tenant; want 2 (the SMS) and 2", single, batch)
			}
			e.mail.fail(tempErr("451"))
			if err := n.DeliverBatch(ctx, []string{temporary.ID}); err != nil {
				t.Fatal(err)
			}
			e.mail.fail(permErr("550"))
			if err := n.DeliverBatch(ctx, []string{permanent.ID}); err != nil {
				t.Fatal(err)
			}

			want := map[string][2]string{
				ok1.ID:        {store.StatusSent, ""},
				ok2.ID:        {store.StatusSent, ""},
				restricted.ID: {store.StatusSuppressed, ReasonRestricted},
				noConsent.ID:  {store.StatusSuppressed, ReasonNoSMSConsent},
				smsOK.ID:      {store.StatusSent, ""},
				otherOK.ID:    {store.StatusSent, ""},
				temporary.ID:  {store.StatusScheduled, "smtp 451"},
				permanent.ID:  {store.StatusFailed, "smtp 550"},
			}
			for id, w := range want {
				got := e.get(id)
				if got.Status != w[0] || got.StatusReason != w[1] || len(got.Attempts) != 1 {
					t.Errorf("%s: %s %q attempts %v; want %s %q after one attempt", id, got.Status, got.StatusReason, outcomes(got), w[0], w[1])
				}
			}
			if got := e.get(ok1.ID); got.ProviderID == "" {
				t.Error("sent row has no provider id")
			}
			// The retry goes out as its own notify:send under the next attempt's id.
			if tasks := q.ids(); !slices.Contains(tasks, queue.NotifyTaskID(temporary.ID, 1)) {
				t.Errorf("enqueued %v, want the retry of %s", tasks, temporary.ID)
			}

			// Handling the same batch again sends nothing more.
			before := len(e.mail.sends())
			if err := n.DeliverBatch(ctx, []string{ok1.ID, ok2.ID, restricted.ID, permanent.ID}); err != nil {
				t.Fatal(err)
			}
			if after := len(e.mail.sends()); after != before {
				t.Errorf("a repeated batch sent %d more mails", after-before)
			}
			if sms := e.sms.sends(); len(sms) != 1 || sms[0].sms.To != smsOK.Recipient {
				t.Errorf("SMS sent %+v, want only the one with consent", sms)
			}
		})
	}
}

// TestDeliverBatchChecksFallback: when the batch read of the send checks
// fails, every row reads its own and the outcomes are the same.
func TestDeliverBatchChecksFallback(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, dialect, nil)
			if err := e.store.SetSubjectRestricted(ctx, e.tenant.ID, "restricted", true); err != nil {
				t.Fatal(err)
			}
			ok := e.create(func(n *store.Notification) { n.SubjectID = "anna" })
			restricted := e.create(func(n *store.Notification) { n.SubjectID = "restricted" })
			noConsent := e.create(func(n *store.Notification) {
				n.Channel, n.Recipient, n.SubjectID = store.ChannelSMS, "+4915112345678", "ben"
			})
			cs := &countingStore{Store: e.store, batchErr: errors.New("connection reset")}
			n := e.notifier(func(c *NotifierConfig) { c.Store = cs })
			if err := n.DeliverBatch(ctx, []string{ok.ID, restricted.ID, noConsent.ID}); err != nil {
				t.Fatal(err)
			}
			if single, batch := cs.single.Load(), cs.batch.Load(); single != 3 || batch != 1 {
				t.Errorf("send checks read %d times per row and %d per tenant; want 3 and 1", single, batch)
			}
			want := map[string][2]string{
				ok.ID:         {store.StatusSent, ""},
				restricted.ID: {store.StatusSuppressed, ReasonRestricted},
				noConsent.ID:  {store.StatusSuppressed, ReasonNoSMSConsent},
			}
			for id, w := range want {
				got := e.get(id)
				if got.Status != w[0] || got.StatusReason != w[1] || len(got.Attempts) != 1 {
					t.Errorf("%s: %s %q attempts %v; want %s %q after one attempt", id, got.Status, got.StatusReason, outcomes(got), w[0], w[1])
				}
			}
			if len(e.sms.sends()) != 0 {
				t.Errorf("an SMS without consent was sent")
			}
		})
	}
}

// countingStore counts the send-check reads of the store it wraps; with
// batchErr set, the batch form fails.
type countingStore struct {
	*store.Store
	single, batch atomic.Int64
	batchErr      error
}

func (s *countingStore) SendChecks(ctx context.Context, tenantID, subjectID, purpose string) (store.SendChecks, error) {
	s.single.Add(1)
	return s.Store.SendChecks(ctx, tenantID, subjectID, purpose)
}

func (s *countingStore) SendChecksBatch(ctx context.Context, tenantID string, keys []store.CheckKey) (map[store.CheckKey]store.SendChecks, error) {
	s.batch.Add(1)
	if s.batchErr != nil {
		return nil, s.batchErr
	}
	return s.Store.SendChecksBatch(ctx, tenantID, keys)
}

// TestRecordOutlastsAStoreOutage: the store refuses every record for
// longer than a few quick tries (a database restart); the outcomes of
// mails the provider already took are still recorded once it is back,
// on both paths, instead of being left to end as outcome_unknown.
func TestRecordOutlastsAStoreOutage(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, dialect, &enqueueRecorder{})
			batch1, batch2, single := e.create(nil), e.create(nil), e.create(nil)
			fs := &outageStore{Store: e.store, until: time.Now().Add(1500 * time.Millisecond)}
			n := e.notifier(func(c *NotifierConfig) { c.Store = fs })
			if err := n.DeliverBatch(ctx, []string{batch1.ID, batch2.ID}); err != nil {
				t.Fatalf("batch: %v", err)
			}
			fs.until = time.Now().Add(1500 * time.Millisecond)
			if err := n.Deliver(ctx, single.ID); err != nil {
				t.Fatalf("single: %v", err)
			}
			for _, id := range []string{batch1.ID, batch2.ID, single.ID} {
				if got := e.get(id); got.Status != store.StatusSent || got.NeedsReconciliation {
					t.Errorf("%s: %s (reconciliation %v), want sent", id, got.Status, got.NeedsReconciliation)
				}
			}
			if refused := fs.refused.Load(); refused < 6 {
				t.Errorf("the store refused %d records; the outage was not exercised", refused)
			}
			if sends := len(e.mail.sends()); sends != 3 {
				t.Errorf("%d mails sent, want 3", sends)
			}
		})
	}
}

// outageStore refuses to record outcomes until a time has passed.
type outageStore struct {
	*store.Store
	until   time.Time
	refused atomic.Int64
}

var errStoreDown = errors.New("connection refused")

func (s *outageStore) FinishAttempt(ctx context.Context, id string, now time.Time, r store.AttemptResult) (store.Notification, error) {
	if time.Now().Before(s.until) {
		s.refused.Add(1)
		return store.Notification{}, errStoreDown
	}
	return s.Store.FinishAttempt(ctx, id, now, r)
}

func (s *outageStore) FinishAndDispatch(ctx context.Context, now time.Time, items []store.Finish, next []string) ([]string, error) {
	if time.Now().Before(s.until) {
		s.refused.Add(1)
		return nil, errStoreDown
	}
	return s.Store.FinishAndDispatch(ctx, now, items, next)
}
