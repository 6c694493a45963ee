package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/termind/termind/internal/store/storetest"
)

// These tests run the whole daemon — API → store → queue → worker →
// provider — against real peers, on both store dialects.

func mailRequest(key string) map[string]any {
	return map[string]any{
		"idempotency_key": key,
		"channel":         "email",
		"to":              "juergen.mueller@example.org",
		"locale":          "de",
		"template":        "confirmation",
		"purpose":         "transactional",
		"subject_id":      "cust-42",
		"data":            confirmationData(),
	}
}

func smsRequest(key string) map[string]any {
	return map[string]any{
		"idempotency_key": key,
		"channel":         "sms",
		"to":              "+4915112345678",
		"locale":          "de",
		"template":        "reminder",
		"purpose":         "reminder",
		"subject_id":      "cust-42",
		"data":            confirmationData(),
	}
}

type created struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (st *stack) post(body map[string]any) created {
	st.t.Helper()
	var c created
	if code := st.do("POST", "/v1/notifications", body, &c); code != http.StatusAccepted {
		st.t.Fatalf("POST /v1/notifications: %d, want 202", code)
	}
	return c
}

func (st *stack) grant(subject, purpose, decision string) {
	st.t.Helper()
	code := st.do("POST", "/v1/consents", map[string]any{
		"subject_id":     subject,
		"purpose":        purpose,
		"decision":       decision,
		"policy_version": "2026-01",
		"source":         map[string]any{"ip": "203.0.113.7", "user_agent": "e2e"},
	}, nil)
	if code != http.StatusCreated {
		st.t.Fatalf("POST /v1/consents: %d", code)
	}
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			st := newStack(t, dialect)

			t.Run("mail reaches the SMTP server rendered", func(t *testing.T) {
				n := st.post(mailRequest("mail-1"))
				v := st.waitStatus(n.ID, "sent")
				if len(v.Attempts) != 1 || v.Attempts[0].Outcome != "sent" {
					t.Fatalf("attempts = %+v, want one sent attempt", v.Attempts)
				}
				msg := findMail(t, st, n.ID)
				if got := msg.Header.Get("To"); !strings.Contains(got, "juergen.mueller@example.org") {
					t.Errorf("To = %q", got)
				}
				if got := msg.Header.Get("From"); !strings.Contains(got, "termine@praxis.example") {
					t.Errorf("From = %q", got)
				}
				if msg.Header.Get("Subject") == "" || msg.Header.Get("Message-Id") == "" {
					t.Errorf("Subject/Message-Id missing: %v", msg.Header)
				}
				for _, part := range []string{msg.Text, msg.HTML} {
					if !strings.Contains(part, "Jürgen Müller") || !strings.Contains(part, "Erstgespräch") {
						t.Errorf("body lacks the rendered data:\n%s", part)
					}
				}
				// 09:30 UTC is 10:30 in Berlin in December.
				if !strings.Contains(msg.Text, "10:30") {
					t.Errorf("text does not show the local time 10:30:\n%s", msg.Text)
				}
				if !strings.Contains(msg.HTML, "<html") && !strings.Contains(msg.HTML, "<p") {
					t.Errorf("HTML part is not HTML:\n%s", msg.HTML)
				}
			})

			t.Run("idempotent replay sends once", func(t *testing.T) {
				first := st.post(mailRequest("mail-replay"))
				var again created
				if code := st.do("POST", "/v1/notifications", mailRequest("mail-replay"), &again); code != http.StatusOK {
					t.Fatalf("replay: %d, want 200", code)
				}
				if again.ID != first.ID {
					t.Fatalf("replay id %s, want %s", again.ID, first.ID)
				}
				st.waitStatus(first.ID, "sent")
				time.Sleep(300 * time.Millisecond) // a sweep period: no second send may follow
				if got := countMail(st, first.ID); got != 1 {
					t.Fatalf("%d mails for one idempotency key, want 1", got)
				}
			})

			t.Run("scheduled send can be cancelled", func(t *testing.T) {
				req := mailRequest("mail-cancel")
				req["send_at"] = time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
				n := st.post(req)
				var c created
				if code := st.do("DELETE", "/v1/notifications/"+n.ID, nil, &c); code != http.StatusOK || c.Status != "cancelled" {
					t.Fatalf("cancel: %d %+v", code, c)
				}
				time.Sleep(2500 * time.Millisecond)
				if got := countMail(st, n.ID); got != 0 {
					t.Fatalf("cancelled notification was sent %d times", got)
				}
				if v := st.notification(n.ID); v.Status != "cancelled" {
					t.Fatalf("status %s, want cancelled", v.Status)
				}
				if code := st.do("DELETE", "/v1/notifications/"+n.ID, nil, nil); code != http.StatusConflict {
					t.Fatalf("second cancel: %d, want 409", code)
				}
			})

			t.Run("transient SMTP 451 is retried, then delivered", func(t *testing.T) {
				st.smtp.FailNext(1, 451, "4.3.0 try again later")
				n := st.post(mailRequest("mail-451"))
				v := st.waitStatus(n.ID, "sent")
				if len(v.Attempts) != 2 || v.Attempts[0].Outcome != "retry" || v.Attempts[0].ErrorCode != "451" {
					t.Fatalf("attempts = %+v, want a 451 retry then sent", v.Attempts)
				}
				if got := countMail(st, n.ID); got != 1 {
					t.Fatalf("%d mails delivered, want 1", got)
				}
			})

			t.Run("permanent SMTP 550 fails without retry", func(t *testing.T) {
				st.smtp.FailNext(1, 550, "5.1.1 mailbox unavailable")
				n := st.post(mailRequest("mail-550"))
				v := st.waitStatus(n.ID, "failed")
				time.Sleep(300 * time.Millisecond)
				v = st.notification(n.ID)
				if len(v.Attempts) != 1 || v.Attempts[0].ErrorCode != "550" || v.StatusReason != "smtp 550" {
					t.Fatalf("got %+v, want one failed attempt with 550", v)
				}
			})

			t.Run("sms with consent reaches Twilio and its status callback is applied", func(t *testing.T) {
				st.grant("cust-42", "notify.sms", "granted")
				n := st.post(smsRequest("sms-1"))
				v := st.waitStatus(n.ID, "sent")
				msg := findSMS(t, st, v.Attempts[0].ProviderID)
				if msg.To != "+4915112345678" || msg.From != testTwilioFrom {
					t.Errorf("To/From = %s/%s", msg.To, msg.From)
				}
				if !strings.Contains(msg.Body, "Erstgespräch") {
					t.Errorf("body = %q", msg.Body)
				}
				if msg.StatusCallback != st.url+"/webhooks/twilio/status" {
					t.Errorf("StatusCallback = %q", msg.StatusCallback)
				}
				if err := st.twilio.SendStatus(context.Background(), msg.SID, "delivered", 0); err != nil {
					t.Fatal(err)
				}
				st.waitStatus(n.ID, "delivered")
			})

			t.Run("Twilio 21211 fails without retry", func(t *testing.T) {
				st.grant("cust-42", "notify.sms", "granted")
				st.twilio.FailNext(1, 400, 21211, "The 'To' number is not a valid phone number.")
				n := st.post(smsRequest("sms-21211"))
				st.waitStatus(n.ID, "failed")
				time.Sleep(300 * time.Millisecond)
				v := st.notification(n.ID)
				if len(v.Attempts) != 1 || v.StatusReason != "twilio 21211" {
					t.Fatalf("got %+v, want one attempt failed with twilio 21211", v)
				}
			})

			t.Run("sms without consent is suppressed", func(t *testing.T) {
				req := smsRequest("sms-no-consent")
				req["subject_id"] = "cust-without-consent"
				before := len(st.twilio.Messages())
				n := st.post(req)
				v := st.waitStatus(n.ID, "suppressed")
				if v.StatusReason != "no_consent:notify.sms" {
					t.Fatalf("reason %q", v.StatusReason)
				}
				if after := len(st.twilio.Messages()); after != before {
					t.Fatalf("Twilio received %d messages, want none", after-before)
				}
			})

			t.Run("restricted subject gets nothing", func(t *testing.T) {
				if code := st.do("POST", "/v1/subjects/cust-restricted/restrict", nil, nil); code != http.StatusOK {
					t.Fatalf("restrict: %d", code)
				}
				req := mailRequest("mail-restricted")
				req["subject_id"] = "cust-restricted"
				n := st.post(req)
				v := st.waitStatus(n.ID, "suppressed")
				if v.StatusReason != "restricted" || countMail(st, n.ID) != 0 {
					t.Fatalf("restricted subject: %+v, mails %d", v, countMail(st, n.ID))
				}
			})
		})
	}
}

