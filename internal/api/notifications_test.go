package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
)

func TestCreateNotificationRefusesBadInput(t *testing.T) {
	t.Parallel()
	type tc struct {
		name   string
		body   func(now time.Time) string
		status int
		code   string
		field  string
	}
	js := func(m map[string]any) func(time.Time) string {
		return func(time.Time) string { return mustJSON(t, m) }
	}
	raw := func(s string) func(time.Time) string { return func(time.Time) string { return s } }
	email := emailRequest("k1")
	sms := smsRequest("k1")
	sendAt := func(d time.Duration) func(time.Time) string {
		return func(now time.Time) string {
			return mustJSON(t, with(email, "send_at", now.Add(d).Format(time.RFC3339Nano)))
		}
	}
	cases := []tc{
		{"body over 64 KiB", js(with(email, "data", with(templateData(), "service", strings.Repeat("x", 65<<10)))), 413, "too_large", "body"},
		{"syntax error", raw(`{"channel": "email",`), 400, "malformed_json", ""},
		{"not an object", raw(`["email"]`), 400, "malformed_json", ""},
		{"empty body", raw(` `), 400, "malformed_json", ""},
		{"trailing data", raw(mustJSON(t, email) + `{}`), 400, "malformed_json", ""},
		{"wrong type", js(with(email, "channel", 5)), 400, "wrong_type", "channel"},
		{"unknown field", js(with(email, "colour", "blue")), 400, "unknown_field", "colour"},
		{"idempotency_key missing", js(with(email, "idempotency_key", nil)), 422, "invalid_field", "idempotency_key"},
		{"idempotency_key too long", js(with(email, "idempotency_key", strings.Repeat("k", 256))), 422, "invalid_field", "idempotency_key"},
		{"idempotency_key not ASCII", js(with(email, "idempotency_key", "schlüssel")), 422, "invalid_field", "idempotency_key"},
		{"idempotency_key control char", js(with(email, "idempotency_key", "a\tb")), 422, "invalid_field", "idempotency_key"},
		{"idempotency_key reserved for appointments", js(with(email, "idempotency_key", "appt:x:v1:reminder:anna:email")), 422, "invalid_field", "idempotency_key"},
		{"channel missing", js(with(email, "channel", nil)), 422, "invalid_field", "channel"},
		{"channel unknown", js(with(email, "channel", "fax")), 422, "invalid_field", "channel"},
		{"email with display name", js(with(email, "to", "Jane <jane@example.com>")), 422, "invalid_field", "to"},
		{"email in brackets", js(with(email, "to", "<jane@example.com>")), 422, "invalid_field", "to"},
		{"email with space", js(with(email, "to", " jane@example.com")), 422, "invalid_field", "to"},
		{"email without domain", js(with(email, "to", "jane")), 422, "invalid_field", "to"},
		{"email too long", js(with(email, "to", strings.Repeat("a", 64)+"@"+strings.Repeat("b", 186)+".com")), 422, "invalid_field", "to"},
		{"email missing", js(with(email, "to", nil)), 422, "invalid_field", "to"},
		{"sms without plus", js(with(sms, "to", "4915112345678")), 422, "invalid_field", "to"},
		{"sms leading zero", js(with(sms, "to", "+0915112345678")), 422, "invalid_field", "to"},
		{"sms too short", js(with(sms, "to", "+491234")), 422, "invalid_field", "to"},
		{"sms too long", js(with(sms, "to", "+4915112345678901")), 422, "invalid_field", "to"},
		{"sms with spaces", js(with(sms, "to", "+49 151 12345678")), 422, "invalid_field", "to"},
		{"sms to an email address", js(with(sms, "to", "jane@example.com")), 422, "invalid_field", "to"},
		{"purpose missing", js(with(email, "purpose", nil)), 422, "invalid_field", "purpose"},
		{"purpose unknown", js(with(email, "purpose", "marketing")), 422, "invalid_field", "purpose"},
		{"sms without subject_id", js(with(sms, "subject_id", nil)), 422, "invalid_field", "subject_id"},
		{"subject_id too long", js(with(email, "subject_id", strings.Repeat("s", 201))), 422, "invalid_field", "subject_id"},
		{"subject_id control char", js(with(email, "subject_id", "a\nb")), 422, "invalid_field", "subject_id"},
		{"send_at not RFC 3339", js(with(email, "send_at", "tomorrow 9am")), 422, "invalid_field", "send_at"},
		{"send_at date only", js(with(email, "send_at", "2030-01-02")), 422, "invalid_field", "send_at"},
		{"send_at wrong type", js(with(email, "send_at", 1893456000)), 400, "wrong_type", "send_at"},
		{"send_at 10 s ago", sendAt(-10 * time.Second), 422, "invalid_field", "send_at"},
		{"send_at beyond 400 days", sendAt(400*24*time.Hour + time.Second), 422, "invalid_field", "send_at"},
		{"data missing", js(with(email, "data", nil)), 422, "invalid_field", "data"},
		{"data a string", js(with(email, "data", "customer")), 422, "invalid_field", "data"},
		{"data an array", js(with(email, "data", []string{"a"})), 422, "invalid_field", "data"},
		{"data null", raw(strings.Replace(mustJSON(t, with(email, "data", "X")), `"X"`, "null", 1)), 422, "invalid_field", "data"},
		{"locale missing", js(with(email, "locale", nil)), 422, "invalid_field", "locale"},
		{"locale malformed", js(with(email, "locale", "en GB")), 422, "invalid_field", "locale"},
		{"template missing", js(with(email, "template", nil)), 422, "invalid_field", "template"},
		{"template unknown", js(with(email, "template", "newsletter")), 422, "invalid_field", "template"},
		{"variable missing", js(with(email, "data", with(templateData(), "customer_name", nil))), 422, "invalid_field", "data.customer_name"},
		{"start not a time", js(with(email, "data", with(templateData(), "start", "soon"))), 422, "invalid_field", "data.start"},
		{"time_zone unknown", js(with(email, "data", with(templateData(), "time_zone", "Mars/Olympus"))), 422, "invalid_field", "data.time_zone"},
	}
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				w := e.do("POST", "/v1/notifications", e.token, c.body(e.now))
				wantError(t, w, c.status, c.code, c.field)
				if n := e.countRows("notifications"); n != 0 {
					t.Errorf("%d notifications stored, want 0", n)
				}
				if q := e.queue.all(); len(q) != 0 {
					t.Errorf("%d tasks enqueued, want 0", len(q))
				}
			})
		}
	})
}

