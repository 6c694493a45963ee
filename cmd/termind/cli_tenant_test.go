package main

import (
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/termind/termind/internal/processing"
	"github.com/termind/termind/internal/store"
)

func TestCLITenantOffboardAndRecords(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "termind.db")
	env := map[string]string{"TERMIND_DATABASE_URL": db, "TERMIND_LOG_LEVEL": "warn"}
	code, out, _ := runCLI(t, env, "tenant", "create", "Praxis Weber")
	if code != 0 {
		t.Fatalf("tenant create: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	adminKey, tenantID := lines[len(lines)-1], strings.Fields(lines[0])[1]
	s, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no tenant", []string{"tenant", "offboard"}, 2, "tenant offboard ID"},
		{"bad grace", []string{"tenant", "offboard", tenantID, "--grace", "2w"}, 2, "--grace must be whole days"},
		{"grace too long", []string{"tenant", "offboard", tenantID, "--grace", "400d"}, 2, "--grace must be whole days"},
		{"cancel without offboarding", []string{"tenant", "offboard", tenantID, "--cancel"}, 1, "is not being offboarded"},
		{"offboard", []string{"tenant", "offboard", tenantID, "--grace", "2d"}, 0, "0 connections being revoked, 0 notifications cancelled, 1 API keys suspended"},
		{"offboard twice", []string{"tenant", "offboard", tenantID}, 1, "already being offboarded"},
		{"cancel", []string{"tenant", "offboard", "--cancel", tenantID}, 0, "cancelled"},
		{"records bad format", []string{"tenant", "records", tenantID, "--format", "pdf"}, 2, "--format must be json or markdown"},
		{"records unknown tenant", []string{"tenant", "records", "tnt_nope"}, 1, "tenant tnt_nope"},
	} {
		code, stdout, stderr := runCLI(t, env, tc.args...)
		if code != tc.wantCode || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("%s: exit %d, output %q %q; want exit %d with %q", tc.name, code, stdout, stderr, tc.wantCode, tc.want)
		}
		if tc.name == "offboard" {
			if k, err := s.LookupAPIKey(ctx, adminKey); err != nil || !k.Suspended {
				t.Errorf("key after offboard: %+v, %v", k, err)
			}
			if o, err := s.GetOffboarding(ctx, tenantID); err != nil || o.PurgeAt.Sub(o.RequestedAt).Hours() != 48 {
				t.Errorf("offboarding: %+v, %v", o, err)
			}
		}
	}
	if k, err := s.LookupAPIKey(ctx, adminKey); err != nil || k.Suspended {
		t.Errorf("key after cancel: %+v, %v", k, err)
	}

	// Adding SMS to the configuration adds Twilio to the records.
	code, md, _ := runCLI(t, env, "tenant", "records", tenantID)
	if code != 0 || !strings.Contains(md, "# Records of processing activities") || strings.Contains(md, "Twilio") {
		t.Errorf("records without SMS: exit %d\n%s", code, md)
	}
	withSMS := maps.Clone(env)
	maps.Copy(withSMS, map[string]string{"TERMIND_TWILIO_ACCOUNT_SID": "AC0123", "TERMIND_TWILIO_AUTH_TOKEN": "secret",
		"TERMIND_TWILIO_FROM": "+4930123456"})
	code, js, stderr := runCLI(t, withSMS, "tenant", "records", tenantID, "--format", "json")
	var rec processing.Records
	if err := json.Unmarshal([]byte(js), &rec); code != 0 || err != nil {
		t.Fatalf("records json: exit %d, %v\n%s%s", code, err, js, stderr)
	}
	found := false
	for _, a := range rec.Activities {
		for _, r := range a.Recipients {
			if a.ID == "notify.sms" && r.Name == "Twilio Inc." && r.ThirdCountry && a.ThirdCountryTransfer {
				found = true
			}
		}
	}
	if !found || rec.Controller != "Praxis Weber" {
		t.Errorf("records with SMS = %+v", rec)
	}
}
