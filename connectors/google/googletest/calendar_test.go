package googletest_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/calendar/v3"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/termind/termind/connectors/google/googletest"
)

const (
	scopeRead  = "https://www.googleapis.com/auth/calendar.events.readonly"
	scopeWrite = "https://www.googleapis.com/auth/calendar.events"
	calID      = "owner@example.com"
)

// accessToken runs the OAuth flow on the fake for scope and returns the
// access token.
func accessToken(t *testing.T, s *googletest.Server, scope string) string {
	t.Helper()
	s.RegisterRedirect(callback)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id":             {s.ClientID()},
		"redirect_uri":          {callback},
		"response_type":         {"code"},
		"scope":                 {scope},
		"code_challenge_method": {"S256"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
	}
	back, err := s.Authorize(s.AuthURL()+"?"+q.Encode(), false)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	u, err := url.Parse(back)
	if err != nil {
		t.Fatal(err)
	}
	r := post(t, s, s.TokenURL(), url.Values{
		"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "redirect_uri": {callback},
		"code_verifier": {verifier}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()},
	}, nil)
	tok, _ := r.body["access_token"].(string)
	if r.status != http.StatusOK || tok == "" {
		t.Fatalf("token exchange: %d %v", r.status, r.body)
	}
	return tok
}

// service is the real Calendar client, pointed at the fake with tok.
func service(t *testing.T, s *googletest.Server, tok string) *calendar.Service {
	t.Helper()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.Client())
	hc := oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok, TokenType: "Bearer"}))
	svc, err := calendar.NewService(context.Background(), option.WithEndpoint(s.APIURL()), option.WithHTTPClient(hc))
	if err != nil {
		t.Fatalf("calendar.NewService: %v", err)
	}
	return svc
}

// setup starts the fake with one calendar and returns a client with the
// events scope.
func setup(t *testing.T) (*googletest.Server, *calendar.Service) {
	t.Helper()
	s := googletest.Start(t)
	s.AddCalendar(calID)
	return s, service(t, s, accessToken(t, s, scopeWrite))
}

// apiErr asserts that err is Google's error with status and reason.
func apiErr(t *testing.T, err error, status int, reason string) *googleapi.Error {
	t.Helper()
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("error = %v, want *googleapi.Error %d %s", err, status, reason)
	}
	if gerr.Code != status || len(gerr.Errors) == 0 || gerr.Errors[0].Reason != reason {
		t.Fatalf("error = %d %+v, want %d %s", gerr.Code, gerr.Errors, status, reason)
	}
	return gerr
}

func timed(id, summary string, start time.Time, d time.Duration) *calendar.Event {
	return &calendar.Event{
		Id:      id,
		Summary: summary,
		Start:   &calendar.EventDateTime{DateTime: start.Format(time.RFC3339)},
		End:     &calendar.EventDateTime{DateTime: start.Add(d).Format(time.RFC3339)},
	}
}

var day0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// ids lists the ids of items.
func ids(items []*calendar.Event) []string {
	out := make([]string, len(items))
	for i, ev := range items {
		out[i] = ev.Id
	}
	return out
}

// fullSync lists every page and returns the items and the sync token.
func fullSync(t *testing.T, call *calendar.EventsListCall) ([]*calendar.Event, string) {
	t.Helper()
	var items []*calendar.Event
	var syncToken string
	err := call.Pages(context.Background(), func(page *calendar.Events) error {
		items = append(items, page.Items...)
		syncToken = page.NextSyncToken
		return nil
	})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return items, syncToken
}

