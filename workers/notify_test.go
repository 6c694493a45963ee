package workers

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/queue/queuetest"
)

// Through the real queue: enqueue → server → notifier → store.
func TestNotifierThroughQueue(t *testing.T) {
	t.Parallel()
	redisURL := queuetest.RedisURL(t)
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("email sent", func(t *testing.T) {
				t.Parallel()
				qn := "sent-" + dialect
				r, client := openQueue(t, redisURL, qn)
				e := newEnv(t, dialect, client)
				startWorker(t, r, qn, e.notifier(nil), nil, nil)

				n := e.create(nil)
				if err := client.EnqueueNotification(ctx, n.ID, 0, n.SendAt); err != nil {
					t.Fatal(err)
				}
				got := e.waitStatus(n.ID, store.StatusSent)
				sends := e.mail.sends()
				if len(sends) != 1 {
					t.Fatalf("mail sends = %d, want 1", len(sends))
				}
				m := sends[0].mail
				if m.ID != n.ID || m.To != "kunde@example.org" || m.From != "Praxis <noreply@praxis.example>" || m.Subject != "Subject confirmation" || m.Text != "Hello Alex" {
					t.Errorf("mail = %+v", m)
				}
				if sends[0].taskID != queue.NotifyTaskID(n.ID, 0) {
					t.Errorf("task id = %q", sends[0].taskID)
				}
				if got.ProviderID != "prov-1" || !slices.Equal(outcomes(got), []string{"sent"}) || got.Attempts[0].ProviderID != "prov-1" {
					t.Errorf("row = provider %q attempts %+v", got.ProviderID, got.Attempts)
				}
				if got.FinalAt.IsZero() || got.ExpiresAt.IsZero() {
					t.Errorf("final row lacks final_at/expires_at: %+v", got)
				}
			})

			t.Run("transient error then sent", func(t *testing.T) {
				t.Parallel()
				qn := "retry-" + dialect
				r, client := openQueue(t, redisURL, qn)
				e := newEnv(t, dialect, client)
				e.mail.fail(tempErr("451"))
				startWorker(t, r, qn, e.notifier(nil), nil, nil)

				n := e.create(nil)
				if err := client.EnqueueNotification(ctx, n.ID, 0, n.SendAt); err != nil {
					t.Fatal(err)
				}
				got := e.waitStatus(n.ID, store.StatusSent)
				if want := []string{"retry", "sent"}; !slices.Equal(outcomes(got), want) {
					t.Errorf("attempt outcomes = %v, want %v", outcomes(got), want)
				}
				if a := got.Attempts[0]; a.ErrorCode != "451" || a.Error == "" {
					t.Errorf("first attempt = %+v, want code 451 and the error text", a)
				}
				var ids []string
				for _, s := range e.mail.sends() {
					ids = append(ids, s.taskID)
				}
				want := []string{queue.NotifyTaskID(n.ID, 0), queue.NotifyTaskID(n.ID, 1)}
				if !slices.Equal(ids, want) {
					t.Errorf("sends ran as tasks %v, want %v", ids, want)
				}
			})

			t.Run("attempts exhausted", func(t *testing.T) {
				t.Parallel()
				qn := "exhaust-" + dialect
				r, client := openQueue(t, redisURL, qn)
				e := newEnv(t, dialect, client)
				e.mail.always = tempErr("451")
				startWorker(t, r, qn, e.notifier(func(c *NotifierConfig) { c.MaxAttempts = 3 }), nil, nil)

				n := e.create(nil)
				if err := client.EnqueueNotification(ctx, n.ID, 0, n.SendAt); err != nil {
					t.Fatal(err)
				}
				got := e.waitStatus(n.ID, store.StatusFailed)
				if got.StatusReason != "smtp 451" {
					t.Errorf("reason = %q, want smtp 451", got.StatusReason)
				}
				if want := []string{"retry", "retry", "failed"}; !slices.Equal(outcomes(got), want) {
					t.Errorf("outcomes = %v, want %v", outcomes(got), want)
				}
				if len(e.mail.sends()) != 3 {
					t.Errorf("sends = %d, want 3", len(e.mail.sends()))
				}
			})

			t.Run("permanent error fails without retry", func(t *testing.T) {
				t.Parallel()
				qn := "perm-" + dialect
				r, client := openQueue(t, redisURL, qn)
				e := newEnv(t, dialect, client)
				e.mail.fail(permErr("550"))
				startWorker(t, r, qn, e.notifier(nil), nil, nil)

				n := e.create(nil)
				if err := client.EnqueueNotification(ctx, n.ID, 0, n.SendAt); err != nil {
					t.Fatal(err)
				}
				got := e.waitStatus(n.ID, store.StatusFailed)
				if got.StatusReason != "smtp 550" || !slices.Equal(outcomes(got), []string{"failed"}) {
					t.Errorf("row = %s %v", got.StatusReason, outcomes(got))
				}
				in := queue.NewInspector(r, qn)
				defer in.Close()
				if st, err := in.TaskState(ctx, queue.NotifyTaskID(n.ID, 1)); err != nil || st != "" {
					t.Errorf("retry task state = %q, %v; want none", st, err)
				}
				time.Sleep(200 * time.Millisecond)
				if len(e.mail.sends()) != 1 {
					t.Errorf("sends = %d, want 1", len(e.mail.sends()))
				}
			})
		})
	}
}