func TestCreateNotificationAccepts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		body    func(now time.Time) map[string]any
		wantAt  func(now time.Time) time.Time
		subject string
	}{
		{"email without send_at is due now", func(time.Time) map[string]any { return emailRequest("a") }, func(now time.Time) time.Time { return now }, ""},
		{"sms with subject", func(time.Time) map[string]any { return smsRequest("b") }, func(now time.Time) time.Time { return now }, "cust-42"},
		{"send_at 3 s ago counts as now", func(now time.Time) map[string]any {
			return with(emailRequest("c"), "send_at", now.Add(-3*time.Second).Format(time.RFC3339Nano))
		}, func(now time.Time) time.Time { return now }, ""},
		{"send_at tomorrow in another zone", func(now time.Time) map[string]any {
			return with(emailRequest("d"), "send_at", now.Add(24*time.Hour).In(time.FixedZone("CET", 3600)).Format(time.RFC3339Nano))
		}, func(now time.Time) time.Time { return now.Add(24 * time.Hour) }, ""},
		{"send_at 400 days ahead", func(now time.Time) map[string]any {
			return with(emailRequest("e"), "send_at", now.Add(400*24*time.Hour).Format(time.RFC3339Nano))
		}, func(now time.Time) time.Time { return now.Add(400 * 24 * time.Hour) }, ""},
		{"reminder in German", func(time.Time) map[string]any {
			return with(with(emailRequest("f"), "purpose", "reminder"), "locale", "de")
		}, func(now time.Time) time.Time { return now }, ""},
		{"key of 255 printable characters", func(time.Time) map[string]any {
			return emailRequest(strings.Repeat("~", 255))
		}, func(now time.Time) time.Time { return now }, ""},
	}
	forEachDialect(t, func(t *testing.T, dialect string) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dialect)
				body := c.body(e.now)
				w := e.do("POST", "/v1/notifications", e.token, mustJSON(t, body))
				if w.Code != http.StatusAccepted {
					t.Fatalf("status %d, body %s", w.Code, w.Body)
				}
				var got notificationCreated
				decodeBody(t, w, &got)
				if got.ID == "" || got.Status != store.StatusScheduled {
					t.Fatalf("answer %+v, want an id and status scheduled", got)
				}
				n, err := e.store.GetNotification(e.ctx(), e.tenant.ID, got.ID)
				if err != nil {
					t.Fatalf("stored row: %v", err)
				}
				want := c.wantAt(e.now)
				if !n.SendAt.Equal(want) {
					t.Errorf("stored send_at %v, want %v", n.SendAt, want)
				}
				if n.Recipient != body["to"] || n.Channel != body["channel"] || n.SubjectID != c.subject {
					t.Errorf("stored recipient/channel/subject = %q/%q/%q", n.Recipient, n.Channel, n.SubjectID)
				}
				var data map[string]any
				if err := json.Unmarshal(n.Data, &data); err != nil || data["customer_name"] != "Jane Doe" {
					t.Errorf("stored data %s (%v)", n.Data, err)
				}
				q := e.queue.all()
				if len(q) != 1 || q[0].ID != got.ID || q[0].Attempt != 0 || !q[0].At.Equal(want) {
					t.Errorf("enqueued %+v, want one task for %s at %v attempt 0", q, got.ID, want)
				}
			})
		}
	})
}

