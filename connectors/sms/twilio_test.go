package sms_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/sms"
	"github.com/termind/termind/connectors/sms/smstest"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "f00dfeedf00dfeedf00dfeedf00dfeed"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
	sender     = "+4930901820"
	recipient  = "+4915112345678"
)

// The method sets workers use to classify errors.
type (
	temporary  interface{ Temporary() bool }
	coded      interface{ Code() string }
	retryAfter interface{ RetryAfter() time.Duration }
)

func classification(t *testing.T, err error) (temp bool, code string, wait time.Duration) {
	t.Helper()
	var tmp temporary
	var c coded
	var ra retryAfter
	if err == nil {
		t.Fatal("got no error")
	}
	if !errors.As(err, &tmp) || !errors.As(err, &c) || !errors.As(err, &ra) {
		t.Fatalf("error %v (%T) lacks Temporary/Code/RetryAfter", err, err)
	}
	return tmp.Temporary(), c.Code(), ra.RetryAfter()
}

func newTwilio(t *testing.T, cfg sms.TwilioConfig) *sms.Twilio {
	t.Helper()
	if cfg.AccountSID == "" {
		cfg.AccountSID = accountSID
	}
	if cfg.AuthToken == "" {
		cfg.AuthToken = authToken
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" {
		cfg.From = sender
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	tw, err := sms.NewTwilio(cfg)
	if err != nil {
		t.Fatalf("NewTwilio: %v", err)
	}
	return tw
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func reminder() sms.Message {
	return sms.Message{ID: "ntf_1", To: recipient, Body: "Erinnerung: Ihr Termin morgen um 10:00 Uhr.", StatusCallback: "https://termind.example/webhooks/twilio/status?n=ntf_1"}
}

func TestTwilioSendsFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		cfg         sms.TwilioConfig
		callback    string
		wantFrom    string
		wantService string
	}{
		{"from number with callback", sms.TwilioConfig{From: sender}, "https://termind.example/webhooks/twilio/status", sender, ""},
		{"alphanumeric sender without callback", sms.TwilioConfig{From: "Praxis"}, "", "Praxis", ""},
		{"messaging service", sms.TwilioConfig{MessagingServiceSID: serviceSID}, "https://termind.example/cb", "", serviceSID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := smstest.Start(t, accountSID, authToken)
			tc.cfg.APIURL = fake.URL()
			tw := newTwilio(t, tc.cfg)
			m := reminder()
			m.StatusCallback = tc.callback
			sid, err := tw.Send(ctxT(t), m)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := fake.WaitFor(t, 1, 5*time.Second)[0]
			want := smstest.Received{SID: sid, To: recipient, From: tc.wantFrom, MessagingServiceSID: tc.wantService, Body: m.Body, StatusCallback: tc.callback}
			if got != want {
				t.Errorf("fake received %+v, want %+v", got, want)
			}
			if !strings.HasPrefix(sid, "SM") || len(sid) != 34 {
				t.Errorf("sid = %q, want SM + 32 hex", sid)
			}
		})
	}
}

func TestTwilioClassifiesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status   int
		code     int
		wantTemp bool
		wantCode string
	}{
		{400, 21211, false, "21211"}, // invalid To
		{400, 21408, false, "21408"}, // region not enabled
		{400, 21610, false, "21610"}, // opted out
		{400, 21612, false, "21612"}, // cannot route
		{400, 21614, false, "21614"}, // not a mobile number
		{400, 30006, false, "30006"}, // landline or unreachable carrier
		{400, 21602, false, "21602"}, // other 4xx: permanent
		{404, 20404, false, "20404"},
		{429, 20429, true, "20429"},
		{500, 20500, true, "20500"},
		{503, 20503, true, "20503"},
		{502, 0, true, "502"}, // non-JSON body from a proxy
		{503, 0, true, "503"},
		{400, 0, false, "400"},
	}
	fake := smstest.Start(t, accountSID, authToken)
	tw := newTwilio(t, sms.TwilioConfig{APIURL: fake.URL()})
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d_%d", tc.status, tc.code), func(t *testing.T) {
			// Sequential: failures are queued on the one fake.
			fake.FailNext(1, tc.status, tc.code, "failure under test")
			_, err := tw.Send(ctxT(t), reminder())
			temp, code, wait := classification(t, err)
			if temp != tc.wantTemp || code != tc.wantCode || wait != 0 {
				t.Errorf("Temporary, Code, RetryAfter = %v, %q, %v; want %v, %q, 0 (err %v)", temp, code, wait, tc.wantTemp, tc.wantCode, err)
			}
			var smsErr *sms.Error
			if !errors.As(err, &smsErr) || smsErr.Status != tc.status {
				t.Errorf("sms.Error status = %+v, want %d", smsErr, tc.status)
			}
			if strings.Contains(err.Error(), recipient) {
				t.Errorf("error text %q holds the phone number", err)
			}
		})
	}
	if n := len(fake.Messages()); n != 0 {
		t.Errorf("fake accepted %d messages, want 0", n)
	}
}

func TestTwilioFakeValidation(t *testing.T) {
	t.Parallel()
	fake := smstest.Start(t, accountSID, authToken)
	fake.OptOut("+4915199999999")
	tw := newTwilio(t, sms.TwilioConfig{APIURL: fake.URL()})
	tests := []struct {
		name     string
		edit     func(*sms.Message)
		wantCode string
	}{
		{"not E.164", func(m *sms.Message) { m.To = "015112345678" }, "21211"},
		{"opted out", func(m *sms.Message) { m.To = "+4915199999999" }, "21610"},
		{"body too long", func(m *sms.Message) { m.Body = strings.Repeat("x", 1601) }, "21617"},
		{"bad callback", func(m *sms.Message) { m.StatusCallback = "not a url" }, "21609"},
	}
	for _, tc := range tests {
		m := reminder()
		tc.edit(&m)
		_, err := tw.Send(ctxT(t), m)
		temp, code, _ := classification(t, err)
		if temp || code != tc.wantCode {
			t.Errorf("%s: Temporary, Code = %v, %q; want false, %q", tc.name, temp, code, tc.wantCode)
		}
	}
	// Empty fields never reach Twilio.
	_, err := tw.Send(ctxT(t), sms.Message{ID: "x", To: recipient})
	if temp, code, _ := classification(t, err); temp || code != "invalid" {
		t.Errorf("empty body: Temporary, Code = %v, %q; want false, invalid", temp, code)
	}
}

func TestTwilioRetryAfter(t *testing.T) {
	t.Parallel()
	fake := smstest.Start(t, accountSID, authToken)
	tw := newTwilio(t, sms.TwilioConfig{APIURL: fake.URL()})
	fake.FailNextRetryAfter(1, 3*time.Second)
	_, err := tw.Send(ctxT(t), reminder())
	temp, code, wait := classification(t, err)
	if !temp || code != "20429" || wait != 3*time.Second {
		t.Errorf("Temporary, Code, RetryAfter = %v, %q, %v; want true, 20429, 3s", temp, code, wait)
	}
	// The next attempt goes through.
	if _, err := tw.Send(ctxT(t), reminder()); err != nil {
		t.Fatalf("Send after 429: %v", err)
	}
	fake.WaitFor(t, 1, 5*time.Second)
}

func TestTwilioBadCredentials(t *testing.T) {
	t.Parallel()
	fake := smstest.Start(t, accountSID, authToken)
	tw := newTwilio(t, sms.TwilioConfig{APIURL: fake.URL(), AuthToken: "0000000000000000000000000000000"})
	_, err := tw.Send(ctxT(t), reminder())
	temp, code, _ := classification(t, err)
	if temp || code != "20003" {
		t.Errorf("Temporary, Code = %v, %q; want false, 20003", temp, code)
	}
	if strings.Contains(err.Error(), "0000000000") || strings.Contains(err.Error(), authToken) {
		t.Errorf("error text %q holds a token", err)
	}
}

