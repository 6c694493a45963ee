package main

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/calendar/v3"

	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/connectors/google/googletest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/internal/sync/googleremote"
)

const googleCalendar = "anna@example.com"

// withGoogle points the stack at the Google fake, push channels on.
func withGoogle(g *googletest.Server) stackOption {
	return func(c *config.Config) {
		c.GoogleClientID, c.GoogleClientSecret = g.ClientID(), g.ClientSecret()
		c.GoogleAuthURL, c.GoogleTokenURL, c.GoogleRevokeURL = g.AuthURL(), g.TokenURL(), g.RevokeURL()
		c.GoogleAPIURL = g.APIURL()
		c.GooglePush = "on"
		g.RegisterRedirect(c.PublicURL + "/oauth/google/callback")
	}
}

// connectGoogle runs the consent flow through the API and the fake's
// consent screen and returns the new connection's id.
func connectGoogle(t testing.TB, st *stack, g *googletest.Server, subject string, purposes ...string) string {
	t.Helper()
	var auth struct {
		AuthURL string `json:"auth_url"`
	}
	if code := st.do("POST", "/v1/connections/google/authorize", map[string]any{
		"subject_id": subject, "privacy": "busy", "direction": "both",
		"consent":        map[string]any{"purposes": purposes, "policy_version": "2026-01"},
		"redirect_after": "https://platform.example.com/calendar/done",
	}, &auth); code != http.StatusOK {
		t.Fatalf("authorize: %d", code)
	}
	back, err := g.Authorize(auth.AuthURL, false)
	if err != nil {
		t.Fatalf("consent screen: %v", err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(back)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("status") != "connected" {
		t.Fatalf("callback: %d %s", resp.StatusCode, loc)
	}
	return loc.Query().Get("connection_id")
}

func (st *stack) connection(id string) store.Connection {
	st.t.Helper()
	c, err := st.store.GetConnectionByID(st.t.Context(), id)
	if err != nil {
		st.t.Fatal(err)
	}
	return c
}

// incrementalLists counts events.list calls with a sync token.
func incrementalLists(g *googletest.Server) int {
	n := 0
	for _, r := range g.CalendarRequests() {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/events") && r.Query.Get("syncToken") != "" {
			n++
		}
	}
	return n
}

func googleEvent(id string, start time.Time, d time.Duration) *calendar.Event {
	return &calendar.Event{Id: id, Summary: "Zahnarzt",
		Start: &calendar.EventDateTime{DateTime: start.Format(time.RFC3339)},
		End:   &calendar.EventDateTime{DateTime: start.Add(d).Format(time.RFC3339)}}
}

// TestGoogleSyncThroughTheDaemon: a Google connection made through the
// consent flow gets a push channel and a first sync; a burst of changes
// in Google leads to one pull and shows in the busy API; appointments are
// copied; revocation stops the channel, removes the copies and revokes
// the grant.
func TestGoogleSyncThroughTheDaemon(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			g := googletest.Start(t)
			g.AddCalendar(googleCalendar)
			st := newStack(t, dialect, withGoogle(g))
			connID := connectGoogle(t, st, g, "anna", "calendar.read.busy", "calendar.write")

			waitFor(t, 15*time.Second, "a push channel and the first sync", func() bool {
				c := st.connection(connID)
				return len(g.Channels(googleCalendar)) == 1 && !c.LastSyncAt.IsZero()
			})
			ch := g.Channels(googleCalendar)[0]
			if !strings.HasSuffix(ch.Address, "/webhooks/google") || ch.Token == "" {
				t.Fatalf("channel %+v", ch)
			}

			// Three changes at once: Google notifies three times, one pull
			// follows.
			g.ResetCalendarRequests()
			start := time.Now().Add(50 * time.Hour).UTC().Truncate(time.Hour)
			for i, id := range []string{"dentist1", "dentist2", "dentist3"} {
				g.PutEvent(googleCalendar, googleEvent(id, start.Add(time.Duration(i)*2*time.Hour), time.Hour))
			}
			from, to := start.Add(-time.Hour).Format(time.RFC3339), start.Add(24*time.Hour).Format(time.RFC3339)
			var busy struct{ Items []struct{ Start, End string } }
			waitFor(t, 15*time.Second, "busy time from the notified pull", func() bool {
				st.do("GET", "/v1/subjects/anna/busy?from="+from+"&to="+to, nil, &busy)
				return len(busy.Items) == 3
			})
			g.WaitNotifications()
			time.Sleep(3 * time.Second) // a second pull would come within the debounce period
			var delivered []int
			for _, d := range g.Deliveries() {
				if d.State == "exists" {
					delivered = append(delivered, d.Status)
				}
			}
			if len(delivered) != 3 || slices.ContainsFunc(delivered, func(s int) bool { return s != http.StatusOK }) {
				t.Errorf("notifications answered %v, want three 200s", delivered)
			}
			if n := incrementalLists(g); n != 1 {
				t.Errorf("%d pulls after three notifications, want 1", n)
			}

			// An appointment reaches Google under its deterministic id.
			appt := map[string]any{
				"subject_ids": []string{"anna"}, "time_zone": "Europe/Berlin", "title": "Erstgespräch",
				"start": start.Add(8 * time.Hour).Format(time.RFC3339), "end": start.Add(9 * time.Hour).Format(time.RFC3339),
			}
			if code := st.do("PUT", "/v1/appointments/apt-g1", appt, nil); code != http.StatusCreated {
				t.Fatalf("PUT appointment: %d", code)
			}
			copyID := googleremote.EventID(st.tenant.ID, "apt-g1")
			waitFor(t, 15*time.Second, "our copy at Google", func() bool {
				ev, ok := g.Event(googleCalendar, copyID)
				return ok && ev.Status != "cancelled" && ev.Start.TimeZone == "Europe/Berlin"
			})

			// A forged notification is refused and changes nothing.
			req, _ := http.NewRequest("POST", st.url+"/webhooks/google", nil)
			req.Header.Set("X-Goog-Channel-ID", ch.ID)
			req.Header.Set("X-Goog-Channel-Token", "guessed")
			req.Header.Set("X-Goog-Resource-State", "exists")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("forged notification: %d, want 403", resp.StatusCode)
			}

			// Revocation: channel stopped, copy deleted, grant revoked.
			if code := st.do("POST", "/v1/connections/"+connID+"/revoke", map[string]any{"reason": "customer asked"}, nil); code != http.StatusAccepted && code != http.StatusOK {
				t.Fatalf("revoke: %d", code)
			}
			waitFor(t, 15*time.Second, "revocation finished", func() bool {
				return st.connection(connID).State == store.ConnRevoked
			})
			if stopped := g.StoppedChannels(); !slices.Contains(stopped, ch.ID) {
				t.Errorf("stopped channels %v, want %s", stopped, ch.ID)
			}
			if len(g.Channels(googleCalendar)) != 0 {
				t.Error("a channel is still open")
			}
			if ev, _ := g.Event(googleCalendar, copyID); ev.Status != "cancelled" {
				t.Error("our copy survived the revocation")
			}
			if live := g.LiveEvents(googleCalendar); len(live) != 3 {
				t.Errorf("%d events left at Google, want the customer's 3", len(live))
			}
			if g.RevokeCalls() == 0 {
				t.Error("the grant was not revoked")
			}
		})
	}
}

