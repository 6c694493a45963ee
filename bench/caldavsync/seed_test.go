package caldavsync

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav/caldavtest"
)

// seedCalendar fills a fresh calendar of alice with n events by writing the
// .ics files straight into Radicale's storage folder (minutes instead of the
// ten a PUT per event takes), then asks once for the collection so that
// Radicale builds its caches before anything is timed. It returns the
// collection URL.
func seedCalendar(b *testing.B, rad *caldavtest.Radicale, name string, n int) string {
	b.Helper()
	calURL := rad.MakeCalendar(b, "alice", name)
	u, err := url.Parse(calURL)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(rad.Dir, "collections", "collection-root", filepath.FromSlash(strings.Trim(u.Path, "/")))
	if _, err := os.Stat(dir); err != nil {
		b.Fatalf("calendar storage folder: %v", err)
	}
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(8 * time.Hour)
	for i := range n {
		// All inside the sync window (30 days back, 365 ahead): twenty a
		// day, half an hour apart, from a week ago.
		at := start.AddDate(0, 0, i/20-7).Add(time.Duration(i%20) * 30 * time.Minute)
		ics := fmt.Sprintf("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//termind bench//EN\r\nBEGIN:VEVENT\r\n"+
			"UID:bench-%05d@example.org\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:%s\r\nDTEND:%s\r\n"+
			"SUMMARY:Termin %d\r\nLOCATION:Raum %d\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
			i, at.Format("20060102T150405Z"), at.Add(25*time.Minute).Format("20060102T150405Z"), i, i%7)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("bench-%05d.ics", i)), []byte(ics), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// Radicale parses every new file on this first listing, which takes
	// minutes for thousands: a client of our own with a long timeout.
	req, err := http.NewRequest("PROPFIND", calURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.SetBasicAuth("alice", rad.Users["alice"])
	req.Header.Set("Depth", "1")
	resp, err := (&http.Client{Timeout: 15 * time.Minute}).Do(req)
	if err != nil {
		b.Fatalf("warm-up PROPFIND: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMultiStatus || strings.Count(string(body), "bench-") < n {
		b.Fatalf("warm-up PROPFIND: %d, listing holds %d of %d events", resp.StatusCode, strings.Count(string(body), ".ics"), n)
	}
	return calURL
}

// timeCurlReport times the server's floor: one sync-collection REPORT
// with calendar-data, as curl sends it, answered in full.
func timeCurlReport(b *testing.B, rad *caldavtest.Radicale, calURL, token string) time.Duration {
	b.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		b.Fatal("curl is needed for the server-floor figure")
	}
	body := `<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">` +
		`<D:sync-token>` + token + `</D:sync-token><D:sync-level>1</D:sync-level>` +
		`<D:prop><D:getetag/><C:calendar-data/></D:prop></D:sync-collection>`
	cmd := exec.Command(curl, "-s", "-o", os.DevNull, "-w", "%{http_code}", "-u", "alice:"+rad.Users["alice"],
		"-X", "REPORT", "-H", "Depth: 1", "-H", "Content-Type: application/xml", "--data-binary", body, calURL)
	start := time.Now()
	out, err := cmd.Output()
	elapsed := time.Since(start)
	if err != nil || string(out) != "207" {
		b.Fatalf("curl REPORT: %v, status %s", err, out)
	}
	return elapsed
}

// vdirsyncer syncs the collection into a local filesystem storage, as the
// comparison the sync issue asks for. It returns the durations of the
// first (initial) and a second (no-change) `vdirsyncer sync`.
func vdirsyncerRuns(b *testing.B, rad *caldavtest.Radicale, calURL string) (initial, noChange time.Duration) {
	b.Helper()
	bin, err := exec.LookPath("vdirsyncer")
	if err != nil {
		b.Fatal("install the Debian package vdirsyncer for the comparison")
	}
	dir := b.TempDir()
	cfg := fmt.Sprintf(`[general]
status_path = %q

[pair bench]
a = "remote"
b = "local"
collections = null
conflict_resolution = "a wins"

[storage remote]
type = "caldav"
url = %q
username = "alice"
password = %q

[storage local]
type = "filesystem"
path = %q
fileext = ".ics"
`, filepath.Join(dir, "status"), calURL, rad.Users["alice"], filepath.Join(dir, "local"))
	cfgPath := filepath.Join(dir, "config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "local"), 0o700); err != nil {
		b.Fatal(err)
	}
	run := func(args ...string) time.Duration {
		cmd := exec.Command(bin, append([]string{"-c", cfgPath}, args...)...)
		cmd.Stdin = strings.NewReader("y\ny\n")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("vdirsyncer %v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}
	run("discover")
	initial = run("sync")
	files, _ := filepath.Glob(filepath.Join(dir, "local", "*.ics"))
	if len(files) == 0 {
		b.Fatal("vdirsyncer synced nothing")
	}
	noChange = run("sync")
	return initial, noChange
}