func TestCalendarAuth(t *testing.T) {
	t.Parallel()
	s := googletest.Start(t)
	s.AddCalendar(calID)
	expired := accessToken(t, s, scopeWrite)
	revoked := accessToken(t, s, scopeWrite)
	if r := post(t, s, s.RevokeURL(), url.Values{"token": {revoked}}, nil); r.status != http.StatusOK {
		t.Fatalf("revoke: %d", r.status)
	}
	s.ExpireAccessTokens()
	good, _ := s.IssueToken(scopeWrite)
	readTok := accessToken(t, s, scopeRead)

	insert := func(svc *calendar.Service) error {
		_, err := svc.Events.Insert(calID, timed("", "x", day0, time.Hour)).Do()
		return err
	}
	list := func(svc *calendar.Service) error {
		_, err := svc.Events.List(calID).Do()
		return err
	}
	tests := []struct {
		name   string
		tok    string
		call   func(*calendar.Service) error
		status int
		reason string
	}{
		{"unknown token", "ya29.nope", list, 401, "authError"},
		{"expired token", expired, list, 401, "authError"},
		{"revoked token", revoked, list, 401, "authError"},
		{"read-only scope reads", readTok, list, 200, ""},
		{"read-only scope writes", readTok, insert, 403, "insufficientPermissions"},
		{"events scope writes", good, insert, 200, ""},
		{"unknown calendar", good, func(svc *calendar.Service) error {
			_, err := svc.Events.List("nobody@example.com").Do()
			return err
		}, 404, "notFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(service(t, s, tt.tok))
			if tt.status == 200 {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			gerr := apiErr(t, err, tt.status, tt.reason)
			if tt.status == 401 && (gerr.Message != "Invalid Credentials" || gerr.Errors[0].Message != "Invalid Credentials") {
				t.Errorf("401 = %+v", gerr)
			}
		})
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	var want []string
	for i := range 7 {
		ev := s.PutEvent(calID, timed("", fmt.Sprint("ev", i), day0.Add(time.Duration(i)*time.Hour), time.Hour))
		want = append(want, ev.Id)
	}
	s.DeleteEvent(calID, want[6]) // not listed without showDeleted
	want = want[:6]

	var got []string
	var pages []*calendar.Events
	tok := ""
	for {
		page, err := svc.Events.List(calID).MaxResults(4).PageToken(tok).Do()
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		pages = append(pages, page)
		got = append(got, ids(page.Items)...)
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v (by start time)", got, want)
	}
	if len(pages) != 2 {
		t.Fatalf("%d pages, want 2", len(pages))
	}
	if pages[0].NextSyncToken != "" || pages[0].NextPageToken == "" {
		t.Errorf("first page: sync %q page %q", pages[0].NextSyncToken, pages[0].NextPageToken)
	}
	if last := pages[1]; last.NextSyncToken == "" || last.NextPageToken != "" || last.Kind != "calendar#events" {
		t.Errorf("last page: kind %q sync %q page %q", last.Kind, last.NextSyncToken, last.NextPageToken)
	}

	// A page token stays valid for its listing, and the listing is a
	// snapshot: a change after the first page does not shift the second.
	early := s.PutEvent(calID, timed("", "early", day0.Add(-time.Hour), time.Hour))
	again, err := svc.Events.List(calID).MaxResults(4).PageToken(pages[0].NextPageToken).Do()
	if err != nil {
		t.Fatalf("list page 2 again: %v", err)
	}
	if !slices.Equal(ids(again.Items), ids(pages[1].Items)) {
		t.Errorf("page 2 again = %v, want %v", ids(again.Items), ids(pages[1].Items))
	}
	// The change is picked up by the listing's sync token instead.
	changes, _ := fullSync(t, svc.Events.List(calID).SyncToken(again.NextSyncToken))
	if !slices.Equal(ids(changes), []string{early.Id}) {
		t.Errorf("changes after the snapshot = %v, want %v", ids(changes), early.Id)
	}

	// showDeleted includes the deleted event, with its details: this is
	// the organizer's calendar.
	items, _ := fullSync(t, svc.Events.List(calID).ShowDeleted(true))
	if n := len(items); n != 8 {
		t.Fatalf("showDeleted: %d items, want 8", n)
	}
	if del := items[7]; del.Status != "cancelled" || del.Summary != "ev6" {
		t.Errorf("deleted = %+v", del)
	}
	// maxResults above 2500 is capped, not refused.
	if _, err := svc.Events.List(calID).MaxResults(10000).Do(); err != nil {
		t.Errorf("maxResults 10000: %v", err)
	}
}

func TestIncrementalSync(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	keep := s.PutEvent(calID, timed("keep00001", "keep", day0, time.Hour))
	edit := s.PutEvent(calID, timed("edit00001", "before", day0.Add(time.Hour), time.Hour))
	gone := s.PutEvent(calID, timed("gone00001", "gone", day0.Add(2*time.Hour), time.Hour))
	_, tok := fullSync(t, svc.Events.List(calID).MaxResults(2))
	if tok == "" {
		t.Fatal("no sync token")
	}

	edited := timed(edit.Id, "after", day0.Add(time.Hour), time.Hour)
	s.PutEvent(calID, edited)
	s.DeleteEvent(calID, gone.Id)
	added, err := svc.Events.Insert(calID, timed("", "added", day0.Add(3*time.Hour), time.Hour)).Do()
	if err != nil {
		t.Fatalf("insert: %v", err)
	}

	items, tok2 := fullSync(t, svc.Events.List(calID).SyncToken(tok))
	if got, want := ids(items), []string{edit.Id, gone.Id, added.Id}; !slices.Equal(got, want) {
		t.Fatalf("changes = %v, want %v (in change order, %s unchanged)", got, want, keep.Id)
	}
	if items[0].Summary != "after" || items[0].Status != "confirmed" {
		t.Errorf("edited = %+v", items[0])
	}
	tomb := items[1]
	if tomb.Status != "cancelled" || tomb.Etag == "" || tomb.Updated == "" || tomb.Summary != "" || tomb.Start != nil {
		t.Errorf("deleted = %+v, want a minimal cancelled item", tomb)
	}
	if tok2 == "" || tok2 == tok {
		t.Fatalf("new sync token %q", tok2)
	}
	again, _ := fullSync(t, svc.Events.List(calID).SyncToken(tok2))
	if len(again) != 0 {
		t.Errorf("no changes since: got %v", ids(again))
	}
	// With showDeleted the deleted event keeps its details.
	if items, _ := fullSync(t, svc.Events.List(calID).SyncToken(tok).ShowDeleted(true)); len(items) != 3 || items[1].Summary != "gone" {
		t.Errorf("incremental with showDeleted: %+v", items)
	}
	// A sync token may be used again.
	if items, _ := fullSync(t, svc.Events.List(calID).SyncToken(tok)); len(items) != 3 {
		t.Errorf("reused token: %v", ids(items))
	}
}

func TestSyncTokenErrors(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	s.PutEvent(calID, timed("", "a", day0, time.Hour))
	_, tok := fullSync(t, svc.Events.List(calID))

	tests := []struct {
		name string
		mod  func(*calendar.EventsListCall) *calendar.EventsListCall
	}{
		{"timeMin", func(c *calendar.EventsListCall) *calendar.EventsListCall { return c.TimeMin(day0.Format(time.RFC3339)) }},
		{"timeMax", func(c *calendar.EventsListCall) *calendar.EventsListCall { return c.TimeMax(day0.Format(time.RFC3339)) }},
		{"orderBy", func(c *calendar.EventsListCall) *calendar.EventsListCall { return c.OrderBy("updated") }},
		{"q", func(c *calendar.EventsListCall) *calendar.EventsListCall { return c.Q("a") }},
		{"iCalUID", func(c *calendar.EventsListCall) *calendar.EventsListCall { return c.ICalUID("x@google.com") }},
		{"updatedMin", func(c *calendar.EventsListCall) *calendar.EventsListCall {
			return c.UpdatedMin(day0.Format(time.RFC3339))
		}},
		{"privateExtendedProperty", func(c *calendar.EventsListCall) *calendar.EventsListCall { return c.PrivateExtendedProperty("k=v") }},
		{"sharedExtendedProperty", func(c *calendar.EventsListCall) *calendar.EventsListCall { return c.SharedExtendedProperty("k=v") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.mod(svc.Events.List(calID).SyncToken(tok)).Do()
			if gerr := apiErr(t, err, 400, "invalid"); !strings.HasPrefix(gerr.Message, "Sync token cannot be used with") {
				t.Errorf("message = %q", gerr.Message)
			}
		})
	}

	t.Run("unknown token", func(t *testing.T) {
		_, err := svc.Events.List(calID).SyncToken("nope").Do()
		gerr := apiErr(t, err, 410, "fullSyncRequired")
		if gerr.Message != "Sync token is no longer valid, a full sync is required." {
			t.Errorf("message = %q", gerr.Message)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		if _, err := svc.Events.List(calID).SyncToken(tok).Do(); err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		s.ExpireSyncTokens(calID)
		_, err := svc.Events.List(calID).SyncToken(tok).Do()
		apiErr(t, err, 410, "fullSyncRequired")
		// A new full sync gives a working token.
		_, fresh := fullSync(t, svc.Events.List(calID))
		if _, err := svc.Events.List(calID).SyncToken(fresh).Do(); err != nil {
			t.Errorf("fresh token: %v", err)
		}
	})
}

func TestRecurringEvents(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tz data:", err)
	}
	// Weekly at 10:00 Berlin, across the DST change of 29 March 2026.
	start := time.Date(2026, 3, 16, 10, 0, 0, 0, berlin)
	series := s.PutEvent(calID, &calendar.Event{
		Summary:    "weekly",
		Start:      &calendar.EventDateTime{DateTime: start.Format(time.RFC3339), TimeZone: "Europe/Berlin"},
		End:        &calendar.EventDateTime{DateTime: start.Add(time.Hour).Format(time.RFC3339), TimeZone: "Europe/Berlin"},
		Recurrence: []string{"RRULE:FREQ=WEEKLY;COUNT=4"},
	})
	allDay := s.PutEvent(calID, &calendar.Event{
		Summary:    "daily all-day",
		Start:      &calendar.EventDateTime{Date: "2026-03-16"},
		End:        &calendar.EventDateTime{Date: "2026-03-17"},
		Recurrence: []string{"RRULE:FREQ=DAILY;COUNT=2"},
	})
	window := func(c *calendar.EventsListCall) *calendar.EventsListCall {
		return c.SingleEvents(true).TimeMin("2026-03-01T00:00:00Z").TimeMax("2026-05-01T00:00:00Z")
	}
	items, tok := fullSync(t, window(svc.Events.List(calID)).OrderBy("startTime"))
	want := []string{
		allDay.Id + "_20260316", series.Id + "_20260316T090000Z", allDay.Id + "_20260317",
		series.Id + "_20260323T090000Z", series.Id + "_20260330T080000Z", series.Id + "_20260406T080000Z",
	}
	if !slices.Equal(ids(items), want) {
		t.Fatalf("instances = %v, want %v", ids(items), want)
	}
	third := items[4]
	if third.RecurringEventId != series.Id || third.OriginalStartTime == nil ||
		third.OriginalStartTime.DateTime != "2026-03-30T10:00:00+02:00" || third.Start.DateTime != "2026-03-30T10:00:00+02:00" ||
		third.Recurrence != nil {
		t.Errorf("instance = %+v start %+v orig %+v", third, third.Start, third.OriginalStartTime)
	}
	if items[0].OriginalStartTime == nil || items[0].OriginalStartTime.Date != "2026-03-16" {
		t.Errorf("all-day instance original start = %+v", items[0].OriginalStartTime)
	}

	// Unexpanded, the series come back as masters with their rules.
	masters, _ := fullSync(t, svc.Events.List(calID))
	if len(masters) != 2 || len(masters[0].Recurrence) != 1 {
		t.Errorf("masters = %v", ids(masters))
	}
	// An instance id resolves to the instance.
	got, err := svc.Events.Get(calID, third.Id).Do()
	if err != nil || got.RecurringEventId != series.Id || got.Start.DateTime != third.Start.DateTime {
		t.Errorf("get instance = %+v, %v", got, err)
	}
	if _, err := svc.Events.Get(calID, series.Id+"_20260331T080000Z").Do(); err == nil {
		t.Error("get of a time the rule does not yield succeeded")
	}

	// The person deletes the third instance; the client deletes the
	// fourth through the API.
	s.CancelInstance(calID, series.Id, time.Date(2026, 3, 30, 8, 0, 0, 0, time.UTC))
	if err := svc.Events.Delete(calID, want[5]).Do(); err != nil {
		t.Fatalf("delete instance: %v", err)
	}
	changes, _ := fullSync(t, svc.Events.List(calID).SingleEvents(true).SyncToken(tok))
	if got := ids(changes); !slices.Equal(got, []string{want[4], want[5]}) {
		t.Fatalf("changes = %v", got)
	}
	for _, c := range changes {
		if c.Status != "cancelled" || c.RecurringEventId != series.Id || c.OriginalStartTime == nil || c.Summary != "" {
			t.Errorf("cancelled instance = %+v", c)
		}
	}
	live, _ := fullSync(t, window(svc.Events.List(calID)))
	if len(live) != 4 {
		t.Errorf("after cancelling: %v", ids(live))
	}
	withDeleted, _ := fullSync(t, window(svc.Events.List(calID)).ShowDeleted(true))
	if len(withDeleted) != 6 {
		t.Errorf("showDeleted: %v", ids(withDeleted))
	}
	// events.instances lists one series.
	inst, err := svc.Events.Instances(calID, series.Id).Do()
	if err != nil || !slices.Equal(ids(inst.Items), []string{want[1], want[3]}) || inst.NextSyncToken != "" {
		t.Errorf("instances = %v, %v", ids(inst.Items), err)
	}
	inst, err = svc.Events.Instances(calID, series.Id).ShowDeleted(true).MaxResults(3).Do()
	if err != nil || len(inst.Items) != 3 || inst.NextPageToken == "" || inst.Items[2].Status != "cancelled" {
		t.Errorf("instances with deleted = %v, %v", ids(inst.Items), err)
	}
	// Unexpanded, cancelled instances come as items of their own.
	masters, _ = fullSync(t, svc.Events.List(calID))
	if len(masters) != 4 {
		t.Errorf("masters and exceptions = %v", ids(masters))
	}
}

func TestInsert(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	s.PutEvent(calID, timed("taken0001", "x", day0, time.Hour))
	s.PutEvent(calID, timed("deleted01", "x", day0, time.Hour))
	s.DeleteEvent(calID, "deleted01")

	tests := []struct {
		name   string
		ev     *calendar.Event
		status int
		reason string
	}{
		{"own id", timed("termind0001", "booking", day0, time.Hour), 200, ""},
		{"generated id", timed("", "booking", day0, time.Hour), 200, ""},
		{"existing id", timed("taken0001", "booking", day0, time.Hour), 409, "duplicate"},
		{"deleted id", timed("deleted01", "booking", day0, time.Hour), 409, "duplicate"},
		{"id outside base32hex", timed("Booking-1", "booking", day0, time.Hour), 400, "invalid"},
		{"id too short", timed("abcd", "booking", day0, time.Hour), 400, "invalid"},
		{"no end", &calendar.Event{Id: "noend0001", Start: &calendar.EventDateTime{DateTime: day0.Format(time.RFC3339)}}, 400, "required"},
		{"end before start", timed("backw0001", "b", day0, -time.Hour), 400, "timeRangeEmpty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.ResetCalendarRequests()
			got, err := svc.Events.Insert(calID, tt.ev).SendUpdates("none").Do()
			if tt.status != 200 {
				gerr := apiErr(t, err, tt.status, tt.reason)
				if tt.status == 409 && gerr.Message != "The requested identifier already exists." {
					t.Errorf("message = %q", gerr.Message)
				}
				return
			}
			if err != nil {
				t.Fatalf("insert: %v", err)
			}
			if tt.ev.Id != "" && got.Id != tt.ev.Id || len(got.Id) < 5 || strings.Trim(got.Id, "0123456789abcdefghijklmnopqrstuv") != "" {
				t.Errorf("id = %q", got.Id)
			}
			if got.Status != "confirmed" || got.ICalUID != got.Id+"@google.com" || got.Etag == "" ||
				got.Created == "" || got.Updated == "" || got.Etag != got.Header.Get("ETag") {
				t.Errorf("stored = %+v", got)
			}
			reqs := s.CalendarRequests()
			if len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].Query.Get("sendUpdates") != "none" || reqs[0].Status != 200 {
				t.Fatalf("requests = %+v", reqs)
			}
			if reqs[0].SentAttendees() {
				t.Error("attendees were sent")
			}
		})
	}
}

