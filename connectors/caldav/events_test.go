package caldav_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/caldav/caldavtest"
)

// ourEvent is an appointment copy as the sync writes it: our UID and marker.
func ourEvent(appointmentID, summary string) []byte {
	return []byte(strings.Join([]string{
		"BEGIN:VCALENDAR",
		"VERSION:2.0",
		"PRODID:-//termind//test//EN",
		"BEGIN:VEVENT",
		"UID:" + caldav.EventUID(appointmentID),
		"DTSTAMP:20260101T090000Z",
		"DTSTART:20260105T090000Z",
		"DTEND:20260105T100000Z",
		"SUMMARY:" + summary,
		caldav.MarkerProperty + ":" + appointmentID,
		"END:VEVENT",
		"END:VCALENDAR",
		"",
	}, "\r\n"))
}

// userEvent is an event the user made in their own calendar app.
func userEvent(uid string) string {
	return strings.Join([]string{
		"BEGIN:VCALENDAR",
		"VERSION:2.0",
		"PRODID:-//Example Corp.//Calendar//EN",
		"BEGIN:VEVENT",
		"UID:" + uid,
		"DTSTAMP:20260101T090000Z",
		"DTSTART:20260106T120000Z",
		"DTEND:20260106T130000Z",
		"SUMMARY:Lunch with Sam",
		"END:VEVENT",
		"END:VCALENDAR",
		"",
	}, "\r\n")
}

// status GETs a URL on r as user and returns the status code.
func status(t *testing.T, r *caldavtest.Radicale, user, u string) int {
	t.Helper()
	code, _, _ := r.Do(t, user, http.MethodGet, u, nil, "")
	return code
}

func TestPutEventConditions(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Office")
	c := caldav.NewClient(privateClient(), cal, "alice", "secret")
	ctx := testContext(t)
	name := caldav.EventName("a1")

	etag, err := c.PutEvent(ctx, name, ourEvent("a1", "Check-up"), caldav.Condition{IfNoneMatch: true})
	if err != nil || etag == "" {
		t.Fatalf("create: etag %q, %v", etag, err)
	}
	_, err = c.PutEvent(ctx, name, ourEvent("a1", "Check-up"), caldav.Condition{IfNoneMatch: true})
	wantKind(t, err, caldav.ErrPreconditionFailed, "412")

	etag2, err := c.PutEvent(ctx, name, ourEvent("a1", "Check-up moved"), caldav.Condition{IfMatch: etag})
	if err != nil || etag2 == "" || etag2 == etag {
		t.Fatalf("update with the current ETag: etag %q (was %q), %v", etag2, etag, err)
	}
	_, err = c.PutEvent(ctx, name, ourEvent("a1", "Check-up stale"), caldav.Condition{IfMatch: etag})
	wantKind(t, err, caldav.ErrPreconditionFailed)
	_, _, body := r.Do(t, "alice", http.MethodGet, cal+name, nil, "")
	if !strings.Contains(body, "Check-up moved") {
		t.Errorf("a write with a stale ETag changed the event:\n%s", body)
	}

	// Unconditional writes replace.
	if _, err := c.PutEvent(ctx, name, ourEvent("a1", "Check-up again"), caldav.Condition{}); err != nil {
		t.Fatalf("unconditional put: %v", err)
	}
	if _, err := c.PutEvent(ctx, name, nil, caldav.Condition{IfMatch: "x", IfNoneMatch: true}); err == nil {
		t.Error("If-Match together with If-None-Match was accepted")
	}
}

