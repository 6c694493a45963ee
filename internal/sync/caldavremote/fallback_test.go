package caldavremote_test

// The fallback for servers without RFC 6578: Radicale behind a proxy
// that refuses sync-collection the way such a server does, so the remote
// follows the calendar with its ctag, an ETag listing and
// calendar-multiget.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
)

// davRequest is one request the proxy saw.
type davRequest struct {
	Method string
	Depth  string
	Report string   // REPORT: local name of the body's root element
	Hrefs  []string // calendar-multiget: the resources asked for
}

func (r davRequest) String() string {
	s := r.Method + " depth " + r.Depth
	if r.Report != "" {
		s += " " + r.Report
	}
	if len(r.Hrefs) > 0 {
		s += fmt.Sprintf(" %v", r.Hrefs)
	}
	return s
}

// noSyncProxy passes everything to Radicale except sync-collection,
// which it refuses as a server without RFC 6578 does: 403 with the
// DAV:supported-report precondition (RFC 3253 3.6).
type noSyncProxy struct {
	t    *testing.T
	mu   gosync.Mutex
	seen []davRequest
}

func (p *noSyncProxy) start(radicale string) string {
	target, err := url.Parse(radicale)
	if err != nil {
		p.t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		dr := davRequest{Method: req.Method, Depth: req.Header.Get("Depth")}
		if req.Method == "REPORT" {
			var root struct {
				XMLName xml.Name
				Hrefs   []string `xml:"DAV: href"`
			}
			if err := xml.Unmarshal(body, &root); err != nil {
				p.t.Errorf("proxy: REPORT body: %v", err)
			}
			dr.Report, dr.Hrefs = root.XMLName.Local, root.Hrefs
		}
		p.mu.Lock()
		p.seen = append(p.seen, dr)
		p.mu.Unlock()
		if dr.Report == "sync-collection" {
			w.Header().Set("Content-Type", "application/xml; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?>`+
				`<D:error xmlns:D="DAV:"><D:supported-report/></D:error>`)
			return
		}
		rp.ServeHTTP(w, req)
	}))
	p.t.Cleanup(srv.Close)
	return srv.URL
}

// since returns what the proxy saw from request n on, and how many it
// saw in all.
func (p *noSyncProxy) since(n int) ([]davRequest, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen[n:]), len(p.seen)
}

func isCTagRead(r davRequest) bool { return r.Method == "PROPFIND" && r.Depth == "0" }
func isListing(r davRequest) bool  { return r.Method == "PROPFIND" && r.Depth == "1" }
func isMultiget(r davRequest) bool { return r.Method == "REPORT" && r.Report == "calendar-multiget" }

func TestPullWithoutSyncCollection(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		p := &noSyncProxy{t: t}
		e := newEnv(t, dialect, store.PrivacyBusy, p.start)
		lunch, gym := day(3, 12, 0), day(5, 18, 0)
		e.r.PutEvent(t, "alice", e.cal, "lunch", userEvent("lunch@example.com", lunch, lunch.Add(time.Hour), "Lunch with Sam", "Café Central"))
		e.r.PutEvent(t, "alice", e.cal, "gym", userEvent("gym@example.com", gym, gym.Add(time.Hour), "Gym", "Downtown"))

		// First pull: sync-collection refused, then ctag, listing and
		// one multiget of both objects.
		res := e.pull(false)
		if !res.Full || res.Imported != 2 || !strings.HasPrefix(res.Cursor, "ctag:") || res.Cursor == "ctag:" {
			t.Errorf("first pull: %+v, want full, 2 imported, a ctag: cursor", res)
		}
		got, n := p.since(0)
		if len(got) == 0 || got[0].Report != "sync-collection" {
			t.Errorf("first pull sent %v, want sync-collection first", got)
		}
		if !slices.ContainsFunc(got, isCTagRead) || !slices.ContainsFunc(got, isListing) ||
			slices.IndexFunc(got, isMultiget) < 0 || len(got[slices.IndexFunc(got, isMultiget)].Hrefs) != 2 {
			t.Errorf("first pull sent %v, want a ctag read, a listing and a multiget of 2", got)
		}
		e.wantBusy(iv(lunch, time.Hour), iv(gym, time.Hour))
		if c, err := e.s.GetConnectionByID(e.ctx, e.conn.ID); err != nil || c.SyncCursor != res.Cursor {
			t.Fatalf("stored cursor %q, %v; want %q", c.SyncCursor, err, res.Cursor)
		}

		// Nothing changed: the ctag read alone. The cursor says ctag, so
		// sync-collection is not tried again.
		if res := e.pull(false); res.Full || res.Imported != 0 || res.Removed != 0 {
			t.Errorf("pull without changes: %+v", res)
		}
		got, n = p.since(n)
		if len(got) != 1 || !isCTagRead(got[0]) {
			t.Errorf("pull without changes sent %v, want one PROPFIND depth 0", got)
		}

		// The user moves lunch: a listing, and a multiget of lunch only.
		moved := day(4, 15, 30)
		e.r.PutEvent(t, "alice", e.cal, "lunch", userEvent("lunch@example.com", moved, moved.Add(90*time.Minute), "Lunch with Sam", "Café Central"))
		if res := e.pull(false); res.Imported != 1 || res.Removed != 0 {
			t.Errorf("pull after a move: %+v, want 1 imported", res)
		}
		got, n = p.since(n)
		var multigets [][]string
		for _, r := range got {
			if isMultiget(r) {
				multigets = append(multigets, r.Hrefs)
			}
		}
		if len(got) == 0 || !isCTagRead(got[0]) || !slices.ContainsFunc(got, isListing) ||
			slices.ContainsFunc(got, func(r davRequest) bool { return r.Report == "sync-collection" }) {
			t.Errorf("pull after a move sent %v, want a ctag read and a listing", got)
		}
		if len(multigets) != 1 || len(multigets[0]) != 1 || !strings.HasSuffix(multigets[0][0], "/lunch.ics") {
			t.Errorf("pull after a move fetched %v, want lunch.ics alone", multigets)
		}
		e.wantBusy(iv(moved, 90*time.Minute), iv(gym, time.Hour))
		if c := e.count("external_events"); c != 2 {
			t.Errorf("%d imported events after the move, want 2", c)
		}

		// The user deletes lunch: it goes, gym stays, nothing fetched.
		e.r.DeleteEvent(t, "alice", e.cal, "lunch")
		if res := e.pull(false); res.Removed != 1 || res.Imported != 0 {
			t.Errorf("pull after a delete: %+v, want 1 removed", res)
		}
		got, _ = p.since(n)
		if !slices.ContainsFunc(got, isListing) || slices.ContainsFunc(got, func(r davRequest) bool { return isMultiget(r) && len(r.Hrefs) > 0 }) {
			t.Errorf("pull after a delete sent %v, want a listing and no multiget", got)
		}
		e.wantBusy(iv(gym, time.Hour))
		if c := e.count("links"); c != 1 {
			t.Errorf("%d links after the delete, want 1", c)
		}

		// The daily reconciliation: sync-collection refused again, the
		// whole calendar listed and fetched, nothing changes.
		if res := e.pull(true); !res.Full || res.Removed != 0 || res.Restored != 0 || !strings.HasPrefix(res.Cursor, "ctag:") {
			t.Errorf("full pull: %+v", res)
		}
		e.wantBusy(iv(gym, time.Hour))

		st, err := e.s.GetSyncStatus(e.ctx, e.conn.ID)
		if err != nil || st.LastError != "" || st.Attention != "" {
			t.Errorf("sync status %+v, %v", st, err)
		}
	})
}
