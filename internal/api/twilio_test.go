package api

import (
	"cmp"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/termind/termind/connectors/sms"
	"github.com/termind/termind/internal/store"
)

// postTwilio posts a status callback to path, signed over signURL with
// signParams (nil: the posted params); sign=false sends no signature.
func (e *testEnv) postTwilio(path string, params url.Values, signURL string, signParams url.Values, sign bool) int {
	e.t.Helper()
	r := httptest.NewRequest("POST", path, strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signParams == nil {
		signParams = params
	}
	if sign {
		r.Header.Set("X-Twilio-Signature", sms.Sign(testTwilioToken, signURL, signParams))
	}
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r)
	return w.Code
}

func statusParams(sid, status, code string) url.Values {
	v := url.Values{
		"MessageSid":    {sid},
		"MessageStatus": {status},
		"AccountSid":    {"AC0000"},
		"To":            {"+4915112345678"},
	}
	if code != "" {
		v.Set("ErrorCode", code)
	}
	return v
}

func TestTwilioStatusCallback(t *testing.T) {
	t.Parallel()
	const path = "/webhooks/twilio/status"
	fullURL := testPublicURL + path
	cases := []struct {
		name       string
		status     string // MessageStatus
		code       string // ErrorCode
		path       string // default: path
		signURL    string // default: PublicURL + path
		tamper     func(url.Values) url.Values
		unsigned   bool
		unknownSID bool
		wantHTTP   int
		wantStatus string
		wantReason string
		optedOut   bool
	}{
		{name: "delivered", status: "delivered", wantHTTP: 204, wantStatus: store.StatusDelivered},
		{name: "undelivered", status: "undelivered", code: "30003", wantHTTP: 204, wantStatus: store.StatusUndelivered, wantReason: "twilio 30003"},
		{name: "failed", status: "failed", code: "30006", wantHTTP: 204, wantStatus: store.StatusUndelivered, wantReason: "twilio 30006"},
		{name: "opted out", status: "undelivered", code: "21610", wantHTTP: 204, wantStatus: store.StatusUndelivered, wantReason: "twilio 21610", optedOut: true},
		{name: "intermediate status", status: "sent", wantHTTP: 204, wantStatus: store.StatusSent},
		{name: "queued", status: "queued", wantHTTP: 204, wantStatus: store.StatusSent},
		{name: "query string is signed too", status: "delivered", path: path + "?source=eu", signURL: fullURL + "?source=eu", wantHTTP: 204, wantStatus: store.StatusDelivered},
		{name: "unknown sid", status: "delivered", unknownSID: true, wantHTTP: 204, wantStatus: store.StatusSent},
		{name: "missing signature", status: "delivered", unsigned: true, wantHTTP: 403, wantStatus: store.StatusSent},
		{name: "wrong URL signed", status: "delivered", signURL: "https://attacker.example.com" + path, wantHTTP: 403, wantStatus: store.StatusSent},
		{name: "query string not signed", status: "delivered", path: path + "?source=eu", wantHTTP: 403, wantStatus: store.StatusSent},
		{name: "tampered status", status: "delivered", tamper: func(v url.Values) url.Values {
			v.Set("MessageStatus", "undelivered")
			v.Set("ErrorCode", "21610")
			return v
		}, wantHTTP: 403, wantStatus: store.StatusSent},
		{name: "added param", status: "delivered", tamper: func(v url.Values) url.Values {
			v.Set("ErrorCode", "21610")
			return v
		}, wantHTTP: 403, wantStatus: store.StatusSent},
	}
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				subject := "cust-tw-" + string(rune('a'+i))
				req := smsRequest("tw-" + c.name)
				req["subject_id"] = subject
				id := e.createOK(mustJSON(t, req))
				sid := "SM" + strings.Repeat("0", 20) + string(rune('a'+i))
				e.markSent(id, sid)

				postSID := sid
				if c.unknownSID {
					postSID = "SMunknown"
				}
				signed := statusParams(postSID, c.status, c.code)
				posted := signed
				if c.tamper != nil {
					posted = c.tamper(statusParams(postSID, c.status, c.code))
				}
				p, signURL := cmp.Or(c.path, path), cmp.Or(c.signURL, fullURL)
				if got := e.postTwilio(p, posted, signURL, signed, !c.unsigned); got != c.wantHTTP {
					t.Fatalf("HTTP %d, want %d", got, c.wantHTTP)
				}
				n, err := e.store.GetNotification(e.ctx(), e.tenant.ID, id)
				if err != nil {
					t.Fatal(err)
				}
				if n.Status != c.wantStatus || n.StatusReason != c.wantReason {
					t.Errorf("status %q reason %q, want %q %q", n.Status, n.StatusReason, c.wantStatus, c.wantReason)
				}
				sub, err := e.store.GetSubject(e.ctx(), e.tenant.ID, subject)
				if err != nil {
					t.Fatal(err)
				}
				if sub.SMSOptedOut != c.optedOut {
					t.Errorf("sms opted out = %v, want %v", sub.SMSOptedOut, c.optedOut)
				}
			})
		}
		if logs := e.logs.String(); !strings.Contains(logs, "SMunknown") || strings.Contains(logs, "4915112345678") {
			t.Errorf("an unknown SID should be logged by sid alone:\n%s", logs)
		}
	})
}

func TestTwilioWebhookOffWithoutToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite, func(c *Config, _ *Deps) { c.TwilioAuthToken = "" })
	if got := e.postTwilio("/webhooks/twilio/status", statusParams("SM1", "delivered", ""), testPublicURL+"/webhooks/twilio/status", nil, true); got != 404 {
		t.Errorf("HTTP %d, want 404 when no Twilio token is configured", got)
	}
}
