package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
)

func TestCLIRetentionAndHolds(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "termind.db")
	env := map[string]string{"TERMIND_DATABASE_URL": db, "TERMIND_LOG_LEVEL": "warn"}
	code, out, _ := runCLI(t, env, "tenant", "create", "Praxis")
	if code != 0 {
		t.Fatalf("tenant create: exit %d", code)
	}
	tenantID := strings.Fields(out)[1]

	code, out, _ = runCLI(t, env, "tenant", "retention", tenantID)
	if code != 0 || !strings.Contains(out, "notifications       30 days") || !strings.Contains(out, "inactive-subjects   1825 days") ||
		!strings.Contains(out, "inactivity-action   erase") {
		t.Fatalf("show: exit %d\n%s", code, out)
	}

	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--audit", "10d"}, "--audit: must be a whole number of days from 30 to 3650"},
		{[]string{"--notifications", "30"}, "--notifications: must be a number of days such as 30d"},
		{[]string{"--broken-connections", "2y"}, "--broken-connections: must be a whole number of days from 1 to 365"},
		{[]string{"--inactivity-action", "shred"}, "--inactivity-action: must be erase or anonymise"},
	} {
		code, _, stderr := runCLI(t, env, append([]string{"tenant", "retention", tenantID}, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.wantErr) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.args, code, stderr, tc.wantErr)
		}
	}

	code, out, stderr := runCLI(t, env, "tenant", "retention", tenantID, "--notifications", "7d", "--audit", "400d",
		"--inactive-subjects", "3y", "--inactivity-action", "anonymise")
	if code != 0 || !strings.Contains(out, "audit               400 days") || !strings.Contains(out, "inactive-subjects   1095 days") {
		t.Fatalf("set: exit %d, %q\n%s", code, stderr, out)
	}

	s, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	p, err := s.GetRetentionPolicy(ctx, tenantID)
	if err != nil || p.Notifications != 7*store.Day || p.Audit != 400*store.Day || p.InactivityAction != store.InactivityAnonymise {
		t.Errorf("stored policy %+v, %v", p, err)
	}
	entries, err := s.ListAudit(ctx, tenantID, "")
	if err != nil || len(entries) != 1 || entries[0].Action != "retention.update" || entries[0].Actor != "cli" {
		t.Errorf("audit after the CLI change: %+v, %v", entries, err)
	}

	if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tenantID, SubjectID: "cust-9", Purpose: store.ConsentNotifyEmail,
		Decision: store.DecisionGranted}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(30 * store.Day).UTC().Format(time.DateOnly)
	if code, _, stderr := runCLI(t, env, "hold", "add", "--tenant", tenantID, "--subject", "cust-9", "--reason", " ", "--until", until); code != 1 ||
		!strings.Contains(stderr, "--reason: must be 1 to 500 characters") {
		t.Errorf("hold add without reason: exit %d, %q", code, stderr)
	}
	code, out, stderr = runCLI(t, env, "hold", "add", "--tenant", tenantID, "--subject", "cust-9", "--reason", "court case", "--until", until)
	if code != 0 || !strings.HasPrefix(out, "hold hld_") {
		t.Fatalf("hold add: exit %d, %q %q", code, out, stderr)
	}
	holdID := strings.Fields(out)[1]

	code, _, stderr = runCLI(t, env, "subject", "erase", "cust-9", "--tenant", tenantID)
	if code != 1 || !strings.Contains(stderr, holdID) || !strings.Contains(stderr, "nothing was erased") {
		t.Errorf("erase under hold: exit %d, %q", code, stderr)
	}
	if _, err := s.GetSubject(ctx, tenantID, "cust-9"); err != nil {
		t.Errorf("held subject after the refused erasure: %v", err)
	}
	code, out, _ = runCLI(t, env, "hold", "list", "--tenant", tenantID)
	if code != 0 || !strings.Contains(out, holdID) || !strings.Contains(out, "active") || !strings.Contains(out, "court case") {
		t.Errorf("hold list: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI(t, env, "purge"); code != 0 || !strings.Contains(out, "held by legal holds") {
		t.Errorf("purge: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, env, "hold", "release", holdID, "--tenant", tenantID)
	if code != 0 || !strings.Contains(out, "released") {
		t.Errorf("hold release: exit %d, %q", code, out)
	}
	if code, _, stderr := runCLI(t, env, "subject", "erase", "cust-9", "--tenant", tenantID); code != 0 {
		t.Errorf("erase after the release: exit %d, %q", code, stderr)
	}
}