func TestUpdatePatchDelete(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	orig := s.PutEvent(calID, timed("booking01", "before", day0, time.Hour))

	// A stale If-Match is refused.
	s.PutEvent(calID, timed("booking01", "edited in the UI", day0, time.Hour))
	up := timed("booking01", "ours", day0, time.Hour)
	call := svc.Events.Update(calID, "booking01", up)
	call.Header().Set("If-Match", orig.Etag)
	_, err := call.Do()
	gerr := apiErr(t, err, 412, "conditionNotMet")
	if gerr.Message != "Precondition Failed" {
		t.Errorf("message = %q", gerr.Message)
	}

	cur, err := svc.Events.Get(calID, "booking01").Do()
	if err != nil {
		t.Fatal(err)
	}
	call = svc.Events.Update(calID, "booking01", up)
	call.Header().Set("If-Match", cur.Etag)
	updated, err := call.Do()
	if err != nil {
		t.Fatalf("update with current etag: %v", err)
	}
	if updated.Summary != "ours" || updated.Etag == cur.Etag || updated.Created != orig.Created || updated.ICalUID != orig.ICalUID {
		t.Errorf("updated = %+v", updated)
	}

	// Patch changes only the fields sent.
	patched, err := svc.Events.Patch(calID, "booking01", &calendar.Event{Description: "room 2"}).Do()
	if err != nil {
		t.Fatalf("patch: %v", err)
	}
	if patched.Summary != "ours" || patched.Description != "room 2" || patched.Start.DateTime != up.Start.DateTime {
		t.Errorf("patched = %+v", patched)
	}

	// Delete: stale etag 412, then 204, then 410; unknown 404.
	del := svc.Events.Delete(calID, "booking01")
	del.Header().Set("If-Match", cur.Etag)
	apiErr(t, del.Do(), 412, "conditionNotMet")
	if err := svc.Events.Delete(calID, "booking01").Do(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	gerr = apiErr(t, svc.Events.Delete(calID, "booking01").Do(), 410, "deleted")
	if gerr.Message != "Resource has been deleted" {
		t.Errorf("message = %q", gerr.Message)
	}
	apiErr(t, svc.Events.Delete(calID, "unknown01").Do(), 404, "notFound")
	_, err = svc.Events.Get(calID, "unknown01").Do()
	apiErr(t, err, 404, "notFound")
	_, err = svc.Events.Update(calID, "unknown01", up).Do()
	apiErr(t, err, 404, "notFound")

	// The tombstone still answers a get, cancelled.
	tomb, err := svc.Events.Get(calID, "booking01").Do()
	if err != nil || tomb.Status != "cancelled" {
		t.Fatalf("get deleted = %+v, %v", tomb, err)
	}
	// A conditional get of the current version is 304.
	_, err = svc.Events.Get(calID, "booking01").IfNoneMatch(tomb.Etag).Do()
	if !googleapi.IsNotModified(err) {
		t.Errorf("If-None-Match current: %v", err)
	}
	if _, ok := s.Event(calID, "booking01"); !ok || len(s.LiveEvents(calID)) != 0 {
		t.Errorf("Event/LiveEvents after delete: %v", ids(s.LiveEvents(calID)))
	}

	// Updating the deleted id brings it back.
	back, err := svc.Events.Update(calID, "booking01", timed("booking01", "again", day0, time.Hour)).Do()
	if err != nil {
		t.Fatalf("update deleted: %v", err)
	}
	if back.Status != "confirmed" || back.Summary != "again" {
		t.Errorf("restored = %+v", back)
	}
	if live := s.LiveEvents(calID); len(live) != 1 || live[0].Id != "booking01" {
		t.Errorf("LiveEvents = %v", ids(live))
	}
}

// receiver is a webhook endpoint recording the notifications it gets.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []http.Header
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.got = append(r.got, req.Header.Clone())
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) states() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, h := range r.got {
		out = append(out, h.Get("X-Goog-Resource-State"))
	}
	return out
}

