package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/termind/termind/internal/store"
	calsync "github.com/termind/termind/internal/sync"
)

// blockQueue is recordingQueue with calendar:block.
type blockQueue struct {
	*recordingQueue
	mu     sync.Mutex
	blocks []string
}

func (q *blockQueue) EnqueueBlock(_ context.Context, connectionID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.blocks = append(q.blocks, connectionID)
	return nil
}

func (q *blockQueue) enqueued() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.blocks)
}

// conn stores a connection of subject cust-1 with the given direction
// and purposes granted on it.
func (e *testEnv) conn(direction string, purposes ...string) store.Connection {
	e.t.Helper()
	var consents []store.Consent
	for _, p := range purposes {
		consents = append(consents, store.Consent{Purpose: p, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"})
	}
	c, err := e.store.CreateConnection(e.ctx(), store.Connection{TenantID: e.tenant.ID, SubjectID: "cust-1", Provider: store.ProviderCalDAV,
		CalendarURL: "https://dav.example.org/cust-1/", Privacy: store.PrivacyBusy, Direction: direction}, []byte(`{}`), consents,
		store.AuditEntry{Actor: "test"})
	if err != nil {
		e.t.Fatalf("create connection: %v", err)
	}
	return c
}

func TestPatchConnectionBlocking(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		bq := &blockQueue{recordingQueue: &recordingQueue{}}
		e := newEnv(t, dialect, func(_ *Config, d *Deps) { d.Queue = bq })
		ingest, ingestKey := e.ingestKey()
		both := e.conn(store.DirectionBoth, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)

		w := e.do("PATCH", "/v1/connections/"+both.ID, ingest, `{"blocking": true}`)
		if w.Code != http.StatusOK {
			t.Fatalf("enable: %d %s", w.Code, w.Body)
		}
		var v connectionView
		decodeBody(t, w, &v)
		if !v.Blocking || v.ID != both.ID || v.Sync == nil {
			t.Errorf("view after enabling: %+v", v)
		}
		if got, _ := e.store.GetConnection(e.ctx(), e.tenant.ID, both.ID); !got.Blocking {
			t.Error("blocking not stored")
		}
		if a := e.findAudit("cust-1", "connection.blocking"); a.Actor != "api_key:"+ingestKey.ID || a.TargetID != both.ID || a.Detail != "blocking=true" {
			t.Errorf("audit %+v", a)
		}
		if got := bq.enqueued(); !slices.Equal(got, []string{both.ID}) {
			t.Errorf("blocks enqueued %v, want one for %s", got, both.ID)
		}
		// The same again: no change, nothing enqueued.
		if w := e.do("PATCH", "/v1/connections/"+both.ID, ingest, `{"blocking": true}`); w.Code != http.StatusOK {
			t.Errorf("enable again: %d %s", w.Code, w.Body)
		}
		if got := bq.enqueued(); len(got) != 1 {
			t.Errorf("blocks enqueued %v after a no-op", got)
		}
		// Off: the blockers must go, so a block is enqueued too.
		w = e.do("PATCH", "/v1/connections/"+both.ID, ingest, `{"blocking": false}`)
		decodeBody(t, w, &v)
		if w.Code != http.StatusOK || v.Blocking {
			t.Errorf("disable: %d %+v", w.Code, v)
		}
		if got := bq.enqueued(); !slices.Equal(got, []string{both.ID, both.ID}) {
			t.Errorf("blocks enqueued %v", got)
		}
		w = e.do("GET", "/v1/connections/"+both.ID, ingest, "")
		if !strings.Contains(w.Body.String(), `"blocking":false`) {
			t.Errorf("GET does not show blocking: %s", w.Body)
		}

		importOnly := e.conn(store.DirectionImport, store.ConsentCalendarReadBusy)
		withdrawn := e.conn(store.DirectionExport, store.ConsentCalendarWrite)
		if _, err := e.store.RecordConsent(e.ctx(), store.Consent{TenantID: e.tenant.ID, SubjectID: "cust-1", Purpose: store.ConsentCalendarWrite,
			Decision: store.DecisionRevoked, PolicyVersion: "v1", Actor: "test", ConnectionID: withdrawn.ID}); err != nil {
			t.Fatal(err)
		}
		revoking := e.conn(store.DirectionBoth, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)
		if _, err := e.store.BeginRevocation(e.ctx(), e.tenant.ID, revoking.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		otherEnv := newEnv(t, dialect)
		foreign := otherEnv.conn(store.DirectionBoth, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)

		for _, c := range []struct {
			name, id, body string
			status         int
			field          string
		}{
			{"no field", both.ID, `{}`, http.StatusUnprocessableEntity, "blocking"},
			{"null", both.ID, `{"blocking": null}`, http.StatusUnprocessableEntity, "blocking"},
			{"not a bool", both.ID, `{"blocking": "yes"}`, http.StatusBadRequest, "blocking"},
			{"unknown field", both.ID, `{"blocking": true, "privacy": "full"}`, http.StatusBadRequest, ""},
			{"no body", both.ID, ``, http.StatusBadRequest, ""},
			{"import-only", importOnly.ID, `{"blocking": true}`, http.StatusUnprocessableEntity, "blocking"},
			{"calendar.write withdrawn", withdrawn.ID, `{"blocking": true}`, http.StatusUnprocessableEntity, "blocking"},
			{"revoking", revoking.ID, `{"blocking": true}`, http.StatusConflict, ""},
			{"unknown", "con_nope", `{"blocking": true}`, http.StatusNotFound, ""},
			{"another tenant's", foreign.ID, `{"blocking": true}`, http.StatusNotFound, ""},
		} {
			w := e.do("PATCH", "/v1/connections/"+c.id, ingest, c.body)
			if w.Code != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.status)
				continue
			}
			if c.field != "" && !strings.Contains(w.Body.String(), `"field":"`+c.field+`"`) {
				t.Errorf("%s: %s does not name the field %s", c.name, w.Body, c.field)
			}
		}
		// Nothing changed by the refusals.
		for _, id := range []string{importOnly.ID, withdrawn.ID, revoking.ID} {
			if got, _ := e.store.GetConnection(e.ctx(), e.tenant.ID, id); got.Blocking {
				t.Errorf("refused request stored blocking on %s", id)
			}
		}
		if got := bq.enqueued(); len(got) != 2 {
			t.Errorf("refusals enqueued blocks: %v", got)
		}
		// Turning it off needs no consent: that is how blockers go.
		if w := e.do("PATCH", "/v1/connections/"+withdrawn.ID, ingest, `{"blocking": false}`); w.Code != http.StatusOK {
			t.Errorf("disable on a connection without calendar.write: %d %s", w.Code, w.Body)
		}
	})
}

