package workers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	calsync "github.com/termind/termind/internal/sync"
	"github.com/termind/termind/internal/sync/caldavremote"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/queue/queuetest"
)

func newBlockingSyncer(t *testing.T, e *revokeEnv, q BlockEnqueuer) *Syncer {
	t.Helper()
	hc := caldav.NewHTTPClient(caldav.Options{AllowPrivate: true, Timeout: 10 * time.Second})
	eng := calsync.New(calsync.Config{Store: e.store, Logger: testLogger(t),
		Remotes: map[string]calsync.RemoteFactory{store.ProviderCalDAV: caldavremote.Factory(hc, testLogger(t))}})
	return NewSyncer(SyncerConfig{Engine: eng, Store: e.store, Logger: testLogger(t),
		Blocks: eng, Peers: e.store, BlockQueue: q})
}

func (e *revokeEnv) connectBlocking(calURL, password string) store.Connection {
	e.t.Helper()
	return e.connect(store.Connection{Provider: store.ProviderCalDAV, CalendarURL: calURL, CalendarName: "Private", Blocking: true},
		caldavCredentials{Username: "alice", Password: password})
}

func blockTask(t *testing.T, connID string) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(queue.ConnectionPayload{ConnectionID: connID})
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(queue.TypeCalendarBlock, b)
}

// A pull of one calendar that imports a user's event sets off, through
// the queue, the block of the subject's other, blocking calendar.
func TestPullSetsOffBlocks(t *testing.T) {
	t.Parallel()
	redisURL := queuetest.RedisURL(t)
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			rad := caldavtest.StartRadicale(t)
			office := rad.MakeCalendar(t, "alice", "Office")
			private := rad.MakeCalendar(t, "alice", "Private")
			a := e.connectCalDAV(office, "secret", false)
			b := e.connectBlocking(private, "secret")

			qn := "block-" + dialect
			r, client := openQueue(t, redisURL, qn)
			syncer := newBlockingSyncer(t, e, client)
			srv := queue.NewServer(r, queue.CalendarQueue(qn), 2, testLogger(t))
			mux := asynq.NewServeMux()
			RegisterSync(mux, syncer)
			if err := srv.Start(mux); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Shutdown)

			start := time.Now().Add(72 * time.Hour).Truncate(time.Hour)
			rad.PutEvent(t, "alice", office, "dentist", syncUserEvent("dentist@example.com", start))
			if err := client.EnqueuePull(ctx, a.ID, false); err != nil {
				t.Fatal(err)
			}
			blocker := private + caldav.EventName("blocker:"+calsync.BlockerKey(a.ID, "dentist@example.com", ""))
			waitFor(t, "the blocker in the other calendar", func() bool {
				code, _, body := rad.Do(t, "alice", http.MethodGet, blocker, nil, "")
				return code == http.StatusOK && strings.Contains(body, "SUMMARY:Busy") && !strings.Contains(body, "Dentist")
			})

			// The source goes; B's daily full pull removes its blocker
			// even without a trigger.
			rad.DeleteEvent(t, "alice", office, "dentist")
			if _, err := syncer.cfg.Engine.Pull(ctx, a.ID, false); err != nil {
				t.Fatal(err)
			}
			if err := syncer.ProcessPull(ctx, pullTask(t, b.ID, true)); err != nil {
				t.Fatalf("full pull of B: %v", err)
			}
			if code, _, _ := rad.Do(t, "alice", http.MethodGet, blocker, nil, ""); code != http.StatusNotFound {
				t.Errorf("blocker after the full pull: GET %d, want 404", code)
			}
		})
	}
}