func TestCreateNotificationIdempotency(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		first := e.createOK(mustJSON(t, emailRequest("idem-1")))

		steps := []struct {
			name   string
			body   string
			status int
			code   string
		}{
			{"same body again", mustJSON(t, emailRequest("idem-1")), 200, ""},
			{"keys reordered and spaced", reorderedEmailJSON("idem-1"), 200, ""},
			{"other recipient", mustJSON(t, with(emailRequest("idem-1"), "to", "john@example.com")), 409, "idempotency_key_reused"},
			{"other data", mustJSON(t, with(emailRequest("idem-1"), "data", with(templateData(), "service", "X-ray"))), 409, "idempotency_key_reused"},
			{"send_at added", mustJSON(t, with(emailRequest("idem-1"), "send_at", e.now.Add(time.Hour).Format(time.RFC3339))), 409, "idempotency_key_reused"},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				w := e.do("POST", "/v1/notifications", e.token, s.body)
				if s.status == 409 {
					wantError(t, w, 409, s.code, "idempotency_key")
				} else {
					if w.Code != s.status {
						t.Fatalf("status %d, want %d (body %s)", w.Code, s.status, w.Body)
					}
					var got notificationCreated
					decodeBody(t, w, &got)
					if got.ID != first {
						t.Errorf("id %q, want the first one %q", got.ID, first)
					}
				}
				if n := e.countRows("notifications"); n != 1 {
					t.Errorf("%d rows, want 1", n)
				}
				if q := e.queue.all(); len(q) != 1 {
					t.Errorf("%d tasks enqueued, want only the first", len(q))
				}
			})
		}

		t.Run("send_at in another zone is the same instant", func(t *testing.T) {
			at := e.now.Add(2 * time.Hour)
			id := e.createOK(mustJSON(t, with(emailRequest("idem-2"), "send_at", at.Format(time.RFC3339Nano))))
			w := e.do("POST", "/v1/notifications", e.token,
				mustJSON(t, with(emailRequest("idem-2"), "send_at", at.In(time.FixedZone("X", -5*3600)).Format(time.RFC3339Nano))))
			var got notificationCreated
			decodeBody(t, w, &got)
			if w.Code != 200 || got.ID != id {
				t.Errorf("status %d id %q, want 200 and %q", w.Code, got.ID, id)
			}
		})
	})
}

// reorderedEmailJSON is emailRequest(key) written by hand with keys in
// another order and extra whitespace.
func reorderedEmailJSON(key string) string {
	return fmt.Sprintf(`{
	  "data": {"time_zone": "Europe/Berlin", "end": "2030-03-01T09:30:00Z", "start": "2030-03-01T09:00:00Z",
	           "service": "Check-up", "provider_name": "Dr. Muster", "customer_name": "Jane Doe"},
	  "purpose": "transactional", "template": "confirmation", "locale": "en",
	  "to": "jane@example.com", "channel": "email", "idempotency_key": %q
	}`, key)
}

func TestCreateNotificationConcurrentReplays(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		const n = 16
		body := mustJSON(t, smsRequest("race"))
		codes := make([]int, n)
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				w := e.do("POST", "/v1/notifications", e.token, body)
				codes[i] = w.Code
				var got notificationCreated
				_ = json.Unmarshal(w.Body.Bytes(), &got)
				ids[i] = got.ID
			})
		}
		wg.Wait()
		accepted := 0
		for i := range n {
			switch codes[i] {
			case 202:
				accepted++
			case 200:
			default:
				t.Fatalf("request %d: status %d", i, codes[i])
			}
			if ids[i] == "" || ids[i] != ids[0] {
				t.Errorf("request %d: id %q, want %q", i, ids[i], ids[0])
			}
		}
		if accepted != 1 {
			t.Errorf("%d answers were 202, want exactly 1", accepted)
		}
		if rows := e.countRows("notifications"); rows != 1 {
			t.Errorf("%d rows, want 1", rows)
		}
		if q := e.queue.all(); len(q) != 1 {
			t.Errorf("%d tasks enqueued, want 1", len(q))
		}
	})
}

func TestCreateNotificationEnqueueFailureStillAccepts(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		e.queue.failing = true
		id := e.createOK(mustJSON(t, emailRequest("q-down")))
		n, err := e.store.GetNotification(e.ctx(), e.tenant.ID, id)
		if err != nil || n.Status != store.StatusScheduled {
			t.Fatalf("row %+v, err %v: want it stored as scheduled for the sweeper", n.Status, err)
		}
		if logs := e.logs.String(); !strings.Contains(logs, id) || strings.Contains(logs, "jane@example.com") {
			t.Errorf("the failure should be logged by id only; logs:\n%s", logs)
		}
	})
}