func TestConnectCalDAVBlockingNeedsExport(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, withCalDAV(privateConnector()))
		body := withConsent(with(with(caldavBody("https://dav.invalid/"), "direction", "import"), "blocking", true), "calendar.read.busy")
		w := e.do("POST", "/v1/connections/caldav", e.token, mustJSON(t, body))
		if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), `"field":"blocking"`) {
			t.Errorf("blocking on an import-only connection: %d %s", w.Code, w.Body)
		}
		if n := e.countRows("connections"); n != 0 {
			t.Errorf("%d connections stored", n)
		}
	})
}

func TestBlockerAppointmentIDsReserved(t *testing.T) {
	t.Parallel()
	if !calsync.IsBlocker(reservedAppointmentPrefix + "x") {
		t.Fatalf("the reserved prefix %q is not the sync engine's blocker prefix", reservedAppointmentPrefix)
	}
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		body := `{"subject_ids": ["cust-1"], "start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z",
			"time_zone": "Europe/Berlin", "title": "Check-up"}`
		w := e.do("PUT", "/v1/appointments/blocker:abc", e.token, body)
		if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), `"field":"id"`) {
			t.Errorf("appointment id blocker:abc: %d %s", w.Code, w.Body)
		}
		if n := e.countRows("appointments"); n != 0 {
			t.Errorf("%d appointments stored", n)
		}
	})
}

// The Google authorization carries blocking through the consent screen to
// the connection; an import-only request with blocking is refused first.
func TestGoogleConnectWithBlocking(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		g := newGoogleEnv(t, dialect, nil)
		importOnly := withConsent(with(with(authorizeBody("cust-b"), "direction", "import"), "blocking", true), "calendar.read.busy")
		wantError(t, g.do("POST", "/v1/connections/google/authorize", g.token, mustJSON(t, importOnly)),
			http.StatusUnprocessableEntity, "invalid_field", "blocking")
		g.wantNothingStored(t)

		authURL := g.authorize(t, g.token, with(authorizeBody("cust-b"), "blocking", true))
		q := wantRedirect(t, g.callback(t, g.screen(t, authURL, false)), "connected")
		c, err := g.store.GetConnection(g.ctx(), g.tenant.ID, q.Get("connection_id"))
		if err != nil || !c.Blocking {
			t.Errorf("connection after the callback: blocking %v, %v; want true", c.Blocking, err)
		}
	})
}