func TestBlockHandlerOutcomes(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			rad := caldavtest.StartRadicale(t)
			office := rad.MakeCalendar(t, "alice", "Office")
			private := rad.MakeCalendar(t, "alice", "Private")
			a := e.connectCalDAV(office, "secret", false)
			enq := &countingBlocks{}
			syncer := newBlockingSyncer(t, e, enq)
			start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
			rad.PutEvent(t, "alice", office, "x", syncUserEvent("x@example.com", start))
			if err := syncer.ProcessPull(ctx, pullTask(t, a.ID, false)); err != nil {
				t.Fatal(err)
			}

			// A wrong password: broken, no retries.
			wrong := e.connectBlocking(private, "not-the-password")
			if err := syncer.ProcessBlock(ctx, blockTask(t, wrong.ID)); err != nil {
				t.Fatalf("block with rejected credentials: %v, want nil", err)
			}
			if c, err := e.store.GetConnectionByID(ctx, wrong.ID); err != nil || c.State != store.ConnBroken {
				t.Errorf("connection %s, %v; want broken", c.State, err)
			}
			// Not active any more: skipped.
			if err := syncer.ProcessBlock(ctx, blockTask(t, wrong.ID)); err != nil {
				t.Errorf("block of a broken connection: %v", err)
			}

			// The server down: retried.
			good := e.connectBlocking(private, "secret")
			rad.Stop()
			err := syncer.ProcessBlock(ctx, blockTask(t, good.ID))
			if err == nil || !errors.Is(err, calsync.ErrUnavailable) || errors.Is(err, asynq.SkipRetry) {
				t.Errorf("block of an unreachable calendar: %v, want a retryable ErrUnavailable", err)
			}
			rad.Start()
			if err := syncer.ProcessBlock(ctx, blockTask(t, good.ID)); err != nil {
				t.Errorf("block after the server came back: %v", err)
			}
			if ls, _ := e.store.ListLinks(ctx, good.ID, store.LinkBlocker); len(ls) != 1 {
				t.Errorf("%d blocker links, want 1", len(ls))
			}

			// A pull that imports sets off the blocks of the active
			// blocking peers only (not the broken one, not itself); one
			// that changes nothing sets off none.
			rad.PutEvent(t, "alice", office, "y", syncUserEvent("y@example.com", start.Add(2*time.Hour)))
			if err := syncer.ProcessPull(ctx, pullTask(t, a.ID, false)); err != nil {
				t.Fatal(err)
			}
			if err := syncer.ProcessPull(ctx, pullTask(t, a.ID, false)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(enq.ids, []string{good.ID}) {
				t.Errorf("blocks enqueued for %v, want only %s", enq.ids, good.ID)
			}

			if err := syncer.ProcessBlock(ctx, asynq.NewTask(queue.TypeCalendarBlock, []byte(`{}`))); !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("malformed block: %v", err)
			}
		})
	}
}

// countingBlocks records enqueued blocks.
type countingBlocks struct{ ids []string }

func (c *countingBlocks) EnqueueBlock(_ context.Context, id string) error {
	c.ids = append(c.ids, id)
	return nil
}

// Revoking a blocking connection removes its blockers from the calendar
// (they carry our marker) and their links; revoking the source of the
// busy time sets off the blocks that take its blockers away elsewhere.
func TestRevokeAndBlockers(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			rad := caldavtest.StartRadicale(t)
			office := rad.MakeCalendar(t, "alice", "Office")
			private := rad.MakeCalendar(t, "alice", "Private")
			family := rad.MakeCalendar(t, "alice", "Family")
			a := e.connectCalDAV(office, "secret", false)
			b := e.connectBlocking(private, "secret")
			c := e.connectBlocking(family, "secret")
			enq := &countingBlocks{}
			syncer := newBlockingSyncer(t, e, enq)
			start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
			rad.PutEvent(t, "alice", office, "x", syncUserEvent("x@example.com", start))
			if err := syncer.ProcessPull(ctx, pullTask(t, a.ID, false)); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{b.ID, c.ID} {
				if err := syncer.ProcessBlock(ctx, blockTask(t, id)); err != nil {
					t.Fatal(err)
				}
			}
			name := caldav.EventName("blocker:" + calsync.BlockerKey(a.ID, "x@example.com", ""))
			get := func(cal string) int {
				code, _, _ := rad.Do(t, "alice", http.MethodGet, cal+name, nil, "")
				return code
			}
			if get(private) != http.StatusOK || get(family) != http.StatusOK {
				t.Fatalf("blockers before revoking: %d %d", get(private), get(family))
			}

			enq.ids = nil
			rv := e.revoker(func(cfg *RevokerConfig) { cfg.Peers, cfg.BlockQueue = e.store, enq })
			e.begin(b.ID)
			if err := rv.ProcessTask(ctx, revokeTask(t, b.ID)); err != nil {
				t.Fatalf("revoke B: %v", err)
			}
			if code := get(private); code != http.StatusNotFound {
				t.Errorf("B's blocker after revoking B: GET %d", code)
			}
			if ls, _ := e.store.ListLinks(ctx, b.ID, store.LinkBlocker); len(ls) != 0 {
				t.Errorf("%d blocker links of B left", len(ls))
			}
			if !slices.Equal(enq.ids, []string{c.ID}) {
				t.Errorf("revoking B enqueued blocks of %v, want C's", enq.ids)
			}

			// The source revoked: C's block takes its blocker away.
			enq.ids = nil
			e.begin(a.ID)
			if err := rv.ProcessTask(ctx, revokeTask(t, a.ID)); err != nil {
				t.Fatalf("revoke A: %v", err)
			}
			if !slices.Equal(enq.ids, []string{c.ID}) {
				t.Fatalf("revoking A enqueued blocks of %v, want C's", enq.ids)
			}
			if err := syncer.ProcessBlock(ctx, blockTask(t, c.ID)); err != nil {
				t.Fatal(err)
			}
			if code := get(family); code != http.StatusNotFound {
				t.Errorf("C's blocker after revoking its source: GET %d", code)
			}
		})
	}
}