// Each check that runs right before the send, driven directly.
func TestNotifierChecksAtTheSideEffect(t *testing.T) {
	t.Parallel()
	type setup func(e *env) store.Notification
	tests := []struct {
		name       string
		setup      setup
		wantStatus string
		wantReason string
	}{
		{"restricted subject", func(e *env) store.Notification {
			if err := e.store.SetSubjectRestricted(context.Background(), e.tenant.ID, "s1", true); err != nil {
				e.t.Fatal(err)
			}
			return e.create(func(n *store.Notification) { n.SubjectID = "s1" })
		}, store.StatusSuppressed, ReasonRestricted},
		{"sms without subject", func(e *env) store.Notification {
			return e.create(func(n *store.Notification) { n.Channel = store.ChannelSMS; n.Recipient = "+4915112345678" })
		}, store.StatusSuppressed, ReasonNoSubject},
		{"sms opted out", func(e *env) store.Notification {
			e.consent("s1", store.ConsentNotifySMS, store.DecisionGranted)
			if err := e.store.SetSMSOptedOut(context.Background(), e.tenant.ID, "s1"); err != nil {
				e.t.Fatal(err)
			}
			return e.create(smsTo("s1"))
		}, store.StatusSuppressed, ReasonSMSOptedOut},
		{"sms without consent", func(e *env) store.Notification {
			return e.create(smsTo("s1"))
		}, store.StatusSuppressed, ReasonNoSMSConsent},
		{"sms consent revoked after enqueue", func(e *env) store.Notification {
			e.consent("s1", store.ConsentNotifySMS, store.DecisionGranted)
			n := e.create(smsTo("s1"))
			e.consent("s1", store.ConsentNotifySMS, store.DecisionRevoked)
			return n
		}, store.StatusSuppressed, ReasonNoSMSConsent},
		{"sms consent granted", func(e *env) store.Notification {
			e.consent("s1", store.ConsentNotifySMS, store.DecisionGranted)
			return e.create(smsTo("s1"))
		}, store.StatusSent, ""},
		{"reminder mail refused", func(e *env) store.Notification {
			e.consent("s1", store.ConsentNotifyEmail, store.DecisionRefused)
			return e.create(reminderTo("s1"))
		}, store.StatusSuppressed, ReasonEmailRefused},
		{"reminder mail revoked", func(e *env) store.Notification {
			e.consent("s1", store.ConsentNotifyEmail, store.DecisionGranted)
			e.consent("s1", store.ConsentNotifyEmail, store.DecisionRevoked)
			return e.create(reminderTo("s1"))
		}, store.StatusSuppressed, ReasonEmailRefused},
		{"reminder mail without decision", func(e *env) store.Notification {
			return e.create(reminderTo("s1"))
		}, store.StatusSent, ""},
		{"transactional mail despite refusal", func(e *env) store.Notification {
			e.consent("s1", store.ConsentNotifyEmail, store.DecisionRefused)
			return e.create(func(n *store.Notification) { n.SubjectID = "s1" })
		}, store.StatusSent, ""},
		{"render error", func(e *env) store.Notification {
			return e.create(func(n *store.Notification) { n.Template = "broken" })
		}, store.StatusFailed, ReasonRender},
	}
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					e := newEnv(t, dialect, nil)
					n := tt.setup(e)
					if err := e.notifier(nil).Deliver(context.Background(), n.ID); err != nil {
						t.Fatalf("Deliver: %v", err)
					}
					got := e.get(n.ID)
					if got.Status != tt.wantStatus || got.StatusReason != tt.wantReason {
						t.Fatalf("status = %s (%q), want %s (%q)", got.Status, got.StatusReason, tt.wantStatus, tt.wantReason)
					}
					sends := len(e.mail.sends()) + len(e.sms.sends())
					if wantSends := map[bool]int{true: 1, false: 0}[tt.wantStatus == store.StatusSent]; sends != wantSends {
						t.Errorf("provider calls = %d, want %d", sends, wantSends)
					}
					if len(got.Attempts) != 1 {
						t.Errorf("attempts = %+v, want one record", got.Attempts)
					}
				})
			}
		})
	}
}

