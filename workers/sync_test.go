package workers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
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

func newSyncer(t *testing.T, e *revokeEnv) (*Syncer, *calsync.Engine) {
	t.Helper()
	hc := caldav.NewHTTPClient(caldav.Options{AllowPrivate: true, Timeout: 10 * time.Second})
	eng := calsync.New(calsync.Config{Store: e.store, Logger: testLogger(t),
		Remotes: map[string]calsync.RemoteFactory{store.ProviderCalDAV: caldavremote.Factory(hc, testLogger(t))}})
	return NewSyncer(SyncerConfig{Engine: eng, Store: e.store, Logger: testLogger(t)}), eng
}

func syncUserEvent(uid string, start time.Time) string {
	return strings.Join([]string{"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Example Corp.//Calendar//EN",
		"BEGIN:VEVENT", "UID:" + uid, "DTSTAMP:20260101T090000Z",
		"DTSTART:" + start.UTC().Format("20060102T150405Z"), "DTEND:" + start.Add(time.Hour).UTC().Format("20060102T150405Z"),
		"SUMMARY:Dentist", "END:VEVENT", "END:VCALENDAR", ""}, "\r\n")
}

func pullTask(t *testing.T, connID string, full bool) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(queue.PullPayload{ConnectionID: connID, Full: full})
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(queue.TypeCalendarPull, b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pull and push tasks run through a real queue against Radicale.
func TestSyncTasksThroughTheQueue(t *testing.T) {
	t.Parallel()
	redisURL := queuetest.RedisURL(t)
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			rad := caldavtest.StartRadicale(t)
			cal := rad.MakeCalendar(t, "alice", "Office")
			conn := e.connectCalDAV(cal, "secret", false)
			syncer, _ := newSyncer(t, e)

			qn := "sync-" + dialect
			r, client := openQueue(t, redisURL, qn)
			srv := queue.NewServer(r, queue.CalendarQueue(qn), 2, testLogger(t))
			mux := asynq.NewServeMux()
			RegisterSync(mux, syncer)
			if err := srv.Start(mux); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Shutdown)

			start := time.Now().Add(72 * time.Hour).Truncate(time.Hour)
			rad.PutEvent(t, "alice", cal, "dentist", syncUserEvent("dentist@example.com", start))
			if err := client.EnqueuePull(ctx, conn.ID, false); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the pull to import the event", func() bool {
				got, err := e.store.BusyIntervals(ctx, e.tenant.ID, e.subject, start.Add(-time.Hour), start.Add(2*time.Hour))
				return err == nil && len(got) == 1 && got[0].Start.Equal(start)
			})

			ch, err := e.store.UpsertAppointment(ctx, store.Appointment{TenantID: e.tenant.ID, ID: "appt-q", SubjectIDs: []string{e.subject},
				Start: start.Add(24 * time.Hour), End: start.Add(25 * time.Hour), TimeZone: "Europe/Berlin", Title: "Check-up"})
			if err != nil {
				t.Fatal(err)
			}
			a := ch.Appointment
			if err := client.EnqueuePush(ctx, queue.PushPayload{ConnectionID: conn.ID, AppointmentID: a.ID, TenantID: e.tenant.ID, Version: a.Version}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the push to write our copy", func() bool {
				code, _, body := rad.Do(t, "alice", http.MethodGet, cal+caldav.EventName(a.ID), nil, "")
				return code == http.StatusOK && strings.Contains(body, caldav.MarkerProperty+":"+a.ID)
			})
		})
	}
}