// A connection revoked with its copies kept loses its blockers anyway:
// nothing would ever update them again.
func TestRevokeKeepingCopiesRemovesBlockers(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			rad := caldavtest.StartRadicale(t)
			office := rad.MakeCalendar(t, "alice", "Office")
			private := rad.MakeCalendar(t, "alice", "Private")
			a := e.connectCalDAV(office, "secret", false)
			b := e.connect(store.Connection{Provider: store.ProviderCalDAV, CalendarURL: private, Blocking: true, KeepCopiesOnRevoke: true},
				caldavCredentials{Username: "alice", Password: "secret"})
			syncer := newBlockingSyncer(t, e, &countingBlocks{})
			start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
			rad.PutEvent(t, "alice", office, "x", syncUserEvent("x@example.com", start))
			if err := syncer.ProcessPull(ctx, pullTask(t, a.ID, false)); err != nil {
				t.Fatal(err)
			}
			if err := syncer.ProcessBlock(ctx, blockTask(t, b.ID)); err != nil {
				t.Fatal(err)
			}
			ch, err := e.store.UpsertAppointment(ctx, store.Appointment{TenantID: e.tenant.ID, ID: "appt-k", SubjectIDs: []string{e.subject},
				Start: start.Add(24 * time.Hour), End: start.Add(25 * time.Hour), TimeZone: "Europe/Berlin", Title: "Check-up"})
			if err != nil {
				t.Fatal(err)
			}
			if err := syncer.cfg.Engine.Push(ctx, b.ID, e.tenant.ID, ch.Appointment.ID, ch.Appointment.Version); err != nil {
				t.Fatal(err)
			}
			get := func(name string) int {
				code, _, _ := rad.Do(t, "alice", http.MethodGet, private+name, nil, "")
				return code
			}
			blocker := caldav.EventName("blocker:" + calsync.BlockerKey(a.ID, "x@example.com", ""))
			copyName := caldav.EventName("appt-k")
			if get(blocker) != http.StatusOK || get(copyName) != http.StatusOK {
				t.Fatalf("before revoking: blocker %d, copy %d", get(blocker), get(copyName))
			}

			e.begin(b.ID)
			if err := e.revoker(nil).ProcessTask(ctx, revokeTask(t, b.ID)); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if get(blocker) != http.StatusNotFound || get(copyName) != http.StatusOK {
				t.Errorf("after revoking with copies kept: blocker %d (want 404), copy %d (want 200)", get(blocker), get(copyName))
			}
			if got := e.audit(b.ID, AuditActionCopies); !slices.Equal(got, []string{OutcomeKept}) {
				t.Errorf("audit of the copies = %q", got)
			}
		})
	}
}
