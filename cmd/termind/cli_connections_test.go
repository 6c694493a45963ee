package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
)

// TestCLIConnectionsAndRights drives connections list|revoke, secrets
// rotate and subject export|erase against a SQLite file, and reads the raw
// database files to prove that no credential is stored in plaintext.
func TestCLIConnectionsAndRights(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "termind.db")
	k1 := hex.EncodeToString(bytes.Repeat([]byte{1}, secrets.KeySize))
	k2 := hex.EncodeToString(bytes.Repeat([]byte{2}, secrets.KeySize))
	env := map[string]string{"TERMIND_DATABASE_URL": db, "TERMIND_LOG_LEVEL": "warn", "TERMIND_SECRET_KEY": k1}

	code, out, _ := runCLI(t, env, "tenant", "create", "Praxis")
	if code != 0 {
		t.Fatalf("tenant create: exit %d", code)
	}
	tenantID := strings.Fields(out)[1]

	const password = "correct-horse-battery-staple"
	s := openTestStore(t, db, k1)
	conn, err := s.CreateConnection(ctx, store.Connection{TenantID: tenantID, SubjectID: "anna", Provider: store.ProviderCalDAV,
		CalendarURL: "https://dav.example/anna/office/", Privacy: store.PrivacyBusy, Direction: store.DirectionBoth},
		[]byte(`{"username":"anna","password":"`+password+`"}`),
		[]store.Consent{
			{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
			{Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
		}, store.AuditEntry{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	assertNotInFiles(t, dir, password)

	// Rotation: K2 becomes current, K1 stays readable until everything is re-encrypted.
	rotEnv := map[string]string{"TERMIND_DATABASE_URL": db, "TERMIND_LOG_LEVEL": "warn", "TERMIND_SECRET_KEY": k2, "TERMIND_SECRET_KEYS_OLD": k1}
	if code, out, errOut := runCLI(t, rotEnv, "secrets", "rotate"); code != 0 || !strings.Contains(out, "1 values re-encrypted") {
		t.Fatalf("secrets rotate: exit %d, %q, %q", code, out, errOut)
	}
	s = openTestStore(t, db, k2) // the new key alone
	creds, err := s.ConnectionCredentials(ctx, conn.ID)
	if err != nil || !strings.Contains(string(creds), password) {
		t.Fatalf("credentials after rotation under the new key only: %v", err)
	}
	s.Close()
	assertNotInFiles(t, dir, password)
	env["TERMIND_SECRET_KEY"] = k2

	code, out, _ = runCLI(t, env, "connections", "list", "--tenant", tenantID, "--output", "json")
	var listed struct {
		Items []connectionLine `json:"items"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Items) != 1 || listed.Items[0].ID != conn.ID || listed.Items[0].State != "active" {
		t.Fatalf("connections list: exit %d, %q", code, out)
	}
	if strings.Contains(out, password) {
		t.Fatal("connections list shows the password")
	}
	if code, out, _ = runCLI(t, env, "connections", "list", "--tenant", tenantID); code != 0 || !strings.Contains(out, conn.ID) {
		t.Fatalf("connections list (text): exit %d, %q", code, out)
	}

	if code, _, errOut := runCLI(t, env, "connections", "revoke", conn.ID, "--tenant", tenantID); code != 2 || !strings.Contains(errOut, "--reason is required") {
		t.Fatalf("revoke without reason: exit %d, %q", code, errOut)
	}
	if code, out, _ = runCLI(t, env, "connections", "revoke", conn.ID, "--tenant", tenantID, "--reason", "customer asked by phone"); code != 0 || !strings.Contains(out, "is revoking") {
		t.Fatalf("revoke: exit %d, %q", code, out)
	}

	code, out, _ = runCLI(t, env, "subject", "export", "anna", "--tenant", tenantID)
	var doc struct {
		Subject     struct{ ID string }          `json:"subject"`
		Consents    []struct{ Decision string }  `json:"consents"`
		Connections []struct{ ID, State string } `json:"connections"`
		Audit       []struct{ Action string }    `json:"audit"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("subject export: exit %d, %q", code, out)
	}
	if doc.Subject.ID != "anna" || len(doc.Connections) != 1 || doc.Connections[0].State != "revoking" || len(doc.Consents) != 4 || len(doc.Audit) == 0 {
		t.Fatalf("export = %+v, want the subject, one revoking connection, two grants and two revocations, and the audit trail", doc)
	}
	if strings.Contains(out, password) {
		t.Fatal("export contains the connection password")
	}

	if code, out, _ = runCLI(t, env, "subject", "erase", "anna", "--tenant", tenantID); code != 0 || !strings.Contains(out, "subject erased") {
		t.Fatalf("subject erase: exit %d, %q", code, out)
	}
	s = openTestStore(t, db, k2)
	defer s.Close()
	// The connection row stays until the calendar cleanup (the daemon's
	// calendar:revoke) has removed our copies; then nothing is left.
	if err := s.FinishRevocation(ctx, conn.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExportSubject(ctx, tenantID, "anna"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("export after erasure: %v, want ErrNotFound", err)
	}
	if code, _, errOut := runCLI(t, env, "subject", "export", "anna"); code != 2 || !strings.Contains(errOut, "--tenant is required") {
		t.Fatalf("export without tenant: exit %d, %q", code, errOut)
	}
}

func openTestStore(t *testing.T, path, hexKey string) *store.Store {
	t.Helper()
	key, err := secrets.ParseKey(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.UseSealer(k)
	return s
}

// assertNotInFiles reads every file of the database (main file, WAL and
// shared memory) byte by byte.
func assertNotInFiles(t *testing.T, dir, secret string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "termind.db*"))
	if len(files) == 0 {
		t.Fatal("no database files found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s contains the plaintext secret", filepath.Base(f))
		}
	}
}
