package caldav_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/caldav/caldavtest"
)

func changeNames(cs []caldav.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	slices.Sort(out)
	return out
}

func TestSyncCollectionAgainstRadicale(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Office")
	c := caldav.NewClient(privateClient(), cal, "alice", "secret")
	ctx := testContext(t)

	r.PutEvent(t, "alice", cal, "lunch", userEvent("lunch@example.com"))
	r.PutEvent(t, "alice", cal, "dentist", userEvent("dentist@example.com"))
	if _, err := c.PutEvent(ctx, caldav.EventName("a1"), ourEvent("a1", "Check-up"), caldav.Condition{IfNoneMatch: true}); err != nil {
		t.Fatal(err)
	}

	// Initial: everything, with calendar data, in one answer.
	first, err := c.SyncCollection(ctx, "")
	if err != nil {
		t.Fatalf("initial sync: %v", err)
	}
	want := []string{"dentist.ics", "lunch.ics", caldav.EventName("a1")}
	slices.Sort(want)
	if got := changeNames(first.Changed); !slices.Equal(got, want) {
		t.Fatalf("initial sync lists %v, want %v", got, want)
	}
	for _, ch := range first.Changed {
		if ch.ETag == "" || !strings.Contains(string(ch.Data), "BEGIN:VEVENT") {
			t.Errorf("%s: etag %q, data %q: want both", ch.Name, ch.ETag, ch.Data)
		}
	}
	if len(first.Deleted) != 0 || first.Token == "" {
		t.Fatalf("initial sync: deleted %v, token %q", first.Deleted, first.Token)
	}

	// Nothing changed: nothing reported.
	same, err := c.SyncCollection(ctx, first.Token)
	if err != nil || len(same.Changed)+len(same.Deleted) != 0 {
		t.Fatalf("sync without changes: %+v, %v", same, err)
	}

	// One changed, one deleted, one new.
	r.PutEvent(t, "alice", cal, "lunch", strings.Replace(userEvent("lunch@example.com"), "Lunch with Sam", "Lunch with Kim", 1))
	r.DeleteEvent(t, "alice", cal, "dentist")
	r.PutEvent(t, "alice", cal, "gym", userEvent("gym@example.com"))
	next, err := c.SyncCollection(ctx, same.Token)
	if err != nil {
		t.Fatalf("incremental sync: %v", err)
	}
	if got := changeNames(next.Changed); !slices.Equal(got, []string{"gym.ics", "lunch.ics"}) {
		t.Errorf("changed %v, want gym.ics and lunch.ics", got)
	}
	if !slices.Equal(next.Deleted, []string{"dentist.ics"}) {
		t.Errorf("deleted %v, want dentist.ics", next.Deleted)
	}
	for _, ch := range next.Changed {
		if ch.Name == "lunch.ics" && !strings.Contains(string(ch.Data), "Lunch with Kim") {
			t.Errorf("changed lunch has old data:\n%s", ch.Data)
		}
	}

	// An unknown token: Radicale answers 403 valid-sync-token.
	_, err = c.SyncCollection(ctx, "http://radicale.org/ns/sync/garbage")
	wantKind(t, err, caldav.ErrSyncTokenInvalid)
	_, err = c.SyncCollection(ctx, "not even a URL")
	wantKind(t, err, caldav.ErrSyncTokenInvalid)

	// Multiget, List, CTag, GetEvent.
	objs, err := c.Multiget(ctx, []string{"lunch.ics", "gym.ics", "missing.ics"})
	if err != nil {
		t.Fatalf("multiget: %v", err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
		if o.ETag == "" || !strings.Contains(string(o.Data), "UID:"+strings.TrimSuffix(o.Name, ".ics")) {
			t.Errorf("multiget %s: etag %q data %q", o.Name, o.ETag, o.Data)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"gym.ics", "lunch.ics"}) {
		t.Errorf("multiget returned %v", names)
	}
	listed, err := c.List(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var lnames []string
	for _, l := range listed {
		lnames = append(lnames, l.Name)
		if l.ETag == "" {
			t.Errorf("list %s: no etag", l.Name)
		}
	}
	slices.Sort(lnames)
	if want := []string{"gym.ics", "lunch.ics", caldav.EventName("a1")}; !slices.Equal(lnames, want) {
		t.Errorf("list %v, want %v", lnames, want)
	}
	tag1, err := c.CTag(ctx)
	if err != nil || tag1 == "" {
		t.Fatalf("ctag %q, %v", tag1, err)
	}
	r.PutEvent(t, "alice", cal, "gym", strings.Replace(userEvent("gym@example.com"), "Lunch", "Gym", 1))
	tag2, err := c.CTag(ctx)
	if err != nil || tag2 == tag1 {
		t.Errorf("ctag after a change %q (was %q), %v", tag2, tag1, err)
	}
	obj, err := c.GetEvent(ctx, "gym.ics")
	if err != nil || obj.ETag == "" || !strings.Contains(string(obj.Data), "SUMMARY:Gym") {
		t.Errorf("get: %+v, %v", obj, err)
	}
	_, err = c.GetEvent(ctx, "missing.ics")
	wantKind(t, err, caldav.ErrEventNotFound)
	pc, err := caldav.ParseObject(obj.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got := caldav.ObjectUIDs(pc); !slices.Equal(got, []string{"gym@example.com"}) || caldav.ObjectMarker(pc) != "" {
		t.Errorf("uids %v marker %q", got, caldav.ObjectMarker(pc))
	}
	ours, _ := caldav.ParseObject(ourEvent("a1", "x"))
	if caldav.ObjectMarker(ours) != "a1" {
		t.Errorf("marker of our copy: %q", caldav.ObjectMarker(ours))
	}

	bad := caldav.NewClient(privateClient(), cal, "alice", "wrong")
	_, err = bad.SyncCollection(ctx, "")
	wantKind(t, err, caldav.ErrCredentialsRejected)
}

// Radicale never truncates a sync answer; a server that does is played
// here to check that SyncCollection follows the token until the end.
func TestSyncCollectionFollowsTruncation(t *testing.T) {
	t.Parallel()
	var rounds atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != "REPORT" || req.Header.Get("Depth") != "0" {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		n := rounds.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusMultiStatus)
		item := func(name, etag string) string {
			return fmt.Sprintf(`<D:response><D:href>/cal/%s</D:href><D:propstat><D:prop><D:getetag>%s</D:getetag></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>`, name, etag)
		}
		gone := func(name string) string {
			return fmt.Sprintf(`<D:response><D:href>/cal/%s</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>`, name)
		}
		trunc := `<D:response><D:href>/cal/</D:href><D:status>HTTP/1.1 507 Insufficient Storage</D:status></D:response>`
		switch n {
		case 1:
			fmt.Fprintf(w, `<D:multistatus xmlns:D="DAV:">%s%s%s<D:sync-token>t1</D:sync-token></D:multistatus>`, item("a.ics", `"1"`), item("b.ics", `"1"`), trunc)
		case 2:
			fmt.Fprintf(w, `<D:multistatus xmlns:D="DAV:">%s%s%s<D:sync-token>t2</D:sync-token></D:multistatus>`, gone("b.ics"), item("c.ics", `"1"`), trunc)
		default:
			fmt.Fprintf(w, `<D:multistatus xmlns:D="DAV:">%s%s<D:sync-token>t3</D:sync-token></D:multistatus>`, item("a.ics", `"2"`), gone("x.ics"))
		}
	}))
	defer srv.Close()
	c := caldav.NewClient(privateClient(), srv.URL+"/cal/", "", "")
	res, err := c.SyncCollection(testContext(t), "t0")
	if err != nil {
		t.Fatal(err)
	}
	if rounds.Load() != 3 || res.Token != "t3" {
		t.Fatalf("rounds %d token %q, want 3 and t3", rounds.Load(), res.Token)
	}
	if got := changeNames(res.Changed); !slices.Equal(got, []string{"a.ics", "c.ics"}) {
		t.Errorf("changed %v", got)
	}
	for _, ch := range res.Changed {
		if ch.Name == "a.ics" && ch.ETag != `"2"` {
			t.Errorf("a.ics etag %s, want the last one", ch.ETag)
		}
	}
	slices.Sort(res.Deleted)
	if !slices.Equal(res.Deleted, []string{"b.ics", "x.ics"}) {
		t.Errorf("deleted %v", res.Deleted)
	}
}
