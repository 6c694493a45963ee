package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
)

func TestCLISyncWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rad := caldavtest.StartRadicale(t)
	calURL := rad.MakeCalendar(t, "alice", "Praxis")
	at := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Hour)
	rad.PutEvent(t, "alice", calURL, "yoga", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"+
		"UID:yoga@example\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:"+at.Format("20060102T150405Z")+
		"\r\nDTEND:"+at.Add(time.Hour).Format("20060102T150405Z")+"\r\nSUMMARY:Yoga\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

	db := filepath.Join(t.TempDir(), "termind.db")
	key := hex.EncodeToString(bytes.Repeat([]byte{3}, secrets.KeySize))
	env := map[string]string{"TERMIND_DATABASE_URL": db, "TERMIND_LOG_LEVEL": "warn", "TERMIND_SECRET_KEY": key, "TERMIND_CALDAV_ALLOW_PRIVATE": "true"}
	code, out, _ := runCLI(t, env, "tenant", "create", "Praxis")
	if code != 0 {
		t.Fatalf("tenant create: exit %d", code)
	}
	tenantID := strings.Fields(out)[1]
	s := openTestStore(t, db, key)
	conn, err := s.CreateConnection(ctx, store.Connection{TenantID: tenantID, SubjectID: "anna", Provider: store.ProviderCalDAV,
		CalendarURL: calURL, Privacy: store.PrivacyBusy, Direction: store.DirectionImport},
		[]byte(`{"username":"alice","password":"`+rad.Users["alice"]+`"}`),
		[]store.Consent{{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"}},
		store.AuditEntry{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	code, out, errOut := runCLI(t, env, "sync", conn.ID, "--wait")
	if code != 0 || !strings.Contains(out, "imported 1,") || !strings.Contains(errOut, "syncing "+conn.ID) {
		t.Fatalf("sync --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	s = openTestStore(t, db, key)
	defer s.Close()
	busy, err := s.BusyIntervals(ctx, tenantID, "anna", at.Add(-time.Hour), at.Add(2*time.Hour))
	if err != nil || len(busy) != 1 || !busy[0].Start.Equal(at) {
		t.Fatalf("busy after sync: %+v %v", busy, err)
	}
	if code, _, errOut := runCLI(t, env, "sync", "con_unknown", "--wait"); code != 1 || !strings.Contains(errOut, "con_unknown") {
		t.Fatalf("sync of an unknown connection: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, env, "sync"); code != 2 || !strings.Contains(errOut, "sync CONNECTION") {
		t.Fatalf("sync without id: exit %d, %q", code, errOut)
	}
}
