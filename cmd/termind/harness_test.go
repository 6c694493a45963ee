package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/termind/termind/connectors/mail/mailtest"
	"github.com/termind/termind/connectors/sms/smstest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/queue/queuetest"
)

const (
	testTwilioSID   = "AC00000000000000000000000000000001"
	testTwilioToken = "0123456789abcdef0123456789abcdef"
	testTwilioFrom  = "+15005550006"
)

// stack is a running termind (api, worker, scheduler) wired to real peers:
// a store on the given dialect, a real Redis database of its own, an
// in-process SMTP server and the Twilio fake.
type stack struct {
	t      testing.TB
	cfg    config.Config
	store  *store.Store
	smtp   *mailtest.Server
	twilio *smstest.Server
	url    string // base URL of the API
	token  string // admin API key of tenant
	tenant store.Tenant
	daemon *daemon
	keys   *secrets.Keyring
	logs   io.Writer // where the daemons log (JSON, debug); nil: discarded
}

type stackOption func(*config.Config)

func newStack(t testing.TB, dialect string, opts ...stackOption) *stack {
	t.Helper()
	return newStackLogging(t, dialect, nil, opts...)
}

// newStackLogging is newStack with every daemon's log written to logs as
// JSON at debug level, for tests that inspect what gets logged.
func newStackLogging(t testing.TB, dialect string, logs io.Writer, opts ...stackOption) *stack {
	t.Helper()
	st := &stack{t: t, logs: logs}
	st.store = storetest.New(t, dialect)
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st.keys = keys
	st.store.UseSealer(keys)
	st.smtp = mailtest.Start(t)
	st.twilio = smstest.Start(t, testTwilioSID, testTwilioToken)
	st.tenant, st.token = storetest.NewTenant(t, st.store)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.url = "http://" + ln.Addr().String()
	cfg, err := config.Load(config.FromMap(map[string]string{
		"TERMIND_LISTEN":             ln.Addr().String(),
		"TERMIND_REDIS_URL":          queuetest.RedisURL(t),
		"TERMIND_SMTP_URL":           st.smtp.URL(),
		"TERMIND_MAIL_FROM":          "Praxis Test <termine@praxis.example>",
		"TERMIND_TWILIO_ACCOUNT_SID": testTwilioSID,
		"TERMIND_TWILIO_AUTH_TOKEN":  testTwilioToken,
		"TERMIND_TWILIO_FROM":        testTwilioFrom,
		"TERMIND_TWILIO_API_URL":     st.twilio.URL(),
		"TERMIND_SWEEP_INTERVAL":     "200ms",
		"TERMIND_RETRY_BASE":         "50ms",
		"TERMIND_RETRY_MAX":          "200ms",
		"TERMIND_DELIVERIES_DIR":     t.TempDir(),
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(&cfg)
	}
	st.cfg = cfg
	st.daemon = st.start(ln, allRoles)
	return st
}

// start runs one more termind process (in-process) on the stack's peers.
func (st *stack) start(ln net.Listener, roles []string) *daemon {
	st.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := discardLogger()
	if st.logs != nil {
		logger = slog.New(slog.NewJSONHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := assembleDaemon(ctx, st.cfg, logger, st.store, st.keys)
	if err != nil {
		cancel()
		st.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.run(ctx, ln, roles) }()
	st.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				st.t.Errorf("daemon: %v", err)
			}
		case <-time.After(20 * time.Second):
			st.t.Error("daemon did not stop within 20s")
		}
		d.close()
	})
	if ln != nil {
		waitFor(st.t, 5*time.Second, "API up", func() bool {
			resp, err := http.Get(st.url + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	return d
}

// do sends a JSON request with the stack's admin key and decodes the answer.
func (st *stack) do(method, path string, body any, out any) int {
	st.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			st.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, st.url+path, r)
	if err != nil {
		st.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+st.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		st.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			st.t.Fatalf("%s %s: decode %d answer: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

type notificationView struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	StatusReason string `json:"status_reason"`
	Attempts     []struct {
		Outcome    string `json:"outcome"`
		ProviderID string `json:"provider_id"`
		ErrorCode  string `json:"error_code"`
	} `json:"attempts"`
}

func (st *stack) notification(id string) notificationView {
	st.t.Helper()
	var v notificationView
	if code := st.do("GET", "/v1/notifications/"+id, nil, &v); code != http.StatusOK {
		st.t.Fatalf("GET notification %s: %d", id, code)
	}
	return v
}

// waitStatus polls until the notification reaches status (or fails the test).
func (st *stack) waitStatus(id, status string) notificationView {
	st.t.Helper()
	var v notificationView
	waitFor(st.t, 45*time.Second, "notification "+id+" to become "+status, func() bool {
		v = st.notification(id)
		return v.Status == status
	})
	return v
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// confirmationData is a complete data set for the default templates.
func confirmationData() map[string]any {
	return map[string]any{
		"customer_name": "Jürgen Müller",
		"provider_name": "Praxis Dr. Weber",
		"service":       "Erstgespräch",
		"start":         "2026-12-01T09:30:00Z",
		"end":           "2026-12-01T10:00:00Z",
		"time_zone":     "Europe/Berlin",
		"location":      "Hauptstraße 1, Berlin",
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