func TestDeleteEvent(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Office")
	c := caldav.NewClient(privateClient(), cal, "alice", "secret")
	ctx := testContext(t)
	name := caldav.EventName("a2")

	etag, err := c.PutEvent(ctx, name, ourEvent("a2", "Consultation"), caldav.Condition{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	err = c.DeleteEvent(ctx, name, `"not-the-etag"`)
	wantKind(t, err, caldav.ErrPreconditionFailed)
	if got := status(t, r, "alice", cal+name); got != http.StatusOK {
		t.Fatalf("after a delete with the wrong ETag: GET = %d, want 200", got)
	}
	if err := c.DeleteEvent(ctx, name, etag); err != nil {
		t.Fatalf("delete with the current ETag: %v", err)
	}
	if got := status(t, r, "alice", cal+name); got != http.StatusNotFound {
		t.Fatalf("after delete: GET = %d, want 404", got)
	}
	if err := c.DeleteEvent(ctx, name, ""); err != nil {
		t.Errorf("deleting a missing event: %v, want nil", err)
	}
	if err := c.DeleteEvent(ctx, "../other.ics", ""); err == nil {
		t.Error("a name with a slash was accepted")
	}
}

func TestClientErrorKinds(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Office")
	ctx := testContext(t)
	name := caldav.EventName("a3")

	wrong := caldav.NewClient(privateClient(), cal, "alice", "wrong")
	_, err := wrong.PutEvent(ctx, name, ourEvent("a3", "x"), caldav.Condition{})
	wantKind(t, err, caldav.ErrCredentialsRejected)
	_, err = wrong.OurCopies(ctx)
	wantKind(t, err, caldav.ErrCredentialsRejected)
	wantKind(t, wrong.DeleteEvent(ctx, name, ""), caldav.ErrCredentialsRejected)

	// bob may not write into alice's calendar.
	bob := caldav.NewClient(privateClient(), cal, "bob", "hunter2")
	_, err = bob.PutEvent(ctx, name, ourEvent("a3", "x"), caldav.Condition{})
	wantKind(t, err, caldav.ErrCredentialsRejected)

	gone := caldav.NewClient(privateClient(), r.URL+"alice/deleted/", "alice", "secret")
	_, err = gone.PutEvent(ctx, name, ourEvent("a3", "x"), caldav.Condition{})
	wantKind(t, err, caldav.ErrCalendarNotFound)

	alice := caldav.NewClient(privateClient(), cal, "alice", "secret")
	_, err = alice.PutEvent(ctx, name, []byte("not iCalendar"), caldav.Condition{})
	wantKind(t, err, caldav.ErrRefused)

	// The address rules of the HTTP client apply.
	strict := caldav.NewClient(caldav.NewHTTPClient(caldav.Options{AllowHTTP: true}), cal, "alice", "secret")
	_, err = strict.OurCopies(ctx)
	wantKind(t, err, caldav.ErrForbiddenAddress)

	if _, err := caldav.NewClient(nil, cal, "alice", "secret").OurCopies(ctx); err == nil {
		t.Error("a nil HTTP client was accepted")
	}
	_, err = caldav.NewClient(privateClient(), "ftp://example.org/", "alice", "secret").OurCopies(ctx)
	wantKind(t, err, caldav.ErrInvalidURL)

	r.Stop()
	_, err = alice.PutEvent(ctx, name, ourEvent("a3", "x"), caldav.Condition{})
	wantKind(t, err, caldav.ErrUnreachable, "connection refused")
	_, err = alice.RemoveOurCopies(ctx)
	wantKind(t, err, caldav.ErrUnreachable)
}

func TestOurCopies(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Office")
	other := r.MakeCalendar(t, "alice", "Private")
	c := caldav.NewClient(privateClient(), cal, "alice", "secret")
	ctx := testContext(t)

	empty, err := c.OurCopies(ctx)
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty calendar: %v, %v", empty, err)
	}

	etags := map[string]string{}
	for _, id := range []string{"a1", "a2", "a3"} {
		etag, err := c.PutEvent(ctx, caldav.EventName(id), ourEvent(id, "Appointment "+id), caldav.Condition{IfNoneMatch: true})
		if err != nil {
			t.Fatal(err)
		}
		etags[id] = etag
	}
	r.PutEvent(t, "alice", cal, "lunch", userEvent("lunch@example.com"))
	// A user's event whose name looks like ours but has no marker is theirs.
	r.PutEvent(t, "alice", cal, "termind-lookalike", userEvent("lookalike@example.com"))
	// Our marker in another calendar is not listed for this one.
	r.PutEvent(t, "alice", other, "termind-a9", string(ourEvent("a9", "elsewhere")))

	got, err := c.OurCopies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b caldav.Resource) int { return strings.Compare(a.Name, b.Name) })
	if len(got) != 3 {
		t.Fatalf("our copies = %+v, want a1, a2, a3", got)
	}
	for i, id := range []string{"a1", "a2", "a3"} {
		res := got[i]
		if res.Name != caldav.EventName(id) || res.AppointmentID != id || res.ETag != etags[id] ||
			!strings.HasSuffix(res.Href, "/alice/office/"+caldav.EventName(id)) {
			t.Errorf("copy %d = %+v, want name %s, id %s, etag %s", i, res, caldav.EventName(id), id, etags[id])
		}
	}

	removed, err := c.RemoveOurCopies(ctx)
	if err != nil || removed != 3 {
		t.Fatalf("remove: %d, %v; want 3", removed, err)
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		if got := status(t, r, "alice", cal+caldav.EventName(id)); got != http.StatusNotFound {
			t.Errorf("%s after removal: GET = %d, want 404", id, got)
		}
	}
	for _, u := range []string{r.EventURL(t, cal, "lunch"), r.EventURL(t, cal, "termind-lookalike"), r.EventURL(t, other, "termind-a9")} {
		if got := status(t, r, "alice", u); got != http.StatusOK {
			t.Errorf("%s after removal: GET = %d, want 200 (not ours to remove)", u, got)
		}
	}
	if removed, err := c.RemoveOurCopies(ctx); err != nil || removed != 0 {
		t.Errorf("second removal: %d, %v; want 0, nil", removed, err)
	}
}

// Many copies, and the calendar URL without its trailing slash.
func TestRemoveOurCopiesMany(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	cal := r.MakeCalendar(t, "alice", "Office")
	c := caldav.NewClient(privateClient(), strings.TrimSuffix(cal, "/"), "alice", "secret")
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	const n = 25
	for i := range n {
		id := fmt.Sprintf("m%02d", i)
		if _, err := c.PutEvent(ctx, caldav.EventName(id), ourEvent(id, "x"), caldav.Condition{IfNoneMatch: true}); err != nil {
			t.Fatal(err)
		}
	}
	r.PutEvent(t, "alice", cal, "mine", userEvent("mine@example.com"))
	removed, err := c.RemoveOurCopies(ctx)
	if err != nil || removed != n {
		t.Fatalf("remove: %d, %v; want %d", removed, err, n)
	}
	if got := status(t, r, "alice", r.EventURL(t, cal, "mine")); got != http.StatusOK {
		t.Errorf("user's event after removal: GET = %d, want 200", got)
	}

	cancel()
	if _, err := c.OurCopies(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v, want context.Canceled", err)
	}
}
