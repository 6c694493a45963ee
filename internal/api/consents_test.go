package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
)

func consentRequestBody(subject, purpose, decision string) map[string]any {
	return map[string]any{
		"subject_id":     subject,
		"purpose":        purpose,
		"decision":       decision,
		"policy_version": "2025-01",
		"source":         map[string]any{"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
	}
}

func TestRecordConsentAndLedger(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, ingestKey := e.ingestKey()
		conn := e.seedConnection("cust-7", store.ProviderCalDAV, store.ConsentCalendarReadBusy)

		decisions := []struct{ purpose, decision string }{
			{"notify.sms", "granted"},
			{"calendar.read.busy", "refused"},
			{"notify.sms", "revoked"},
		}
		var ids []string
		for i, d := range decisions {
			body := consentRequestBody("cust-7", d.purpose, d.decision)
			if i == 1 {
				body["connection_id"] = conn.ID
				body["source"] = map[string]any{"ip": "2001:db8::1"}
			}
			w := e.do("POST", "/v1/consents", ingest, mustJSON(t, body))
			if w.Code != http.StatusCreated {
				t.Fatalf("record %d: status %d: %s", i, w.Code, w.Body)
			}
			var got consentView
			decodeBody(t, w, &got)
			if got.ID == "" || got.SubjectID != "cust-7" || got.Purpose != d.purpose || got.Decision != d.decision ||
				got.PolicyVersion != "2025-01" || got.Actor != "api_key:"+ingestKey.ID {
				t.Errorf("record %d: %+v", i, got)
			}
			if _, err := time.Parse(time.RFC3339Nano, got.CreatedAt); err != nil {
				t.Errorf("created_at %q: %v", got.CreatedAt, err)
			}
			if i == 0 && (got.Source.IP != "203.0.113.7" || got.Source.UserAgent != "Mozilla/5.0") {
				t.Errorf("source %+v", got.Source)
			}
			if i == 1 && (got.ConnectionID != conn.ID || got.Source.IP != "2001:db8::1") {
				t.Errorf("connection/source %+v", got)
			}
			ids = append(ids, got.ID)
		}

		w := e.do("GET", "/v1/subjects/cust-7/consents", e.token, "")
		var list consentList
		decodeBody(t, w, &list)
		if w.Code != 200 || len(list.Items) != 3+1 { // +1: the connection's own grant
			t.Fatalf("ledger: status %d, %d items", w.Code, len(list.Items))
		}
		for i, c := range list.Items[1:] {
			if c.ID != ids[i] || c.Decision != decisions[i].decision {
				t.Errorf("ledger[%d] = %s %s, want %s %s (oldest first)", i, c.ID, c.Decision, ids[i], decisions[i].decision)
			}
		}

		w = e.do("GET", "/v1/subjects/nobody/consents", e.token, "")
		if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"items":[]}` {
			t.Errorf("unknown subject: %d %s, want an empty list", w.Code, w.Body)
		}
	})
}

func TestRecordConsentRefusesBadInput(t *testing.T) {
	t.Parallel()
	base := consentRequestBody("cust-8", "notify.email", "granted")
	withSource := func(k, v string) map[string]any {
		return with(base, "source", map[string]any{k: v})
	}
	cases := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
	}{
		{"subject_id missing", mustJSON(t, with(base, "subject_id", nil)), 422, "invalid_field", "subject_id"},
		{"subject_id too long", mustJSON(t, with(base, "subject_id", strings.Repeat("s", 201))), 422, "invalid_field", "subject_id"},
		{"purpose unknown", mustJSON(t, with(base, "purpose", "marketing")), 422, "invalid_field", "purpose"},
		{"purpose missing", mustJSON(t, with(base, "purpose", nil)), 422, "invalid_field", "purpose"},
		{"decision unknown", mustJSON(t, with(base, "decision", "maybe")), 422, "invalid_field", "decision"},
		{"policy_version missing", mustJSON(t, with(base, "policy_version", nil)), 422, "invalid_field", "policy_version"},
		{"policy_version too long", mustJSON(t, with(base, "policy_version", strings.Repeat("v", 101))), 422, "invalid_field", "policy_version"},
		{"ip not an address", mustJSON(t, withSource("ip", "203.0.113")), 422, "invalid_field", "source.ip"},
		{"ip a host name", mustJSON(t, withSource("ip", "example.com")), 422, "invalid_field", "source.ip"},
		{"user_agent too long", mustJSON(t, withSource("user_agent", strings.Repeat("u", 513))), 422, "invalid_field", "source.user_agent"},
		{"source wrong type", mustJSON(t, with(base, "source", "browser")), 400, "wrong_type", "source"},
		{"unknown field in source", mustJSON(t, with(base, "source", map[string]any{"country": "DE"})), 400, "unknown_field", "country"},
		{"syntax error", `{"subject_id": `, 400, "malformed_json", ""},
	}
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wantError(t, e.do("POST", "/v1/consents", e.token, c.body), c.status, c.code, c.field)
				if n := e.countRows("consents"); n != 0 {
					t.Errorf("%d consents stored, want 0", n)
				}
			})
		}
	})
}

func TestRestrictSubject(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		steps := []struct {
			path string
			want bool
		}{
			{"/v1/subjects/cust-9/restrict", true},
			{"/v1/subjects/cust-9/restrict", true},
			{"/v1/subjects/cust-9/unrestrict", false},
		}
		for _, s := range steps {
			w := e.do("POST", s.path, e.token, "")
			var got restriction
			decodeBody(t, w, &got)
			if w.Code != 200 || got.SubjectID != "cust-9" || got.Restricted != s.want {
				t.Fatalf("%s: status %d %+v, want restricted=%v", s.path, w.Code, got, s.want)
			}
			sub, err := e.store.GetSubject(e.ctx(), e.tenant.ID, "cust-9")
			if err != nil || sub.Restricted != s.want {
				t.Errorf("%s: stored restricted=%v (%v), want %v", s.path, sub.Restricted, err, s.want)
			}
		}
	})
}

// A calendar consent is revoked by revoking its connection (which stops
// the sync); the ledger alone cannot, and a consent can only name the
// subject's own connection.
func TestCalendarConsentRules(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		mine := e.seedConnection("cust-7", store.ProviderCalDAV, store.ConsentCalendarReadBusy)
		other := e.seedConnection("cust-8", store.ProviderCalDAV, store.ConsentCalendarReadBusy)
		before := e.countRows("consents")
		cases := []struct {
			name, purpose, decision, connection, field string
		}{
			{"calendar revoke through the ledger", store.ConsentCalendarReadBusy, "revoked", mine.ID, "decision"},
			{"calendar revoke without connection", store.ConsentCalendarWrite, "revoked", "", "decision"},
			{"another subject's connection", store.ConsentNotifySMS, "granted", other.ID, "connection_id"},
			{"unknown connection", store.ConsentCalendarReadBusy, "refused", "con_unknown", "connection_id"},
		}
		for _, c := range cases {
			body := consentRequestBody("cust-7", c.purpose, c.decision)
			if c.connection != "" {
				body["connection_id"] = c.connection
			}
			w := e.do("POST", "/v1/consents", e.token, mustJSON(t, body))
			if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), `"field":"`+c.field+`"`) {
				t.Errorf("%s: %d %s, want 422 on %s", c.name, w.Code, w.Body, c.field)
			}
		}
		if after := e.countRows("consents"); after != before {
			t.Errorf("%d consents stored by refused requests", after-before)
		}
		// Refusing, or granting, a calendar purpose on one's own connection is recorded.
		w := e.do("POST", "/v1/consents", e.token, mustJSON(t, with(consentRequestBody("cust-7", store.ConsentCalendarWrite, "refused"), "connection_id", mine.ID)))
		if w.Code != http.StatusCreated {
			t.Errorf("refusal on own connection: %d %s", w.Code, w.Body)
		}
	})
}
