package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestGooglePushNotifications(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, dialect)
			conn, err := e.store.CreateConnection(t.Context(), store.Connection{TenantID: e.tenant.ID, SubjectID: "anna",
				Provider: store.ProviderGoogle, CalendarURL: "primary", Privacy: store.PrivacyBusy, Direction: store.DirectionImport},
				[]byte(`{}`), nil, store.AuditEntry{Actor: "test"})
			if err != nil {
				t.Fatal(err)
			}
			const token = "channel-token-of-anna"
			if err := e.store.AddWatchChannel(t.Context(), store.WatchChannel{ID: "tmc_1", ConnectionID: conn.ID, ResourceID: "res-1",
				TokenHash: store.HashChannelToken(token), ExpiresAt: e.now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			notify := func(channel, tok, state string) *httptest.ResponseRecorder {
				r := httptest.NewRequest("POST", "/webhooks/google", nil)
				if channel != "" {
					r.Header.Set("X-Goog-Channel-ID", channel)
				}
				if tok != "" {
					r.Header.Set("X-Goog-Channel-Token", tok)
				}
				if state != "" {
					r.Header.Set("X-Goog-Resource-State", state)
				}
				w := httptest.NewRecorder()
				e.handler.ServeHTTP(w, r)
				return w
			}
			tests := []struct {
				name                  string
				channel, token, state string
				status                int
				pulls                 int
			}{
				{"no channel id", "", token, "exists", http.StatusBadRequest, 0},
				{"no state", "tmc_1", token, "", http.StatusBadRequest, 0},
				{"unknown channel", "tmc_2", token, "exists", http.StatusNotFound, 0},
				{"wrong token", "tmc_1", "channel-token-of-someone", "exists", http.StatusForbidden, 0},
				{"no token", "tmc_1", "", "exists", http.StatusForbidden, 0},
				{"handshake", "tmc_1", token, "sync", http.StatusOK, 0},
				{"change", "tmc_1", token, "exists", http.StatusOK, 1},
			}
			for _, tc := range tests {
				before := len(e.queue.notices())
				if w := notify(tc.channel, tc.token, tc.state); w.Code != tc.status {
					t.Errorf("%s: status %d, want %d (%s)", tc.name, w.Code, tc.status, w.Body)
				}
				if got := len(e.queue.notices()) - before; got != tc.pulls {
					t.Errorf("%s: %d pulls queued, want %d", tc.name, got, tc.pulls)
				}
			}
			if got := e.queue.notices(); !slices.Equal(got, []string{conn.ID}) {
				t.Errorf("pulls for %v", got)
			}

			// An expired channel is unknown.
			e.now = e.now.Add(2 * time.Hour)
			if w := notify("tmc_1", token, "exists"); w.Code != http.StatusNotFound {
				t.Errorf("expired channel: %d, want 404", w.Code)
			}
		})
	}
}