func TestTwilioTransportFailures(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String()
	l.Close()

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	shortCtx := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	tests := []struct {
		name     string
		url      string
		timeout  time.Duration
		ctx      context.Context
		wantCode string
	}{
		{"refused", closedURL, 2 * time.Second, context.Background(), "network"},
		{"client timeout", slow.URL, 150 * time.Millisecond, context.Background(), "timeout"},
		{"context deadline", slow.URL, 30 * time.Second, shortCtx(), "timeout"},
		{"context cancelled", slow.URL, 30 * time.Second, cancelled, "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tw := newTwilio(t, sms.TwilioConfig{APIURL: tc.url, Timeout: tc.timeout})
			start := time.Now()
			_, err := tw.Send(tc.ctx, reminder())
			temp, code, _ := classification(t, err)
			if !temp || code != tc.wantCode {
				t.Errorf("Temporary, Code = %v, %q; want true, %q (err %v)", temp, code, tc.wantCode, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Send took %v", d)
			}
		})
	}
}

func TestNewTwilioValidates(t *testing.T) {
	t.Parallel()
	ok := sms.TwilioConfig{AccountSID: accountSID, AuthToken: authToken, From: sender}
	tests := []struct {
		name    string
		edit    func(*sms.TwilioConfig)
		wantErr string
	}{
		{"valid", func(*sms.TwilioConfig) {}, ""},
		{"valid service", func(c *sms.TwilioConfig) { c.From, c.MessagingServiceSID = "", serviceSID }, ""},
		{"valid api url", func(c *sms.TwilioConfig) { c.APIURL = "https://api.dublin.ie1.twilio.com" }, ""},
		{"no account", func(c *sms.TwilioConfig) { c.AccountSID = "" }, "TERMIND_TWILIO_ACCOUNT_SID"},
		{"bad account", func(c *sms.TwilioConfig) { c.AccountSID = "AC123" }, "TERMIND_TWILIO_ACCOUNT_SID"},
		{"no token", func(c *sms.TwilioConfig) { c.AuthToken = "" }, "TERMIND_TWILIO_AUTH_TOKEN"},
		{"neither sender", func(c *sms.TwilioConfig) { c.From = "" }, "TERMIND_TWILIO_FROM or TERMIND_TWILIO_MESSAGING_SERVICE_SID"},
		{"both senders", func(c *sms.TwilioConfig) { c.MessagingServiceSID = serviceSID }, "set only one"},
		{"bad from", func(c *sms.TwilioConfig) { c.From = "0301234" }, "TERMIND_TWILIO_FROM"},
		{"bad service", func(c *sms.TwilioConfig) { c.From, c.MessagingServiceSID = "", "MG1" }, "TERMIND_TWILIO_MESSAGING_SERVICE_SID"},
		{"api url path", func(c *sms.TwilioConfig) { c.APIURL = "http://127.0.0.1:1/x" }, "TERMIND_TWILIO_API_URL"},
		{"api url scheme", func(c *sms.TwilioConfig) { c.APIURL = "ftp://127.0.0.1" }, "TERMIND_TWILIO_API_URL"},
	}
	for _, tc := range tests {
		cfg := ok
		tc.edit(&cfg)
		_, err := sms.NewTwilio(cfg)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), authToken) {
			t.Errorf("%s: error shows the token", tc.name)
		}
	}
}

func BenchmarkTwilioSend(b *testing.B) {
	fake := smstest.Start(b, accountSID, authToken)
	tw, err := sms.NewTwilio(sms.TwilioConfig{AccountSID: accountSID, AuthToken: authToken, From: sender, APIURL: fake.URL()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	m := reminder()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := tw.Send(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
