package workers

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	gcal "google.golang.org/api/calendar/v3"

	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/connectors/google/googletest"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/internal/sync/googleremote"
)

// watchEnv is a Google connection on the fake, a webhook receiver that
// records what reaches it, and a watcher on a clock the test moves.
type watchEnv struct {
	*revokeEnv
	fake    *googletest.Server
	conn    store.Connection
	watcher *Watcher
	now     time.Time
	hook    *httptest.Server

	mu    sync.Mutex
	heard []string // channel ids of notifications received
}

func newWatchEnv(t *testing.T, dialect string) *watchEnv {
	t.Helper()
	e := &watchEnv{revokeEnv: newRevokeEnv(t, dialect), fake: googletest.Start(t), now: time.Now()}
	e.fake.AddCalendar("anna@example.com")
	e.hook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.heard = append(e.heard, r.Header.Get("X-Goog-Channel-ID"))
		e.mu.Unlock()
	}))
	t.Cleanup(e.hook.Close)
	g := e.fake.NewGrant(google.ScopeEvents)
	e.conn = e.connect(store.Connection{Provider: store.ProviderGoogle, CalendarURL: "anna@example.com"},
		map[string]any{"refresh_token": g.RefreshToken, "access_token": g.AccessToken, "expiry": g.Expiry})
	oauth, err := google.NewOAuth(google.OAuthConfig{ClientID: e.fake.ClientID(), ClientSecret: e.fake.ClientSecret(),
		RedirectURL: "http://127.0.0.1:1/cb", AuthURL: e.fake.AuthURL(), TokenURL: e.fake.TokenURL(),
		RevokeURL: e.fake.RevokeURL(), HTTPClient: e.fake.Client()})
	if err != nil {
		t.Fatal(err)
	}
	rc := googleremote.Config{OAuth: oauth, Store: e.store, APIURL: e.fake.APIURL(), HTTPClient: e.fake.Client()}
	e.watcher = NewWatcher(WatcherConfig{
		Store: e.store,
		Calendars: func(conn store.Connection, creds []byte) (ChannelOpener, error) {
			r, err := googleremote.New(rc, conn, creds)
			if err != nil {
				return nil, err
			}
			return r.Calendar(), nil
		},
		Address: e.hook.URL + "/webhooks/google",
		TTL:     48 * time.Hour, RenewBefore: 12 * time.Hour,
		Now: func() time.Time { return e.now },
	})
	return e
}

func (e *watchEnv) channels() []store.WatchChannel {
	e.t.Helper()
	chans, err := e.store.ListWatchChannels(testCtx(e.t), e.conn.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return chans
}

func TestWatchRenewsBeforeExpiryWithOverlap(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			e := newWatchEnv(t, dialect)
			ctx := testCtx(t)

			due, err := e.store.WatchRenewalsDue(ctx, store.ProviderGoogle, e.now.Add(12*time.Hour), 0)
			if err != nil || !slices.Contains(due, e.conn.ID) {
				t.Fatalf("renewals due %v, %v: a connection without a channel needs one", due, err)
			}
			if err := e.watcher.Renew(ctx, e.conn.ID); err != nil {
				t.Fatalf("open: %v", err)
			}
			first := e.channels()
			live := e.fake.Channels("anna@example.com")
			if len(first) != 1 || len(live) != 1 || live[0].ID != first[0].ID || live[0].ResourceID != first[0].ResourceID {
				t.Fatalf("stored %+v, open at Google %+v", first, live)
			}
			// The token Google holds verifies; its hash is all we keep.
			if got, err := e.store.VerifyWatchChannel(ctx, live[0].ID, live[0].Token, e.now); err != nil || got != e.conn.ID {
				t.Errorf("verify: %q, %v", got, err)
			}
			if first[0].TokenHash == live[0].Token {
				t.Error("the channel token is stored in plain text")
			}

			// Fresh: nothing to do, nothing due.
			if err := e.watcher.Renew(ctx, e.conn.ID); err != nil || len(e.fake.Channels("anna@example.com")) != 1 {
				t.Fatalf("renew of a fresh channel: %v, %d open", err, len(e.fake.Channels("anna@example.com")))
			}
			if due, _ := e.store.WatchRenewalsDue(ctx, store.ProviderGoogle, e.now.Add(12*time.Hour), 0); len(due) != 0 {
				t.Errorf("due %v with a fresh channel", due)
			}

			// 40 hours on, the channel expires within RenewBefore: a new one
			// is opened, then the old one stopped.
			e.now = e.now.Add(40 * time.Hour)
			if err := e.watcher.Renew(ctx, e.conn.ID); err != nil {
				t.Fatalf("renew: %v", err)
			}
			second := e.channels()
			if len(second) != 1 || second[0].ID == first[0].ID || !second[0].ExpiresAt.After(first[0].ExpiresAt) {
				t.Fatalf("after renewal %+v (was %+v)", second, first)
			}
			if stopped := e.fake.StoppedChannels(); !slices.Equal(stopped, []string{first[0].ID}) {
				t.Errorf("stopped %v, want the old channel", stopped)
			}
			var opened, stoppedAt int
			for i, r := range e.fake.CalendarRequests() {
				switch {
				case r.Method == http.MethodPost && r.Path == "/calendar/v3/calendars/anna@example.com/events/watch":
					opened = i
				case r.Method == http.MethodPost && r.Path == "/calendar/v3/channels/stop":
					stoppedAt = i
				}
			}
			if opened > stoppedAt {
				t.Error("the old channel was stopped before the new one opened")
			}

			// Changes reach the webhook through the new channel only.
			e.fake.PutEvent("anna@example.com", userAllDay("x1"))
			e.fake.WaitNotifications()
			e.mu.Lock()
			heard := slices.Clone(e.heard)
			e.mu.Unlock()
			if len(heard) == 0 || heard[len(heard)-1] != second[0].ID {
				t.Errorf("notifications from %v, want the last from %s", heard, second[0].ID)
			}

			// Revocation stops it.
			creds, err := e.store.ConnectionCredentials(ctx, e.conn.ID)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := e.watcher.StopAll(ctx, e.conn, creds); err != nil || n != 1 {
				t.Fatalf("stop all: %d, %v", n, err)
			}
			if len(e.fake.Channels("anna@example.com")) != 0 || len(e.channels()) != 0 {
				t.Error("a channel survived StopAll")
			}
		})
	}
}

func userAllDay(id string) *gcal.Event {
	return &gcal.Event{Id: id, Summary: "x", Start: &gcal.EventDateTime{Date: "2026-12-01"}, End: &gcal.EventDateTime{Date: "2026-12-02"}}
}