func TestWatch(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	rcv := newReceiver(t)

	ch, err := svc.Events.Watch(calID, &calendar.Channel{
		Id: "chan-1", Type: "web_hook", Address: rcv.srv.URL + "/hook", Token: "target=termind",
	}).Do()
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	exp := time.UnixMilli(ch.Expiration)
	if ch.Id != "chan-1" || ch.ResourceId == "" || ch.ResourceUri == "" || ch.Token != "target=termind" ||
		time.Until(exp) < googletest.DefaultChannelTTL-time.Minute {
		t.Errorf("channel = %+v (expires %v)", ch, exp)
	}
	s.WaitNotifications()
	if got := rcv.states(); !slices.Equal(got, []string{"sync"}) {
		t.Fatalf("after watch: %v", got)
	}
	h := rcv.headers()[0]
	for k, want := range map[string]string{
		"X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": "target=termind", "X-Goog-Resource-ID": ch.ResourceId,
		"X-Goog-Resource-URI": ch.ResourceUri, "X-Goog-Message-Number": "1",
		"X-Goog-Channel-Expiration": exp.UTC().Format(http.TimeFormat),
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	// Changes by the person and by the API both notify.
	s.PutEvent(calID, timed("", "ui", day0, time.Hour))
	if _, err := svc.Events.Insert(calID, timed("", "api", day0, time.Hour)).Do(); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications()
	if got := rcv.states(); !slices.Equal(got, []string{"sync", "exists", "exists"}) {
		t.Fatalf("after changes: %v", got)
	}
	if n := rcv.headers()[2].Get("X-Goog-Message-Number"); n != "3" {
		t.Errorf("message number = %s", n)
	}
	if ds := s.Deliveries(); len(ds) != 3 || ds[2] != (googletest.Delivery{ChannelID: "chan-1", State: "exists", Status: 200}) {
		t.Errorf("deliveries = %+v", ds)
	}
	if live := s.Channels(calID); len(live) != 1 || live[0].ResourceID != ch.ResourceId {
		t.Errorf("Channels = %+v", live)
	}

	// The same id again is refused while the channel lives.
	_, err = svc.Events.Watch(calID, &calendar.Channel{Id: "chan-1", Type: "web_hook", Address: rcv.srv.URL}).Do()
	apiErr(t, err, 400, "channelIdNotUnique")

	// Stop: a wrong resource id is 404, then it stops, then 404 again.
	apiErr(t, svc.Channels.Stop(&calendar.Channel{Id: "chan-1", ResourceId: "other"}).Do(), 404, "notFound")
	if err := svc.Channels.Stop(&calendar.Channel{Id: "chan-1", ResourceId: ch.ResourceId}).Do(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	apiErr(t, svc.Channels.Stop(&calendar.Channel{Id: "chan-1", ResourceId: ch.ResourceId}).Do(), 404, "notFound")
	s.PutEvent(calID, timed("", "after stop", day0, time.Hour))
	s.WaitNotifications()
	if got := rcv.states(); len(got) != 3 {
		t.Errorf("after stop: %v", got)
	}
	if got := s.StoppedChannels(); !slices.Equal(got, []string{"chan-1"}) {
		t.Errorf("StoppedChannels = %v", got)
	}
	if live := s.Channels(calID); len(live) != 0 {
		t.Errorf("Channels after stop = %+v", live)
	}
}

func TestWatchExpiry(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	rcv := newReceiver(t)
	ch, err := svc.Events.Watch(calID, &calendar.Channel{
		Id: "short", Type: "web_hook", Address: rcv.srv.URL, Params: map[string]string{"ttl": "60"},
	}).Do()
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if d := time.Until(time.UnixMilli(ch.Expiration)); d > time.Minute || d < 50*time.Second {
		t.Errorf("expires in %v, want 60s", d)
	}
	s.Advance(2 * time.Minute)
	s.PutEvent(calID, timed("", "late", day0, time.Hour))
	s.WaitNotifications()
	if got := rcv.states(); !slices.Equal(got, []string{"sync"}) {
		t.Errorf("expired channel got %v", got)
	}
	if live := s.Channels(calID); len(live) != 0 {
		t.Errorf("Channels = %+v", live)
	}
	// A requested expiration time is kept, up to Google's default
	// lifetime.
	want := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	ch, err = svc.Events.Watch(calID, &calendar.Channel{Id: "at", Type: "web_hook", Address: rcv.srv.URL, Expiration: want.UnixMilli()}).Do()
	if err != nil || ch.Expiration != want.UnixMilli() {
		t.Errorf("watch with expiration = %+v, %v", ch, err)
	}
	ch, err = svc.Events.Watch(calID, &calendar.Channel{Id: "far", Type: "web_hook", Address: rcv.srv.URL, Expiration: time.Now().Add(365 * 24 * time.Hour).UnixMilli()}).Do()
	if err != nil || time.Until(time.UnixMilli(ch.Expiration)) > googletest.DefaultChannelTTL+3*time.Minute {
		t.Errorf("watch far ahead = %+v, %v", ch, err)
	}
	_, err = svc.Events.Watch(calID, &calendar.Channel{Id: strings.Repeat("x", 65), Type: "web_hook", Address: rcv.srv.URL}).Do()
	apiErr(t, err, 400, "invalid")
	_, err = svc.Events.Watch(calID, &calendar.Channel{Id: "mail", Type: "email", Address: rcv.srv.URL}).Do()
	apiErr(t, err, 400, "push.channelTypeNotSupported")
	_, err = svc.Events.Watch(calID, &calendar.Channel{Id: "ftp", Type: "web_hook", Address: "ftp://example.com/hook"}).Do()
	apiErr(t, err, 400, "push.webhookUrlNotHttps")
	// An expired channel's id may be used again.
	if _, err := svc.Events.Watch(calID, &calendar.Channel{Id: "short", Type: "web_hook", Address: rcv.srv.URL}).Do(); err != nil {
		t.Errorf("watch again: %v", err)
	}
}

func TestInjectedFailures(t *testing.T) {
	t.Parallel()
	withRetry := googletest.TooManyRequests
	withRetry.RetryAfter = "7"
	tests := []struct {
		name   string
		f      googletest.Failure
		status int
		reason string
		domain string
	}{
		{"rate limit", googletest.RateLimitExceeded, 403, "rateLimitExceeded", "usageLimits"},
		{"user rate limit", googletest.UserRateLimitExceeded, 403, "userRateLimitExceeded", "usageLimits"},
		{"quota", googletest.QuotaExceeded, 403, "quotaExceeded", "usageLimits"},
		{"429 with Retry-After", withRetry, 429, "rateLimitExceeded", "usageLimits"},
		{"backend", googletest.BackendError, 503, "backendError", "global"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, svc := setup(t)
			s.FailCalendar(2, tt.f)
			for range 2 {
				_, err := svc.Events.List(calID).Do()
				gerr := apiErr(t, err, tt.status, tt.reason)
				if gerr.Message != tt.f.Message || !strings.Contains(gerr.Body, `"domain":"`+tt.domain+`"`) || gerr.Header.Get("Retry-After") != tt.f.RetryAfter {
					t.Errorf("message %q Retry-After %q body %s", gerr.Message, gerr.Header.Get("Retry-After"), gerr.Body)
				}
			}
			if _, err := svc.Events.List(calID).Do(); err != nil {
				t.Errorf("third request: %v", err)
			}
			reqs := s.CalendarRequests()
			if len(reqs) != 3 || reqs[0].Status != tt.status || reqs[2].Status != 200 {
				t.Errorf("request log = %+v", reqs)
			}
		})
	}

	t.Run("only matching requests", func(t *testing.T) {
		t.Parallel()
		s, svc := setup(t)
		s.PutEvent(calID, timed("victim001", "x", day0, time.Hour))
		s.FailCalendarWhere(func(r *http.Request) bool { return r.Method == http.MethodDelete }, 1, googletest.BackendError)
		if _, err := svc.Events.List(calID).Do(); err != nil {
			t.Fatalf("list: %v", err)
		}
		apiErr(t, svc.Events.Delete(calID, "victim001").Do(), 503, "backendError")
		if err := svc.Events.Delete(calID, "victim001").Do(); err != nil {
			t.Errorf("retry: %v", err)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	rcv := newReceiver(t)
	if _, err := svc.Events.Watch(calID, &calendar.Channel{Id: "c", Type: "web_hook", Address: rcv.srv.URL}).Do(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			for i := range 5 {
				id := fmt.Sprintf("g%dn%d0000", g, i)
				if _, err := svc.Events.Insert(calID, timed(id, "api", day0, time.Hour)).Do(); err != nil {
					errs <- err
				}
				s.PutEvent(calID, timed("", "ui", day0, time.Hour))
				if _, err := svc.Events.List(calID).SingleEvents(true).Do(); err != nil {
					errs <- err
				}
				if err := svc.Events.Delete(calID, id).Do(); err != nil {
					errs <- err
				}
				_ = s.Deliveries()
				_ = s.Channels(calID)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s.WaitNotifications()
	// One sync, then one exists per change: 4 × 5 × 3 changes.
	if n := len(rcv.states()); n != 1+60 {
		t.Errorf("%d notifications, want 61", n)
	}
	// Delivered one by one in order: message numbers count up.
	for i, h := range rcv.headers() {
		if n := h.Get("X-Goog-Message-Number"); n != strconv.Itoa(i+1) {
			t.Fatalf("message %d has number %s", i+1, n)
		}
	}
}

func TestSeriesEditIncremental(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	series := s.PutEvent(calID, &calendar.Event{
		Id:         "series001",
		Start:      &calendar.EventDateTime{DateTime: "2026-03-02T09:00:00Z"},
		End:        &calendar.EventDateTime{DateTime: "2026-03-02T10:00:00Z"},
		Recurrence: []string{"RRULE:FREQ=DAILY;COUNT=2"},
	})
	list := svc.Events.List("primary").SingleEvents(true).TimeMin("2026-03-01T00:00:00Z").TimeMax("2026-04-01T00:00:00Z")
	items, tok := fullSync(t, list)
	if got := ids(items); !slices.Equal(got, []string{"series001_20260302T090000Z", "series001_20260303T090000Z"}) {
		t.Fatalf("instances = %v", got)
	}

	// The person moves the whole series an hour later: the instances get
	// new ids and the old ones are reported cancelled.
	moved := s.PutEvent(calID, &calendar.Event{
		Id:         series.Id,
		Start:      &calendar.EventDateTime{DateTime: "2026-03-02T10:00:00Z"},
		End:        &calendar.EventDateTime{DateTime: "2026-03-02T11:00:00Z"},
		Recurrence: series.Recurrence,
	})
	if moved.Sequence != series.Sequence+1 || moved.Etag == series.Etag {
		t.Errorf("moved = seq %d etag %s", moved.Sequence, moved.Etag)
	}
	changes, tok2 := fullSync(t, svc.Events.List("primary").SingleEvents(true).SyncToken(tok))
	byID := map[string]string{}
	for _, c := range changes {
		byID[c.Id] = c.Status
	}
	want := map[string]string{
		"series001_20260302T090000Z": "cancelled", "series001_20260303T090000Z": "cancelled",
		"series001_20260302T100000Z": "confirmed", "series001_20260303T100000Z": "confirmed",
	}
	if len(byID) != len(want) {
		t.Fatalf("changes = %v", byID)
	}
	for id, st := range want {
		if byID[id] != st {
			t.Errorf("%s = %q, want %q", id, byID[id], st)
		}
	}

	// Deleting the series cancels the instances the client has.
	s.DeleteEvent(calID, series.Id)
	changes, _ = fullSync(t, svc.Events.List("primary").SingleEvents(true).SyncToken(tok2))
	if got := ids(changes); !slices.Equal(got, []string{"series001_20260302T100000Z", "series001_20260303T100000Z"}) {
		t.Fatalf("after delete = %v", got)
	}
	for _, c := range changes {
		if c.Status != "cancelled" || c.RecurringEventId != series.Id {
			t.Errorf("instance = %+v", c)
		}
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	ours := timed("ours00001", "Haircut", day0, time.Hour)
	ours.ExtendedProperties = &calendar.EventExtendedProperties{Private: map[string]string{"termind": "b1"}}
	s.PutEvent(calID, ours)
	s.PutEvent(calID, timed("theirs001", "Dentist", day0.Add(48*time.Hour), time.Hour))

	tests := []struct {
		name string
		call *calendar.EventsListCall
		want []string
	}{
		{"private property", svc.Events.List(calID).PrivateExtendedProperty("termind=b1"), []string{"ours00001"}},
		{"private property other value", svc.Events.List(calID).PrivateExtendedProperty("termind=b2"), nil},
		{"text", svc.Events.List(calID).Q("dentist"), []string{"theirs001"}},
		{"iCalUID", svc.Events.List(calID).ICalUID("ours00001@google.com"), []string{"ours00001"}},
		{"window", svc.Events.List(calID).TimeMin(day0.Add(time.Hour).Format(time.RFC3339)), []string{"theirs001"}},
		{"window overlapping start", svc.Events.List(calID).TimeMin(day0.Add(30 * time.Minute).Format(time.RFC3339)).
			TimeMax(day0.Add(time.Hour).Format(time.RFC3339)), []string{"ours00001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, tok := fullSync(t, tt.call)
			if !slices.Equal(ids(items), tt.want) || tok == "" {
				t.Errorf("ids = %v (sync token %q), want %v", ids(items), tok, tt.want)
			}
		})
	}
	_, err := svc.Events.List(calID).OrderBy("startTime").Do()
	apiErr(t, err, 400, "badRequest")
	_, err = svc.Events.List(calID).TimeMin(day0.Format(time.RFC3339)).TimeMax(day0.Format(time.RFC3339)).Do()
	apiErr(t, err, 400, "timeRangeEmpty")
}

// The tokens of IssueToken work the way a stored connection uses them:
// an oauth2.Config refreshes the access token and calls the API with it.
func TestIssueTokenRefresh(t *testing.T) {
	t.Parallel()
	s := googletest.Start(t)
	s.AddCalendar(calID)
	_, refresh := s.IssueToken(scopeRead)
	cfg := oauth2.Config{
		ClientID:     s.ClientID(),
		ClientSecret: s.ClientSecret(),
		Endpoint:     oauth2.Endpoint{AuthURL: s.AuthURL(), TokenURL: s.TokenURL(), AuthStyle: oauth2.AuthStyleInParams},
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.Client())
	hc := cfg.Client(ctx, &oauth2.Token{RefreshToken: refresh})
	svc, err := calendar.NewService(ctx, option.WithEndpoint(s.APIURL()), option.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Events.List(calID).Do(); err != nil {
		t.Fatalf("list with a refreshed token: %v", err)
	}
	_, err = svc.Events.Insert(calID, timed("", "x", day0, time.Hour)).Do()
	apiErr(t, err, 403, "insufficientPermissions")
}

func TestDeliveryOutcomes(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // nothing listens there any more

	for id, addr := range map[string]string{"failing": failing.URL, "gone": gone.URL} {
		if _, err := svc.Events.Watch(calID, &calendar.Channel{Id: id, Type: "web_hook", Address: addr}).Do(); err != nil {
			t.Fatalf("watch %s: %v", id, err)
		}
	}
	s.WaitNotifications()
	got := map[string]googletest.Delivery{}
	for _, d := range s.Deliveries() {
		got[d.ChannelID] = d
	}
	if d := got["failing"]; d.State != "sync" || d.Status != 500 || d.Err != "" {
		t.Errorf("failing receiver: %+v", d)
	}
	if d := got["gone"]; d.State != "sync" || d.Status != 0 || d.Err == "" {
		t.Errorf("closed receiver: %+v", d)
	}
}

func TestModifiedInstance(t *testing.T) {
	t.Parallel()
	s, svc := setup(t)
	s.PutEvent(calID, &calendar.Event{
		Id:         "weekly001",
		Summary:    "class",
		Start:      &calendar.EventDateTime{DateTime: "2026-03-02T09:00:00Z"},
		End:        &calendar.EventDateTime{DateTime: "2026-03-02T10:00:00Z"},
		Recurrence: []string{"RRULE:FREQ=WEEKLY;COUNT=3"},
	})
	window := func(c *calendar.EventsListCall) *calendar.EventsListCall {
		return c.TimeMin("2026-03-01T00:00:00Z").TimeMax("2026-04-01T00:00:00Z")
	}
	_, tok := fullSync(t, window(svc.Events.List(calID).SingleEvents(true)))

	// Moving the second instance by an hour keeps its id and original
	// start: it becomes an exception of the series.
	const second = "weekly001_20260309T090000Z"
	moved, err := svc.Events.Patch(calID, second, &calendar.Event{
		Summary: "class, moved",
		Start:   &calendar.EventDateTime{DateTime: "2026-03-09T10:00:00Z"},
		End:     &calendar.EventDateTime{DateTime: "2026-03-09T11:00:00Z"},
	}).Do()
	if err != nil {
		t.Fatalf("patch instance: %v", err)
	}
	if moved.Id != second || moved.RecurringEventId != "weekly001" || moved.OriginalStartTime.DateTime != "2026-03-09T09:00:00Z" {
		t.Errorf("moved = %+v", moved)
	}
	changes, _ := fullSync(t, svc.Events.List(calID).SingleEvents(true).SyncToken(tok))
	if len(changes) != 1 || changes[0].Id != second || changes[0].Start.DateTime != "2026-03-09T10:00:00Z" {
		t.Fatalf("changes = %v", ids(changes))
	}
	got, err := svc.Events.Get(calID, second).Do()
	if err != nil || got.Summary != "class, moved" || got.Etag != moved.Etag {
		t.Errorf("get = %+v, %v", got, err)
	}
	// Unexpanded: the master and the exception.
	items, _ := fullSync(t, window(svc.Events.List(calID)))
	if !slices.Equal(ids(items), []string{"weekly001", second}) {
		t.Errorf("unexpanded = %v", ids(items))
	}
}