// TestRedisFlushedLosesNothing: the store is the source of truth, so a Redis
// that loses every task still delivers every due notification exactly once.
func TestRedisFlushedLosesNothing(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			st := newStack(t, dialect)
			// Far enough ahead for 20 requests on a busy machine: a send_at
			// in the past is refused.
			sendAt := time.Now().Add(4 * time.Second).UTC().Format(time.RFC3339Nano)
			var ids []string
			for i := range 20 {
				req := mailRequest(fmt.Sprintf("flush-%d", i))
				req["send_at"] = sendAt
				ids = append(ids, st.post(req).ID)
			}
			opt, err := redis.ParseURL(st.cfg.RedisURL)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opt)
			defer rdb.Close()
			if err := rdb.FlushDB(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				st.waitStatus(id, "sent")
			}
			time.Sleep(500 * time.Millisecond)
			for _, id := range ids {
				if got := countMail(st, id); got != 1 {
					t.Errorf("notification %s delivered %d times, want 1", id, got)
				}
			}
		})
	}
}

// TestTwoWorkersSendOnce runs two worker processes on one store and one
// Redis: the compare-and-set claim makes every notification go out once.
func TestTwoWorkersSendOnce(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			st := newStack(t, dialect)
			st.start(nil, []string{roleWorker})
			const n = 100
			items := make([]map[string]any, n)
			for i := range items {
				items[i] = mailRequest(fmt.Sprintf("race-%d", i))
			}
			var res struct {
				Items []struct {
					ID         string `json:"id"`
					StatusCode int    `json:"status_code"`
				} `json:"items"`
			}
			if code := st.do("POST", "/v1/notifications/batch", map[string]any{"items": items}, &res); code != http.StatusOK {
				t.Fatalf("batch: %d", code)
			}
			// Enqueue every id a second time, as a sweeper racing the API
			// would: both workers may now hold a task for the same row.
			for i, it := range res.Items {
				if it.StatusCode != http.StatusAccepted {
					t.Fatalf("item %d: %d", i, it.StatusCode)
				}
				if err := st.daemon.queue.EnqueueNotification(context.Background(), it.ID, 1, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			for _, it := range res.Items {
				st.waitStatus(it.ID, "sent")
			}
			time.Sleep(500 * time.Millisecond)
			seen := map[string]int{}
			for _, m := range st.smtp.Messages() {
				seen[m.Header.Get("X-Termind-Notification")]++
			}
			for _, it := range res.Items {
				if seen[it.ID] != 1 {
					t.Errorf("notification %s sent %d times, want 1", it.ID, seen[it.ID])
				}
			}
		})
	}
}