func TestSyncHandlerOutcomes(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			rad := caldavtest.StartRadicale(t)
			cal := rad.MakeCalendar(t, "alice", "Office")
			syncer, _ := newSyncer(t, e)

			// A wrong password: the connection becomes broken, the task
			// ends without a retry.
			wrong := e.connectCalDAV(cal, "not-the-password", false)
			if err := syncer.ProcessPull(ctx, pullTask(t, wrong.ID, false)); err != nil {
				t.Fatalf("pull with rejected credentials: %v, want nil (no retries)", err)
			}
			c, err := e.store.GetConnectionByID(ctx, wrong.ID)
			if err != nil || c.State != store.ConnBroken || c.StateReason != StateCredentialsRejected {
				t.Errorf("connection %s / %q, %v; want broken, %q", c.State, c.StateReason, err, StateCredentialsRejected)
			}
			st, _ := e.store.GetSyncStatus(ctx, wrong.ID)
			if !strings.Contains(st.LastError, "credentials") {
				t.Errorf("last error %q", st.LastError)
			}
			// Broken now: the next task is skipped.
			if err := syncer.ProcessPull(ctx, pullTask(t, wrong.ID, false)); err != nil {
				t.Errorf("pull of a broken connection: %v", err)
			}

			// The server down: an error for asynq to retry, recorded.
			good := e.connectCalDAV(cal, "secret", false)
			rad.Stop()
			err = syncer.ProcessPull(ctx, pullTask(t, good.ID, false))
			if err == nil || !errors.Is(err, calsync.ErrUnavailable) || errors.Is(err, asynq.SkipRetry) {
				t.Errorf("pull of an unreachable calendar: %v, want a retryable ErrUnavailable", err)
			}
			st, _ = e.store.GetSyncStatus(ctx, good.ID)
			if st.LastError == "" || st.LastRun.Error == "" {
				t.Errorf("unreachable pull not recorded: %+v", st)
			}
			c, _ = e.store.GetConnectionByID(ctx, good.ID)
			if c.State != store.ConnActive {
				t.Errorf("an unreachable server changed the state to %s", c.State)
			}
			rad.Start()
			if err := syncer.ProcessPull(ctx, pullTask(t, good.ID, false)); err != nil {
				t.Errorf("pull after the server came back: %v", err)
			}

			// Malformed payloads are not retried.
			err = syncer.ProcessPush(ctx, asynq.NewTask(queue.TypeCalendarPush, []byte(`{}`)))
			if !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("malformed push: %v", err)
			}
		})
	}
}

func TestPollerEnqueuesDuePulls(t *testing.T) {
	t.Parallel()
	redisURL := queuetest.RedisURL(t)
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			conn := e.connectCalDAV("https://dav.example.com/alice/office/", "secret", false)
			qn := "poll-" + dialect
			r, client := openQueue(t, redisURL, qn)
			in := asynq.NewInspector(r.ConnOpt())
			defer in.Close()
			pending := func(full bool) bool {
				info, err := in.GetTaskInfo(queue.CalendarQueue(qn), queue.PullTaskID(conn.ID, full))
				return err == nil && info.State == asynq.TaskStatePending
			}
			drop := func() {
				for _, full := range []bool{false, true} {
					_ = in.DeleteTask(queue.CalendarQueue(qn), queue.PullTaskID(conn.ID, full))
				}
			}

			now := time.Now()
			clock := func() time.Time { return now }
			p := NewPoller(PollerConfig{Store: e.store, Queue: client, Jitter: time.Nanosecond, Now: clock, Logger: testLogger(t)})

			// Never synced: a full pull, through the sweep.
			sw := NewSweeper(SweeperConfig{Store: e.store, Queue: client, Poll: p.Poll, Logger: testLogger(t)})
			if _, err := sw.Sweep(ctx); err != nil {
				t.Fatalf("sweep: %v", err)
			}
			if !pending(true) || pending(false) {
				t.Fatalf("after the first poll: full pending %v, incremental %v; want a full pull", pending(true), pending(false))
			}
			drop()

			// Synced just now: not due.
			if err := e.store.RecordSync(ctx, conn.ID, store.SyncResult{Cursor: "sync:x", Full: true, At: now}); err != nil {
				t.Fatal(err)
			}
			if rep, err := p.PollOnce(ctx); err != nil || rep.Pulls != 0 {
				t.Fatalf("poll right after a sync: %+v, %v", rep, err)
			}
			// Six minutes later: an incremental pull.
			now = now.Add(6 * time.Minute)
			if rep, err := p.PollOnce(ctx); err != nil || rep.Pulls != 1 || rep.Full != 0 || !pending(false) {
				t.Fatalf("poll after the interval: %+v, %v", rep, err)
			}
			// Asked again while it waits: folded into it.
			if rep, err := p.PollOnce(ctx); err != nil || rep.Pulls != 1 {
				t.Fatalf("poll with a pull pending: %+v, %v", rep, err)
			}
			if sz, _ := queue.NewInspector(r, qn).Sizes(ctx); sz.Pending != 1 {
				t.Errorf("queue %+v, want one pending pull", sz)
			}
			drop()

			// A failed run backs off.
			if err := e.store.RecordSync(ctx, conn.ID, store.SyncResult{Error: "caldav: server unreachable", At: now}); err != nil {
				t.Fatal(err)
			}
			if rep, err := p.PollOnce(ctx); err != nil || rep.Pulls != 0 {
				t.Fatalf("poll right after a failure: %+v, %v", rep, err)
			}
			// A day after the last full reconciliation: a full pull.
			now = now.Add(25 * time.Hour)
			if rep, err := p.PollOnce(ctx); err != nil || rep.Pulls != 1 || rep.Full != 1 || !pending(true) {
				t.Fatalf("poll a day later: %+v, %v", rep, err)
			}
			drop()

			// Not active: never polled.
			if _, err := e.store.SetConnectionState(ctx, conn.ID, store.ConnBroken, "test", "test"); err != nil {
				t.Fatal(err)
			}
			if rep, err := p.PollOnce(ctx); err != nil || rep.Pulls != 0 {
				t.Fatalf("poll of a broken connection: %+v, %v", rep, err)
			}
		})
	}
}

