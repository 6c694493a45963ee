package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/termind/termind/internal/store"
)

// runCLI runs one command in-process against a SQLite file of the test.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = run(context.Background(), args, &out, &errOut, lookup)
	return code, out.String(), errOut.String()
}

func TestCLI(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "termind.db")
	env := map[string]string{"TERMIND_DATABASE_URL": db, "TERMIND_LOG_LEVEL": "warn"}

	code, out, _ := runCLI(t, env, "tenant", "create", "Praxis", "Dr.", "Weber")
	if code != 0 {
		t.Fatalf("tenant create: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	adminKey := lines[len(lines)-1]
	if !strings.HasPrefix(adminKey, "tmd_") {
		t.Fatalf("last line %q is not an API key", adminKey)
	}
	tenantID := strings.Fields(lines[0])[1]

	s, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, err := s.LookupAPIKey(context.Background(), adminKey)
	if err != nil || k.TenantID != tenantID || k.Role != store.RoleAdmin {
		t.Fatalf("printed key: %+v %v, want an admin key of %s", k, err, tenantID)
	}
	tn, err := s.GetTenant(context.Background(), tenantID)
	if err != nil || tn.Name != "Praxis Dr. Weber" {
		t.Fatalf("tenant %+v %v", tn, err)
	}

	code, out, _ = runCLI(t, env, "apikey", "create", "--tenant", tenantID, "--role", "ingest")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 {
		t.Fatalf("apikey create: exit %d", code)
	}
	if k, err := s.LookupAPIKey(context.Background(), lines[len(lines)-1]); err != nil || k.Role != store.RoleIngest {
		t.Fatalf("ingest key: %+v %v", k, err)
	}

	cases := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no command", env, nil, 2, "Usage:"},
		{"unknown command", env, []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"tenant without name", env, []string{"tenant", "create"}, 2, "NAME is required"},
		{"apikey without tenant", env, []string{"apikey", "create"}, 2, "--tenant is required"},
		{"apikey bad role", env, []string{"apikey", "create", "--tenant", tenantID, "--role", "boss"}, 2, "--role must be ingest or admin"},
		{"apikey unknown tenant", env, []string{"apikey", "create", "--tenant", "tnt_nope"}, 1, "--tenant tnt_nope"},
		{"bad roles", env, []string{"serve", "--roles", "api,cook"}, 2, `unknown role "cook"`},
		{"bad config", map[string]string{"TERMIND_DATABASE_URL": db, "TERMIND_WORKER_CONCURRENCY": "lots"}, []string{"migrate"}, 1, "TERMIND_WORKER_CONCURRENCY: must be a positive integer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.env, c.args...)
			if code != c.wantCode || !strings.Contains(stderr, c.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d containing %q", code, stderr, c.wantCode, c.wantErr)
			}
		})
	}

	if code, out, _ := runCLI(t, env, "purge", "--dry-run"); code != 0 || !strings.Contains(out, "would delete 0 expired notifications") {
		t.Fatalf("purge --dry-run: exit %d, %q", code, out)
	}
	if code, out, _ := runCLI(t, env, "version"); code != 0 || !strings.HasPrefix(out, "termind ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}