func smsTo(subject string) func(*store.Notification) {
	return func(n *store.Notification) {
		n.Channel = store.ChannelSMS
		n.Recipient = "+4915112345678"
		n.SubjectID = subject
	}
}

func reminderTo(subject string) func(*store.Notification) {
	return func(n *store.Notification) {
		n.Purpose = store.PurposeReminder
		n.Template = "reminder"
		n.SubjectID = subject
	}
}

func TestNotifierSMS(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("status callback and locales", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				e.consent("s1", store.ConsentNotifySMS, store.DecisionGranted)
				n := e.create(smsTo("s1"))
				if err := e.notifier(nil).Deliver(ctx, n.ID); err != nil {
					t.Fatal(err)
				}
				sends := e.sms.sends()
				if len(sends) != 1 {
					t.Fatalf("sms sends = %d", len(sends))
				}
				m := sends[0].sms
				if m.ID != n.ID || m.To != "+4915112345678" || m.Body != "Hi Alex" || m.StatusCallback != "https://termind.example/webhooks/twilio/status" {
					t.Errorf("sms = %+v", m)
				}
				want := []string{"de"}
				if e.tenant.DefaultLocale != "de" {
					want = append(want, e.tenant.DefaultLocale)
				}
				if got := e.renderer.locales[0]; !slices.Equal(got, want) {
					t.Errorf("locales = %v, want %v", got, want)
				}
			})

			t.Run("21610 opts the subject out", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				e.consent("s1", store.ConsentNotifySMS, store.DecisionGranted)
				e.sms.fail(permErr("21610"))
				n := e.create(smsTo("s1"))
				if err := e.notifier(nil).Deliver(ctx, n.ID); err != nil {
					t.Fatal(err)
				}
				got := e.get(n.ID)
				if got.Status != store.StatusFailed || got.StatusReason != "twilio 21610" {
					t.Errorf("status = %s %q", got.Status, got.StatusReason)
				}
				sub, err := e.store.GetSubject(ctx, e.tenant.ID, "s1")
				if err != nil || !sub.SMSOptedOut {
					t.Fatalf("subject = %+v, %v; want opted out", sub, err)
				}
				// The next SMS to them is suppressed before reaching Twilio.
				n2 := e.create(smsTo("s1"))
				if err := e.notifier(nil).Deliver(ctx, n2.ID); err != nil {
					t.Fatal(err)
				}
				if got := e.get(n2.ID); got.StatusReason != ReasonSMSOptedOut || len(e.sms.sends()) != 1 {
					t.Errorf("second sms = %s %q after %d sends", got.Status, got.StatusReason, len(e.sms.sends()))
				}
			})

			t.Run("retry after is honoured", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				e.consent("s1", store.ConsentNotifySMS, store.DecisionGranted)
				e.sms.fail(&providerError{temporary: true, code: "20429", retryAfter: time.Hour})
				n := e.create(smsTo("s1"))
				before := time.Now()
				if err := e.notifier(nil).Deliver(ctx, n.ID); err != nil {
					t.Fatal(err)
				}
				got := e.get(n.ID)
				if got.Status != store.StatusScheduled || got.StatusReason != "twilio 20429" {
					t.Errorf("status = %s %q", got.Status, got.StatusReason)
				}
				if got.SendAt.Before(before.Add(time.Hour - time.Second)) {
					t.Errorf("retry at %s, want at least an hour later", got.SendAt)
				}
				q := e.queue.(*enqueueRecorder)
				if ids := q.ids(); !slices.Equal(ids, []string{queue.NotifyTaskID(n.ID, 1)}) {
					t.Errorf("enqueued %v", ids)
				}
			})

			t.Run("error without classification is temporary", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				e.mail.fail(errors.New("connection reset"))
				n := e.create(nil)
				if err := e.notifier(nil).Deliver(ctx, n.ID); err != nil {
					t.Fatal(err)
				}
				if got := e.get(n.ID); got.Status != store.StatusScheduled || got.StatusReason != "smtp error" {
					t.Errorf("status = %s %q, want scheduled retry", got.Status, got.StatusReason)
				}
			})
		})
	}
}

