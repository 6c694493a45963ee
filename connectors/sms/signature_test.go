package sms_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	twclient "github.com/twilio/twilio-go/client"

	"github.com/termind/termind/connectors/sms"
	"github.com/termind/termind/connectors/sms/smstest"
)

func TestSignKnownVectors(t *testing.T) {
	t.Parallel()
	const docsURL = "https://mycompany.com/myapp.php?foo=1&bar=2"
	call := func(caller string) url.Values {
		return url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {caller}, "Digits": {"1234"}, "From": {caller}, "To": {"+18005551212"}}
	}
	twilioGo := call("+14158675309")
	twilioGo.Set("ReasonConferenceEnded", "test")
	twilioGo.Set("Reason", "Participant")
	tests := []struct {
		name   string
		params url.Values
		want   string
	}{
		// Twilio's documentation snippets (security/signature_validation).
		{"docs php", call("+14158675310"), "GvWf1cFY/Q7PnoempGyD5oXAezc="},
		{"docs node", call("+14158675309"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
		// twilio-go's own test vector: key order puts Reason before ReasonConferenceEnded.
		{"twilio-go", twilioGo, "vOEb5UThFn24KEfnOFLQY2AE5FY="},
	}
	for _, tc := range tests {
		if got := sms.Sign("12345", docsURL, tc.params); got != tc.want {
			t.Errorf("%s: Sign = %q, want %q", tc.name, got, tc.want)
		}
		if !sms.ValidSignature("12345", docsURL, tc.params, tc.want) {
			t.Errorf("%s: ValidSignature rejected the documented signature", tc.name)
		}
	}
}

func TestValidSignatureAgreesWithTwilioGo(t *testing.T) {
	t.Parallel()
	validator := twclient.NewRequestValidator(authToken)
	urls := []string{
		"https://termind.example/webhooks/twilio/status",
		"https://termind.example:8443/webhooks/twilio/status?n=ntf_1&x=%20y",
		"http://127.0.0.1:8080/webhooks/twilio/status",
		"https://termind.example:443/cb",
	}
	params := []url.Values{
		{},
		{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}},
		{"Body": {"Grüße & Küsse = 100%"}, "To": {"+4915112345678"}, "a": {""}},
	}
	for _, u := range urls {
		for _, p := range params {
			sig := sms.Sign(authToken, u, p)
			single := map[string]string{}
			for k := range p {
				single[k] = p.Get(k)
			}
			if !validator.Validate(u, single, sig) {
				t.Errorf("twilio-go rejects our signature for %s %v", u, p)
			}
			if !sms.ValidSignature(authToken, u, p, sig) {
				t.Errorf("ValidSignature rejects its own signature for %s %v", u, p)
			}
			// Twilio signs some URLs with and some without the port; both pass.
			for _, variant := range []string{strings.Replace(u, ":8443", "", 1), strings.Replace(u, "termind.example/", "termind.example:443/", 1)} {
				vsig := sms.Sign(authToken, variant, p)
				if got, want := sms.ValidSignature(authToken, u, p, vsig), validator.Validate(u, single, vsig); got != want {
					t.Errorf("ValidSignature(%s) with signature of %s = %v, twilio-go says %v", u, variant, got, want)
				}
			}
		}
	}
}

