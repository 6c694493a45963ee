package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/connectors/google"
)

// TestGoogleStateReplayAndSwap attacks the OAuth callback beyond simple
// tampering (see TestGoogleCallbackBadState): a state replayed by many
// browsers at once, a state signed with the real key whose nonce was never
// issued, one flow's state with another flow's code, and a state used
// again after a refusal. Each is refused or fails without storing a
// connection it should not.
func TestGoogleStateReplayAndSwap(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		t.Run("concurrent replay connects once", func(t *testing.T) {
			g := newGoogleEnv(t, dialect, nil)
			back := g.screen(t, g.authorize(t, g.token, authorizeBody("cust-r")), false)
			u, _ := url.Parse(back)
			const n = 8
			codes := make([]int, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := httptest.NewRequest("GET", u.RequestURI(), nil)
					w := httptest.NewRecorder()
					g.handler.ServeHTTP(w, r)
					codes[i] = w.Code
				}()
			}
			wg.Wait()
			connected := 0
			for _, c := range codes {
				switch c {
				case http.StatusSeeOther:
					connected++
				case http.StatusBadRequest:
				default:
					t.Errorf("a replayed callback answered %d", c)
				}
			}
			if connected != 1 || g.countRows("connections") != 1 {
				t.Errorf("%d callbacks connected, %d connections stored; want exactly one", connected, g.countRows("connections"))
			}
		})

		t.Run("real key, nonce never issued", func(t *testing.T) {
			g := newGoogleEnv(t, dialect, nil)
			forged, err := google.SignState(g.stateKey, google.State{
				TenantID: g.tenant.ID, SubjectID: "cust-n", Purposes: []string{"calendar.read.busy"},
				RedirectAfter: platformAfter, Expires: g.now.Add(10 * time.Minute),
			})
			if err != nil {
				t.Fatal(err)
			}
			q := url.Values{"state": {forged}, "code": {"any-code"}}
			wantError(t, g.do("GET", callbackPath+"?"+q.Encode(), "", ""), http.StatusBadRequest, "invalid_state", "state")
			g.wantNothingStored(t)
		})

		t.Run("one flow's state with another flow's code", func(t *testing.T) {
			g := newGoogleEnv(t, dialect, nil)
			backA, _ := url.Parse(g.screen(t, g.authorize(t, g.token, authorizeBody("cust-a")), false))
			backB, _ := url.Parse(g.screen(t, g.authorize(t, g.token, authorizeBody("cust-b")), false))
			before := g.counts()
			q := url.Values{"state": {backA.Query().Get("state")}, "code": {backB.Query().Get("code")}}
			w := g.do("GET", callbackPath+"?"+q.Encode(), "", "")
			if w.Code == http.StatusSeeOther {
				loc, _ := url.Parse(w.Header().Get("Location"))
				if loc.Query().Get("status") == "connected" {
					t.Fatalf("a swapped code connected: %s", w.Header().Get("Location"))
				}
			}
			if got := g.countRows("connections"); got != before["connections"] {
				t.Errorf("connections %d → %d after a swapped code", before["connections"], got)
			}
			// B's own flow still works: its code was not redeemed by A's verifier.
			wantRedirect(t, g.callback(t, backB.String()), "connected")
		})

		t.Run("state used again after a refusal", func(t *testing.T) {
			g := newGoogleEnv(t, dialect, nil)
			authURL := g.authorize(t, g.token, authorizeBody("cust-d"))
			denied := g.screen(t, authURL, true)
			wantRedirect(t, g.callback(t, denied), "denied")
			before := g.counts()
			u, _ := url.Parse(denied)
			q := url.Values{"state": {u.Query().Get("state")}, "code": {"a-code-from-elsewhere"}}
			wantError(t, g.do("GET", callbackPath+"?"+q.Encode(), "", ""), http.StatusBadRequest, "invalid_state", "state")
			g.wantCounts(t, before)
		})
	})
}