// TestGoogleConnectionStates: invalid_grant marks the connection broken
// (no retry storm), a used-up quota pauses it.
func TestGoogleConnectionStates(t *testing.T) {
	t.Parallel()
	g := googletest.Start(t)
	g.AddCalendar(googleCalendar)
	st := newStack(t, store.DialectSQLite, withGoogle(g))
	connID := connectGoogle(t, st, g, "anna", "calendar.read.busy", "calendar.write")
	waitFor(t, 15*time.Second, "the first sync", func() bool { return !st.connection(connID).LastSyncAt.IsZero() })

	g.FailCalendar(1, googletest.QuotaExceeded)
	if code := st.do("POST", "/v1/connections/"+connID+"/sync", map[string]any{}, nil); code != http.StatusAccepted {
		t.Fatalf("sync: %d", code)
	}
	waitFor(t, 15*time.Second, "paused for the quota", func() bool {
		c := st.connection(connID)
		return c.State == store.ConnPaused && c.StateReason == "quota exceeded" && c.PausedUntil.After(time.Now().Add(time.Hour))
	})

	// Back to active (as the pause ending would), then the user removes
	// termind's access in their Google account.
	if _, err := st.store.SetConnectionState(t.Context(), connID, store.ConnActive, "", "test"); err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for _, r := range g.CalendarRequests() {
		tokens = append(tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	}
	for _, tok := range tokens {
		g.RevokeGrant(tok)
	}
	g.ResetCalendarRequests()
	if code := st.do("POST", "/v1/connections/"+connID+"/sync", map[string]any{}, nil); code != http.StatusAccepted {
		t.Fatalf("sync: %d", code)
	}
	waitFor(t, 15*time.Second, "broken after invalid_grant", func() bool {
		c := st.connection(connID)
		return c.State == store.ConnBroken && c.StateReason == "credentials rejected"
	})
	time.Sleep(time.Second)
	if n := len(g.CalendarRequests()); n > 2 {
		t.Errorf("%d API calls after the grant ended, want at most a refused call and its retry with a refreshed token", n)
	}
}

// TestGoogleAndCalDAVForOneSubject: one person with a Google and a CalDAV
// (Radicale) calendar — an appointment appears in both, and busy time from
// both shows in the busy API, our copies in neither.
func TestGoogleAndCalDAVForOneSubject(t *testing.T) {
	t.Parallel()
	g := googletest.Start(t)
	g.AddCalendar(googleCalendar)
	rad := caldavtest.StartRadicale(t)
	st := newStack(t, store.DialectPostgres, withGoogle(g), func(c *config.Config) { c.CalDAVAllowPrivate = true })
	googleID := connectGoogle(t, st, g, "anna", "calendar.read.busy", "calendar.write")
	calURL := rad.MakeCalendar(t, "alice", "Praxis")
	var dav struct{ ID string }
	if code := st.do("POST", "/v1/connections/caldav", map[string]any{
		"subject_id": "anna", "url": calURL, "username": "alice", "password": rad.Users["alice"],
		"privacy": "busy", "direction": "both",
		"consent": map[string]any{"purposes": []string{"calendar.read.busy", "calendar.write"}, "policy_version": "2026-01"},
	}, &dav); code != http.StatusCreated {
		t.Fatalf("connect caldav: %d", code)
	}

	start := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Hour)
	appt := map[string]any{
		"subject_ids": []string{"anna"}, "time_zone": "Europe/Berlin", "title": "Kontrolle",
		"start": start.Format(time.RFC3339), "end": start.Add(30 * time.Minute).Format(time.RFC3339),
	}
	if code := st.do("PUT", "/v1/appointments/apt-two", appt, nil); code != http.StatusCreated {
		t.Fatalf("PUT appointment: %d", code)
	}
	copyURL := rad.EventURL(t, calURL, "termind-apt-two")
	waitFor(t, 20*time.Second, "the copy in both calendars", func() bool {
		ev, ok := g.Event(googleCalendar, googleremote.EventID(st.tenant.ID, "apt-two"))
		status, _, _ := rad.Do(t, "alice", "GET", copyURL, nil, "")
		return ok && ev.Status != "cancelled" && status == http.StatusOK
	})

	// One busy block in each calendar.
	inGoogle, inDAV := start.Add(2*time.Hour), start.Add(5*time.Hour)
	g.PutEvent(googleCalendar, googleEvent("gym1", inGoogle, time.Hour))
	rad.PutEvent(t, "alice", calURL, "dentist", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"+
		"UID:dentist@example\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:"+inDAV.Format("20060102T150405Z")+
		"\r\nDTEND:"+inDAV.Add(time.Hour).Format("20060102T150405Z")+"\r\nSUMMARY:Zahnarzt\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	for _, id := range []string{googleID, dav.ID} {
		if code := st.do("POST", "/v1/connections/"+id+"/sync", map[string]any{}, nil); code != http.StatusAccepted {
			t.Fatalf("sync %s: %d", id, code)
		}
	}
	from, to := start.Add(-time.Hour).Format(time.RFC3339), start.Add(24*time.Hour).Format(time.RFC3339)
	var busy struct{ Items []struct{ Start, End string } }
	waitFor(t, 20*time.Second, "busy time from both calendars", func() bool {
		st.do("GET", "/v1/subjects/anna/busy?from="+from+"&to="+to, nil, &busy)
		return len(busy.Items) == 2
	})
	if busy.Items[0].Start != inGoogle.Format(time.RFC3339) || busy.Items[1].Start != inDAV.Format(time.RFC3339) {
		t.Errorf("busy %+v, want the Google block at %s and the CalDAV one at %s (our copies never)", busy.Items, inGoogle.Format(time.RFC3339), inDAV.Format(time.RFC3339))
	}
}
