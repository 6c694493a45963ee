package caldavtest

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func event(uid, summary string) string {
	return strings.ReplaceAll(fmt.Sprintf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//termind//caldavtest//EN
BEGIN:VEVENT
UID:%s
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000Z
DTEND:20260105T110000Z
SUMMARY:%s
END:VEVENT
END:VCALENDAR
`, uid, summary), "\n", "\r\n")
}

var syncTokenRE = regexp.MustCompile(`<sync-token>([^<]+)</sync-token>`)

func syncCollection(t *testing.T, r *Radicale, user, cal, token string) (int, string) {
	t.Helper()
	body := `<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:"><D:sync-token>` + token + `</D:sync-token>` +
		`<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>`
	status, _, resp := r.Do(t, user, "REPORT", cal, http.Header{"Content-Type": {"application/xml"}, "Depth": {"0"}}, body)
	return status, resp
}

// TestRadicaleSyncCollection pins down how Radicale 3.1.8 answers RFC 6578
// sync-collection, which incremental pulls rely on.
func TestRadicaleSyncCollection(t *testing.T) {
	t.Parallel()
	r := StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Work & Life")
	if want := r.URL + "alice/work-life/"; cal != want {
		t.Fatalf("MakeCalendar = %q, want %q", cal, want)
	}

	status, resp := syncCollection(t, r, "alice", cal, "")
	if status != http.StatusMultiStatus {
		t.Fatalf("initial sync-collection: %d %s", status, resp)
	}
	m := syncTokenRE.FindStringSubmatch(resp)
	if m == nil {
		t.Fatalf("initial sync-collection has no sync-token: %s", resp)
	}
	first := m[1]

	etag := r.PutEvent(t, "alice", "/alice/work-life/", "ev-1", event("ev-1", "Dentist"))
	if etag == "" {
		t.Fatal("PutEvent returned no ETag")
	}
	status, resp = syncCollection(t, r, "alice", cal, first)
	if status != http.StatusMultiStatus || !strings.Contains(resp, "/alice/work-life/ev-1.ics") || !strings.Contains(resp, etag) {
		t.Fatalf("sync-collection after PUT: %d %s", status, resp)
	}

	r.DeleteEvent(t, "alice", cal, "ev-1")
	status, resp = syncCollection(t, r, "alice", cal, first)
	if status != http.StatusMultiStatus || !strings.Contains(resp, "/alice/work-life/ev-1.ics") || !strings.Contains(resp, "404 Not Found") {
		t.Fatalf("sync-collection after DELETE should report the member as 404: %d %s", status, resp)
	}

	// An unknown token is refused with the RFC 6578 precondition, which
	// tells the client to start over with a full sync.
	status, resp = syncCollection(t, r, "alice", cal, "http://radicale.org/ns/sync/unknown")
	if status != http.StatusForbidden || !strings.Contains(resp, "valid-sync-token") {
		t.Fatalf("sync-collection with unknown token: %d %s", status, resp)
	}
}

func TestRadicaleOwnerOnlyAndAuth(t *testing.T) {
	t.Parallel()
	r := StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Office")
	if status, _, _ := r.Do(t, "bob", "PROPFIND", cal, http.Header{"Depth": {"0"}}, ""); status != http.StatusForbidden {
		t.Errorf("bob reading alice's calendar: status %d, want 403", status)
	}
	if status, _, _ := r.Do(t, "", "PROPFIND", cal, http.Header{"Depth": {"0"}}, ""); status != http.StatusUnauthorized {
		t.Errorf("anonymous PROPFIND: status %d, want 401", status)
	}
}

func TestRadicaleStopStart(t *testing.T) {
	t.Parallel()
	r := StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Office")
	r.PutEvent(t, "alice", cal, "ev-1", event("ev-1", "Dentist"))

	r.Stop()
	if _, err := http.Get(r.URL); err == nil {
		t.Fatal("Radicale still answers after Stop")
	}
	r.Stop() // a second Stop does nothing

	r.Start()
	status, _, body := r.Do(t, "alice", http.MethodGet, r.EventURL(t, cal, "ev-1"), nil, "")
	if status != http.StatusOK || !strings.Contains(body, "SUMMARY:Dentist") {
		t.Fatalf("event after restart: %d %q", status, body)
	}
}
