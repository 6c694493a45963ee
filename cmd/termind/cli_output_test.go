package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
)

// TestCLIProgressAndJSON: long operations report a line per step on
// stderr and give their result as JSON on stdout with --output json.
func TestCLIProgressAndJSON(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rad := caldavtest.StartRadicale(t)
	calURL := rad.MakeCalendar(t, "alice", "Praxis")
	db := filepath.Join(t.TempDir(), "termind.db")
	k1 := hex.EncodeToString(bytes.Repeat([]byte{4}, secrets.KeySize))
	k2 := hex.EncodeToString(bytes.Repeat([]byte{5}, secrets.KeySize))
	env := map[string]string{"TERMIND_DATABASE_URL": db, "TERMIND_LOG_LEVEL": "warn", "TERMIND_SECRET_KEY": k1, "TERMIND_CALDAV_ALLOW_PRIVATE": "true"}
	code, out, _ := runCLI(t, env, "tenant", "create", "Praxis")
	if code != 0 {
		t.Fatalf("tenant create: exit %d", code)
	}
	tenantID := strings.Fields(out)[1]

	// Three notifications whose retention ended, and one connection.
	s := openTestStore(t, db, k1)
	past := time.Now().Add(-48 * time.Hour)
	for i := range 3 {
		res, err := s.CreateNotifications(ctx, []store.Notification{{TenantID: tenantID, SubjectID: "anna",
			IdempotencyKey: fmt.Sprintf("old-%d", i), RequestHash: "h", Purpose: store.PurposeTransactional,
			Channel: store.ChannelEmail, Recipient: "anna@example.org", Locale: "de", Template: "confirmation",
			Data: json.RawMessage(`{}`), SendAt: past}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().ExecContext(ctx, "UPDATE notifications SET expires_at = ? WHERE id = ?", past.UnixMilli(), res[0].Notification.ID); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := s.CreateConnection(ctx, store.Connection{TenantID: tenantID, SubjectID: "anna", Provider: store.ProviderCalDAV,
		CalendarURL: calURL, Privacy: store.PrivacyBusy, Direction: store.DirectionImport},
		[]byte(`{"username":"alice","password":"`+rad.Users["alice"]+`"}`),
		[]store.Consent{{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"}},
		store.AuditEntry{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	t.Run("purge", func(t *testing.T) {
		code, out, errOut := runCLI(t, env, "purge", "--output", "json")
		var rep struct {
			DryRun        bool  `json:"dry_run"`
			Notifications int64 `json:"notifications"`
			Batches       int   `json:"batches"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Notifications != 3 || rep.Batches != 1 || rep.DryRun {
			t.Fatalf("purge --output json: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		for _, line := range []string{"purge: batch 1: 3 notifications deleted so far\n", "expired audit entries deleted\n", "expired OAuth states deleted\n"} {
			if !strings.Contains(errOut, line) {
				t.Errorf("stderr %q lacks the progress line %q", errOut, line)
			}
		}
	})

	t.Run("sync --wait", func(t *testing.T) {
		code, out, errOut := runCLI(t, env, "sync", conn.ID, "--wait", "--full", "--output", "json")
		var res struct {
			ConnectionID string `json:"connection_id"`
			Full         bool   `json:"full"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.ConnectionID != conn.ID || !res.Full {
			t.Fatalf("sync --wait --output json: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if first, last := lines[0], lines[len(lines)-1]; first != "syncing "+conn.ID+" (full): started" ||
			!strings.HasPrefix(last, "syncing "+conn.ID+" (full): finished in ") || strings.Contains(errOut, "\r") {
			t.Fatalf("stderr %q: want a started line, then a finished line, no carriage returns", errOut)
		}
	})

	t.Run("secrets rotate", func(t *testing.T) {
		rotEnv := map[string]string{"TERMIND_DATABASE_URL": db, "TERMIND_LOG_LEVEL": "warn", "TERMIND_SECRET_KEY": k2, "TERMIND_SECRET_KEYS_OLD": k1}
		code, out, errOut := runCLI(t, rotEnv, "secrets", "rotate")
		if code != 0 || !strings.Contains(out, "1 values re-encrypted") ||
			!strings.Contains(errOut, "secrets rotate: batch 1: 1 values re-encrypted so far\n") {
			t.Fatalf("secrets rotate: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("connections list --output json", func(t *testing.T) {
		code, out, _ := runCLI(t, env, "connections", "list", "--tenant", tenantID, "--output", "json")
		var list struct{ Items []connectionLine }
		if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Items) != 1 || list.Items[0].ID != conn.ID || list.Items[0].LastSyncAt == "" {
			t.Fatalf("connections list --output json: exit %d, %q", code, out)
		}
	})

	t.Run("bad --output", func(t *testing.T) {
		for _, args := range [][]string{{"purge", "--output", "yaml"}, {"sync", conn.ID, "--wait", "--output", "xml"}, {"connections", "list", "--tenant", tenantID, "--output", "csv"}} {
			if code, _, errOut := runCLI(t, env, args...); code != 2 || !strings.Contains(errOut, "--output must be text or json") {
				t.Errorf("%v: exit %d, %q", args, code, errOut)
			}
		}
	})
}

// TestCLIConfigErrorsNameTheVariable: a wrong setting stops the command
// with the variable's name and the rule, before anything runs.
func TestCLIConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"smtp url", map[string]string{"TERMIND_SMTP_URL": "https://mail.example.org"}, "TERMIND_SMTP_URL: scheme must be smtp"},
		{"twilio sid", map[string]string{"TERMIND_TWILIO_ACCOUNT_SID": "nope", "TERMIND_TWILIO_AUTH_TOKEN": "t0k3n", "TERMIND_TWILIO_FROM": "+4915100000000"},
			"TERMIND_TWILIO_ACCOUNT_SID: must be AC followed by 32 hex digits"},
		{"metrics listen", map[string]string{"TERMIND_METRICS_LISTEN": "9090"}, "TERMIND_METRICS_LISTEN: must be host:port"},
		{"redis url", map[string]string{"TERMIND_REDIS_URL": "http://redis.example"}, "TERMIND_REDIS_URL:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"TERMIND_DATABASE_URL": filepath.Join(t.TempDir(), "termind.db"), "TERMIND_LOG_LEVEL": "error",
				"TERMIND_DELIVERIES_DIR": t.TempDir()}
			for k, v := range c.env {
				env[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			code := run(ctx, []string{"serve", "--listen", "127.0.0.1:0"}, &stdout, &stderr, lookup)
			if code != 1 || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("serve: exit %d, stderr %q; want exit 1 naming %q", code, stderr.String(), c.want)
			}
		})
	}
}
