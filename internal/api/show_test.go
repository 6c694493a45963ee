package api

import (
	"strings"
	"testing"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestGetNotification(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		emailID := e.createOK(mustJSON(t, emailRequest("show-email")))
		smsID := e.createOK(mustJSON(t, smsRequest("show-sms")))
		e.markSent(smsID, "SM0123456789abcdef")

		t.Run("email masked, no data", func(t *testing.T) {
			w := e.do("GET", "/v1/notifications/"+emailID, e.token, "")
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			body := w.Body.String()
			for _, secret := range []string{"jane@example.com", "Jane Doe", "customer_name", `"data"`} {
				if strings.Contains(body, secret) {
					t.Errorf("answer contains %q: %s", secret, body)
				}
			}
			var v notificationView
			decodeBody(t, w, &v)
			if v.ID != emailID || v.Status != "scheduled" || v.To != "j***@example.com" || v.Channel != "email" ||
				v.Template != "confirmation" || v.Locale != "en" || v.Purpose != "transactional" || v.SendAt == "" || v.CreatedAt == "" {
				t.Errorf("view %+v", v)
			}
			if v.Attempts == nil || len(v.Attempts) != 0 {
				t.Errorf("attempts %v, want an empty list", v.Attempts)
			}
		})
		t.Run("sms with an attempt", func(t *testing.T) {
			w := e.do("GET", "/v1/notifications/"+smsID, e.token, "")
			if strings.Contains(w.Body.String(), "provider said") || strings.Contains(w.Body.String(), "4915112345678") {
				t.Errorf("answer leaks the provider's text or the number: %s", w.Body)
			}
			var v notificationView
			decodeBody(t, w, &v)
			if v.Status != store.StatusSent || v.To != "+49151*****78" || v.SubjectID != "cust-42" {
				t.Errorf("view %+v", v)
			}
			if len(v.Attempts) != 1 || v.Attempts[0].N != 1 || v.Attempts[0].Outcome != "sent" ||
				v.Attempts[0].ProviderID != "SM0123456789abcdef" || v.Attempts[0].At == "" {
				t.Errorf("attempts %+v", v.Attempts)
			}
		})
		t.Run("unknown id", func(t *testing.T) {
			wantError(t, e.do("GET", "/v1/notifications/ntf_nope", e.token, ""), 404, "not_found", "")
		})
		t.Run("another tenant's", func(t *testing.T) {
			_, otherToken := storetest.NewTenant(t, e.store)
			wantError(t, e.do("GET", "/v1/notifications/"+emailID, otherToken, ""), 404, "not_found", "")
			wantError(t, e.do("DELETE", "/v1/notifications/"+emailID, otherToken, ""), 404, "not_found", "")
			n, err := e.store.GetNotification(e.ctx(), e.tenant.ID, emailID)
			if err != nil || n.Status != store.StatusScheduled {
				t.Errorf("after another tenant's cancel: %v %v", n.Status, err)
			}
		})
	})
}

func TestCancelNotification(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		scheduled := e.createOK(mustJSON(t, emailRequest("c1")))
		sent := e.createOK(mustJSON(t, smsRequest("c2")))
		e.markSent(sent, "SMsent")

		steps := []struct {
			name    string
			id      string
			status  int
			code    string
			message string
			stored  string
		}{
			{"scheduled is cancelled", scheduled, 200, "", "", store.StatusCancelled},
			{"cancelled again", scheduled, 409, "not_cancellable", "cancelled", store.StatusCancelled},
			{"sent is not cancellable", sent, 409, "not_cancellable", "sent", store.StatusSent},
			{"unknown", "ntf_unknown", 404, "not_found", "", ""},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				w := e.do("DELETE", "/v1/notifications/"+s.id, e.token, "")
				if s.status == 200 {
					var got notificationCreated
					decodeBody(t, w, &got)
					if w.Code != 200 || got.ID != s.id || got.Status != "cancelled" {
						t.Fatalf("status %d answer %+v", w.Code, got)
					}
				} else {
					wantError(t, w, s.status, s.code, "")
					var eb errorBody
					decodeBody(t, w, &eb)
					if !strings.Contains(eb.Error.Message, s.message) {
						t.Errorf("message %q should name the status %q", eb.Error.Message, s.message)
					}
				}
				if s.stored != "" {
					n, err := e.store.GetNotification(e.ctx(), e.tenant.ID, s.id)
					if err != nil || n.Status != s.stored {
						t.Errorf("stored status %q (%v), want %q", n.Status, err, s.stored)
					}
				}
			})
		}
	})
}

func TestMaskRecipient(t *testing.T) {
	t.Parallel()
	cases := []struct{ channel, to, want string }{
		{"email", "jane@example.com", "j***@example.com"},
		{"email", "j@example.com", "j***@example.com"},
		{"email", "émile@example.fr", "é***@example.fr"},
		{"sms", "+4915112345678", "+49151*****78"},
		{"sms", "+12345678", "+12*****78"},
		{"sms", "+1234567", "+1*****67"},
		{"sms", "+123", "*****"},
	}
	for _, c := range cases {
		if got := maskRecipient(c.channel, c.to); got != c.want {
			t.Errorf("maskRecipient(%s, %s) = %q, want %q", c.channel, c.to, got, c.want)
		}
	}
}