func TestValidSignatureRejectsTampering(t *testing.T) {
	t.Parallel()
	const u = "https://termind.example/webhooks/twilio/status?n=ntf_1"
	params := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+4915112345678"}}
	sig := sms.Sign(authToken, u, params)
	tamperedParams := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"failed"}, "To": {"+4915112345678"}}
	extraParam := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+4915112345678"}, "ErrorCode": {"30006"}}
	tests := []struct {
		name   string
		token  string
		url    string
		params url.Values
		sig    string
	}{
		{"changed value", authToken, u, tamperedParams, sig},
		{"added param", authToken, u, extraParam, sig},
		{"other path", authToken, "https://termind.example/webhooks/twilio/other?n=ntf_1", params, sig},
		{"other query", authToken, "https://termind.example/webhooks/twilio/status?n=ntf_2", params, sig},
		{"other host", authToken, "https://evil.example/webhooks/twilio/status?n=ntf_1", params, sig},
		{"other scheme", authToken, "http://termind.example/webhooks/twilio/status?n=ntf_1", params, sig},
		{"other token", "0123456789abcdef0123456789abcdef", u, params, sig},
		{"empty signature", authToken, u, params, ""},
		{"empty token", "", u, params, sig},
		{"truncated signature", authToken, u, params, sig[:len(sig)-2]},
	}
	for _, tc := range tests {
		if sms.ValidSignature(tc.token, tc.url, tc.params, tc.sig) {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// A status callback from the fake passes ValidSignature as termind's
// webhook would check it: full URL as posted plus the parsed form.
func TestStatusCallbackSignature(t *testing.T) {
	t.Parallel()
	type callback struct {
		form  url.Values
		valid bool
	}
	var mu sync.Mutex
	var got []callback
	var hook *httptest.Server
	hook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fullURL := hook.URL + r.URL.RequestURI()
		ok := sms.ValidSignature(authToken, fullURL, r.PostForm, r.Header.Get("X-Twilio-Signature"))
		mu.Lock()
		got = append(got, callback{form: r.PostForm, valid: ok})
		mu.Unlock()
		if !ok {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	fake := smstest.Start(t, accountSID, authToken)
	tw := newTwilio(t, sms.TwilioConfig{APIURL: fake.URL()})
	m := reminder()
	m.StatusCallback = hook.URL + "/webhooks/twilio/status?n=ntf_1"
	sid, err := tw.Send(ctxT(t), m)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := fake.SendStatus(ctxT(t), sid, "delivered", 0); err != nil {
		t.Fatalf("SendStatus delivered: %v", err)
	}
	if err := fake.SendStatus(ctxT(t), sid, "undelivered", 30006); err != nil {
		t.Fatalf("SendStatus undelivered: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("callbacks = %d, want 2", len(got))
	}
	for i, want := range []struct {
		status, errorCode string
	}{{"delivered", ""}, {"undelivered", "30006"}} {
		f := got[i].form
		if !got[i].valid {
			t.Errorf("callback %d: signature rejected", i)
		}
		checks := map[string]string{
			"MessageSid": sid, "SmsSid": sid, "MessageStatus": want.status, "SmsStatus": want.status,
			"AccountSid": accountSID, "To": recipient, "From": sender, "ApiVersion": "2010-04-01", "ErrorCode": want.errorCode,
		}
		for k, v := range checks {
			if f.Get(k) != v {
				t.Errorf("callback %d: %s = %q, want %q", i, k, f.Get(k), v)
			}
		}
	}
	// Nothing is signed for a message that does not exist.
	if err := fake.SendStatus(ctxT(t), "SMdoesnotexist", "delivered", 0); err == nil {
		t.Error("SendStatus for an unknown sid succeeded")
	}
}

// The fake's fetch endpoint returns what create stored.
func TestFakeFetchesMessage(t *testing.T) {
	t.Parallel()
	fake := smstest.Start(t, accountSID, authToken)
	tw := newTwilio(t, sms.TwilioConfig{APIURL: fake.URL(), MessagingServiceSID: serviceSID})
	sid, err := tw.Send(ctxT(t), reminder())
	if err != nil {
		t.Fatal(err)
	}
	get := func(account, token, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, fake.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(account, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	path := fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s.json", accountSID, sid)
	status, body := get(accountSID, authToken, path)
	if status != http.StatusOK || !strings.Contains(body, `"sid":"`+sid+`"`) || !strings.Contains(body, `"status":"accepted"`) {
		t.Errorf("fetch = %d %s", status, body)
	}
	if status, body := get(accountSID, "wrong", path); status != http.StatusUnauthorized || !strings.Contains(body, `"code":20003`) {
		t.Errorf("fetch with a wrong token = %d %s, want 401 with 20003", status, body)
	}
	other := strings.Replace(path, accountSID, "AC"+strings.Repeat("f", 32), 1)
	if status, body := get(accountSID, authToken, other); status != http.StatusNotFound || !strings.Contains(body, `"code":20404`) {
		t.Errorf("fetch for another account = %d %s, want 404 with 20404", status, body)
	}
}
