package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(FromMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.DatabaseURL != DefaultDatabaseURL || c.RedisURL != "" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.PublicURL != "http://"+DefaultListen {
		t.Fatalf("PublicURL = %q, want derived from listen address", c.PublicURL)
	}
	if !c.EmbeddedQueue() || c.SMSConfigured() {
		t.Fatalf("embedded defaults expected: %+v", c)
	}
	if c.KeyFile != "termind.key" || c.CalDAVAllowPrivate || c.GoogleConfigured() {
		t.Fatalf("key file %q, caldav private %v, google %v", c.KeyFile, c.CalDAVAllowPrivate, c.GoogleConfigured())
	}
	if c.SweepInterval != 30*time.Second || c.PurgeInterval != time.Hour || c.SendLease != 5*time.Minute {
		t.Fatalf("intervals: %v %v, lease %v", c.SweepInterval, c.PurgeInterval, c.SendLease)
	}
	c, err = Load(FromMap(map[string]string{"TERMIND_SEND_LEASE": "20s"}))
	if err != nil || c.SendLease != 20*time.Second {
		t.Fatalf("TERMIND_SEND_LEASE=20s: lease %v, err %v", c.SendLease, err)
	}
	if c.HTTPReadHeaderTimeout != 5*time.Second || c.HTTPReadTimeout != 30*time.Second ||
		c.HTTPWriteTimeout != 30*time.Second || c.HTTPIdleTimeout != 2*time.Minute {
		t.Fatalf("HTTP timeouts: %v %v %v %v", c.HTTPReadHeaderTimeout, c.HTTPReadTimeout, c.HTTPWriteTimeout, c.HTTPIdleTimeout)
	}
}

func TestLoadSecretFromFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(FromMap(map[string]string{
		"TERMIND_TWILIO_ACCOUNT_SID":     "AC123",
		"TERMIND_TWILIO_AUTH_TOKEN_FILE": path,
		"TERMIND_TWILIO_FROM":            "+4915100000000",
		"TERMIND_PUBLIC_URL":             "https://termind.example/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.TwilioAuthToken != "s3cret" {
		t.Fatalf("auth token from file = %q", c.TwilioAuthToken)
	}
	if c.PublicURL != "https://termind.example" {
		t.Fatalf("PublicURL = %q, want trailing slash trimmed", c.PublicURL)
	}
}

func TestKeyFileBesideTheDatabase(t *testing.T) {
	t.Parallel()
	for db, want := range map[string]string{
		"/var/lib/termind/termind.db":   "/var/lib/termind/termind.key",
		"sqlite:data/t.db":              "data/termind.key",
		"postgres://u@db/termind":       "termind.key",
		"postgresql://u@db/termind?x=y": "termind.key",
	} {
		c, err := Load(FromMap(map[string]string{"TERMIND_DATABASE_URL": db}))
		if err != nil || c.KeyFile != want {
			t.Errorf("%s: key file %q (%v), want %q", db, c.KeyFile, err, want)
		}
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad concurrency", map[string]string{"TERMIND_WORKER_CONCURRENCY": "zero"}, "TERMIND_WORKER_CONCURRENCY: must be a positive integer"},
		{"negative concurrency", map[string]string{"TERMIND_WORKER_CONCURRENCY": "-1"}, "TERMIND_WORKER_CONCURRENCY: must be a positive integer"},
		{"bad duration", map[string]string{"TERMIND_SWEEP_INTERVAL": "soon"}, "TERMIND_SWEEP_INTERVAL: must be a positive Go duration"},
		{"zero read header timeout", map[string]string{"TERMIND_HTTP_READ_HEADER_TIMEOUT": "0s"}, "TERMIND_HTTP_READ_HEADER_TIMEOUT: must be a positive Go duration"},
		{"bad idle timeout", map[string]string{"TERMIND_HTTP_IDLE_TIMEOUT": "forever"}, "TERMIND_HTTP_IDLE_TIMEOUT: must be a positive Go duration"},
		{"bad listen", map[string]string{"TERMIND_LISTEN": "8080"}, "TERMIND_LISTEN: must be host:port"},
		{"bad public url", map[string]string{"TERMIND_PUBLIC_URL": "ftp://x"}, "TERMIND_PUBLIC_URL: must be an absolute http(s) URL"},
		{"bad log level", map[string]string{"TERMIND_LOG_LEVEL": "loud"}, "TERMIND_LOG_LEVEL: must be one of"},
		{"secret twice", map[string]string{"TERMIND_SMTP_URL": "smtp://a", "TERMIND_SMTP_URL_FILE": "/x"}, "TERMIND_SMTP_URL and TERMIND_SMTP_URL_FILE: set only one"},
		{"missing secret file", map[string]string{"TERMIND_SMTP_URL_FILE": "/nonexistent/termind"}, "TERMIND_SMTP_URL_FILE:"},
		{"twilio without token", map[string]string{"TERMIND_TWILIO_ACCOUNT_SID": "AC1", "TERMIND_TWILIO_FROM": "+491510000000"}, "TERMIND_TWILIO_AUTH_TOKEN: both are required"},
		{"bad bool", map[string]string{"TERMIND_CALDAV_ALLOW_PRIVATE": "sometimes"}, "TERMIND_CALDAV_ALLOW_PRIVATE: must be true or false"},
		{"google half configured", map[string]string{"TERMIND_GOOGLE_CLIENT_ID": "id"}, "TERMIND_GOOGLE_CLIENT_SECRET: set both or neither"},
		{"bad metrics listen", map[string]string{"TERMIND_METRICS_LISTEN": "9090"}, "TERMIND_METRICS_LISTEN: must be host:port"},
		{"metrics token twice", map[string]string{"TERMIND_METRICS_TOKEN": "a", "TERMIND_METRICS_TOKEN_FILE": "/x"}, "TERMIND_METRICS_TOKEN and TERMIND_METRICS_TOKEN_FILE: set only one"},
		{"twilio from and service", map[string]string{"TERMIND_TWILIO_ACCOUNT_SID": "AC1", "TERMIND_TWILIO_AUTH_TOKEN": "t", "TERMIND_TWILIO_FROM": "+491510000000", "TERMIND_TWILIO_MESSAGING_SERVICE_SID": "MG1"}, "exactly one must be set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(FromMap(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
