package queue

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/queue/queuetest"
)

// runScheduler starts s and returns a stop function that waits for Run.
func runScheduler(t *testing.T, s *Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("scheduler run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("scheduler did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// periodicIDs lists the ids of the periodic tasks the queue holds.
func periodicIDs(t *testing.T, r *Redis, queueName, typ string) []string {
	t.Helper()
	ai := asynq.NewInspector(r.ConnOpt())
	defer ai.Close()
	qs, err := ai.Queues()
	if err != nil {
		t.Fatalf("queues: %v", err)
	}
	found := false
	for _, q := range qs {
		found = found || q == queueName
	}
	if !found {
		return nil
	}
	tasks, err := ai.ListPendingTasks(queueName, asynq.PageSize(1000))
	if err != nil {
		t.Fatalf("list pending: %v", err)
	}
	var ids []string
	for _, ti := range tasks {
		if ti.Type == typ {
			ids = append(ids, ti.ID)
		}
	}
	return ids
}

func TestSchedulerSingleLeaderAndFailover(t *testing.T) {
	t.Parallel()
	for _, embedded := range []bool{false, true} {
		name := "redis"
		if embedded {
			name = "embedded"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := ""
			if !embedded {
				url = queuetest.RedisURL(t)
			}
			r := openRedis(t, url)
			const q = "sched"
			newSched := func() *Scheduler {
				s := NewScheduler(r, q, time.Second, time.Hour, testLogger(t))
				s.leaseTTL = 600 * time.Millisecond
				return s
			}
			a, b := newSched(), newSched()
			stopA := runScheduler(t, a)
			stopB := runScheduler(t, b)

			eventually(t, 5*time.Second, "a leader", func() bool { return a.Leader() || b.Leader() })
			// Over a few lease periods, never two leaders at once.
			until := time.Now().Add(2500 * time.Millisecond)
			for time.Now().Before(until) {
				if a.Leader() && b.Leader() {
					t.Fatal("both schedulers lead at once")
				}
				time.Sleep(10 * time.Millisecond)
			}
			leader, other, stopLeader := a, b, stopA
			if b.Leader() {
				leader, other, stopLeader = b, a, stopB
			}
			if !leader.Leader() || other.Leader() {
				t.Fatal("leadership changed while both were running")
			}

			// Periodic tasks with per-period ids: one purge for this hour,
			// one sweep per elapsed second (no duplicates within a period).
			purges := periodicIDs(t, r, q, TypeRetentionPurge)
			if len(purges) != 1 {
				t.Errorf("purge tasks = %v, want exactly one", purges)
			}
			sweeps := periodicIDs(t, r, q, TypeOutboxSweep)
			if len(sweeps) < 2 {
				t.Errorf("sweep tasks = %v, want at least two periods", sweeps)
			}
			for _, id := range sweeps {
				if !strings.HasPrefix(id, TypeOutboxSweep+":") {
					t.Errorf("sweep task id %q lacks its period", id)
				}
			}

			// The leader releases its lease on shutdown: the other takes
			// over well before the lease would have expired.
			stopLeader()
			eventually(t, 2*time.Second, "failover", other.Leader)
			if leader.Leader() {
				t.Error("stopped scheduler still reports leadership")
			}
			if got := periodicIDs(t, r, q, TypeRetentionPurge); len(got) != 1 {
				t.Errorf("after failover purge tasks = %v, want still one (same period)", got)
			}
		})
	}
}

// A leader that dies without releasing (crash) is replaced once its lease
// expires.
func TestSchedulerTakesOverExpiredLease(t *testing.T) {
	t.Parallel()
	r := openRedis(t, queuetest.RedisURL(t))
	ctx := context.Background()
	s := NewScheduler(r, "expired", time.Hour, time.Hour, testLogger(t))
	s.leaseTTL = 600 * time.Millisecond
	if err := r.Client().Set(ctx, s.leaseKey, "crashed-holder", 800*time.Millisecond).Err(); err != nil {
		t.Fatalf("set lease: %v", err)
	}
	start := time.Now()
	runScheduler(t, s)
	time.Sleep(300 * time.Millisecond)
	if s.Leader() {
		t.Fatal("took a lease that another holder still has")
	}
	eventually(t, 5*time.Second, "takeover after expiry", s.Leader)
	if elapsed := time.Since(start); elapsed < 700*time.Millisecond {
		t.Errorf("took over after %s, before the old lease ended", elapsed)
	}
	if got := periodicIDs(t, r, "expired", TypeOutboxSweep); len(got) != 1 {
		t.Errorf("sweep tasks = %v, want one right at the start of leadership", got)
	}
}

func TestSchedulerRejectsBadPeriods(t *testing.T) {
	t.Parallel()
	r := openRedis(t, "")
	s := NewScheduler(r, "bad", 0, time.Hour, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Run(ctx); err == nil {
		t.Fatal("Run with a zero period succeeded")
	}
}
