package workers

import (
	"context"
	"slices"
	"testing"

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
			ok1 := e.create(nil)
			ok2 := e.create(func(n *store.Notification) { n.SubjectID = "anna" })
			restricted := e.create(func(n *store.Notification) { n.SubjectID = "restricted" })
			noConsent := e.create(func(n *store.Notification) {
				n.Channel, n.Recipient, n.SubjectID = store.ChannelSMS, "+4915112345678", "ben"
			})
			temporary := e.create(nil)
			permanent := e.create(nil)
			// The recorder hands out failures in call order; the batch sends
			// in parallel, so make the two failing rows the only mail rows
			// sent after a first pass of the others.
			n := e.notifier(nil)
			if err := n.DeliverBatch(ctx, []string{ok1.ID, ok2.ID, restricted.ID, noConsent.ID}); err != nil {
				t.Fatal(err)
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
			if len(e.sms.sends()) != 0 {
				t.Errorf("an SMS without consent was sent")
			}
		})
	}
}