func TestNotifierClaims(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("racing notifiers send once", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				e.mail.delay = 50 * time.Millisecond
				n := e.create(nil)
				a, b := e.notifier(nil), e.notifier(nil)
				var wg sync.WaitGroup
				errs := make(chan error, 8)
				for i := range 8 {
					nt := a
					if i%2 == 1 {
						nt = b
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs <- nt.Deliver(ctx, n.ID)
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Errorf("Deliver: %v", err)
					}
				}
				if got := len(e.mail.sends()); got != 1 {
					t.Errorf("sends = %d, want exactly 1", got)
				}
				if got := e.get(n.ID); got.Status != store.StatusSent || len(got.Attempts) != 1 {
					t.Errorf("row = %s %v", got.Status, outcomes(got))
				}
			})

			t.Run("stale sending is interrupted, not re-sent", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				n := e.create(nil)
				now := time.Now()
				if _, ok, err := e.store.ClaimNotification(ctx, n.ID, now, now.Add(time.Millisecond)); err != nil || !ok {
					t.Fatalf("claim: %v %v", ok, err)
				}
				time.Sleep(10 * time.Millisecond)
				if err := e.notifier(nil).Deliver(ctx, n.ID); err != nil {
					t.Fatal(err)
				}
				got := e.get(n.ID)
				if got.Status != store.StatusFailed || got.StatusReason != store.ReasonOutcomeUnknown || !got.NeedsReconciliation {
					t.Errorf("row = %s %q reconcile=%v", got.Status, got.StatusReason, got.NeedsReconciliation)
				}
				if len(e.mail.sends()) != 0 {
					t.Errorf("sent %d times, want never", len(e.mail.sends()))
				}
			})

			t.Run("live claim of another worker is left alone", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				n := e.create(nil)
				now := time.Now()
				if _, ok, err := e.store.ClaimNotification(ctx, n.ID, now, now.Add(time.Minute)); err != nil || !ok {
					t.Fatalf("claim: %v %v", ok, err)
				}
				if err := e.notifier(nil).Deliver(ctx, n.ID); err != nil {
					t.Fatal(err)
				}
				if got := e.get(n.ID); got.Status != store.StatusSending || len(e.mail.sends()) != 0 {
					t.Errorf("row = %s after %d sends", got.Status, len(e.mail.sends()))
				}
			})

			t.Run("future send_at is put back on the queue", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				at := time.Now().Add(time.Hour)
				n := e.create(func(n *store.Notification) { n.SendAt = at })
				if err := e.notifier(nil).Deliver(ctx, n.ID); err != nil {
					t.Fatal(err)
				}
				if got := e.get(n.ID); got.Status != store.StatusScheduled || len(e.mail.sends()) != 0 {
					t.Errorf("row = %s after %d sends", got.Status, len(e.mail.sends()))
				}
				if ids := e.queue.(*enqueueRecorder).ids(); !slices.Equal(ids, []string{queue.NotifyTaskID(n.ID, 0)}) {
					t.Errorf("enqueued %v", ids)
				}
			})

			t.Run("slightly early task waits for send_at", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				at := time.Now().Add(300 * time.Millisecond)
				n := e.create(func(n *store.Notification) { n.SendAt = at })
				if err := e.notifier(nil).Deliver(ctx, n.ID); err != nil {
					t.Fatal(err)
				}
				if got := e.get(n.ID); got.Status != store.StatusSent {
					t.Errorf("status = %s, want sent", got.Status)
				}
			})

			t.Run("unknown or cancelled notification is a no-op", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect, nil)
				nt := e.notifier(nil)
				if err := nt.Deliver(ctx, "no-such-id"); err != nil {
					t.Errorf("unknown id: %v", err)
				}
				n := e.create(nil)
				if _, err := e.store.CancelNotification(ctx, e.tenant.ID, n.ID, time.Now()); err != nil {
					t.Fatal(err)
				}
				if err := nt.Deliver(ctx, n.ID); err != nil {
					t.Errorf("cancelled: %v", err)
				}
				if got := e.get(n.ID); got.Status != store.StatusCancelled || len(e.mail.sends()) != 0 {
					t.Errorf("row = %s after %d sends", got.Status, len(e.mail.sends()))
				}
			})
		})
	}
}

func TestExponentialBackoff(t *testing.T) {
	t.Parallel()
	b := ExponentialBackoff(time.Second, time.Minute)
	for _, tt := range []struct {
		attempt int
		limit   time.Duration
	}{{0, time.Second}, {3, 8 * time.Second}, {10, time.Minute}, {200, time.Minute}} {
		for range 100 {
			if d := b(tt.attempt); d < 0 || d >= tt.limit {
				t.Fatalf("backoff(%d) = %s, want in [0, %s)", tt.attempt, d, tt.limit)
			}
		}
	}
}