// The handlers must not leave anything behind on a revoked connection.
func TestSyncHandlersSkipRevoked(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			rad := caldavtest.StartRadicale(t)
			cal := rad.MakeCalendar(t, "alice", "Office")
			conn := e.connectCalDAV(cal, "secret", false)
			rad.PutEvent(t, "alice", cal, "x", syncUserEvent("x@example.com", time.Now().Add(48*time.Hour)))
			syncer, _ := newSyncer(t, e)
			e.begin(conn.ID)
			if err := syncer.ProcessPull(ctx, pullTask(t, conn.ID, true)); err != nil {
				t.Errorf("pull of a revoking connection: %v, want nil", err)
			}
			b, _ := json.Marshal(queue.PushPayload{ConnectionID: conn.ID, AppointmentID: "a", TenantID: e.tenant.ID, Version: 1})
			if err := syncer.ProcessPush(ctx, asynq.NewTask(queue.TypeCalendarPush, b)); err != nil {
				t.Errorf("push to a revoking connection: %v, want nil", err)
			}
			if n := e.rows("external_events", conn.ID) + e.rows("links", conn.ID); n != 0 {
				t.Errorf("%d rows written", n)
			}
		})
	}
}

type pullRecorder struct{ ids []string }

func (p *pullRecorder) EnqueuePull(_ context.Context, id string, _ bool) error {
	p.ids = append(p.ids, id)
	return nil
}

// TestPollerOnlyPollsProvidersWithARemote: a provider the engine cannot
// sync is not polled (it would fail on every poll and crowd the others).
func TestPollerOnlyPollsProvidersWithARemote(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			e := newRevokeEnv(t, dialect)
			conn := e.connectCalDAV("https://dav.example.com/alice/office/", "secret", false)
			for providers, want := range map[string]int{"google": 0, "caldav": 1} {
				q := &pullRecorder{}
				p := NewPoller(PollerConfig{Store: e.store, Queue: q, Providers: []string{providers}, Logger: testLogger(t)})
				if _, err := p.PollOnce(ctx); err != nil {
					t.Fatal(err)
				}
				if len(q.ids) != want || (want == 1 && q.ids[0] != conn.ID) {
					t.Errorf("providers [%s]: pulls %v, want %d", providers, q.ids, want)
				}
			}
		})
	}
}
