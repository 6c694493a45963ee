package workers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/queue"
)

// batchParallelism is how many rows of one notify:batch task are sent at
// once. Worker concurrency multiplies it, so it stays small.
const batchParallelism = 8

// batchWave is how many rows of a batch are dispatched, sent and recorded
// together. A worker that dies mid-batch leaves at most one wave in doubt
// (outcome unknown); the rest of its claim was never handed over and is
// sent again. Smaller waves mean fewer rows in doubt and more statements.
const batchWave = 2 * batchParallelism

// BatchStore is what the batch path needs beyond NotifierStore.
type BatchStore interface {
	ClaimNotifications(ctx context.Context, ids []string, now, leaseUntil time.Time) ([]store.Notification, error)
	DispatchNotifications(ctx context.Context, ids []string, now time.Time) error
	FinishAndDispatch(ctx context.Context, now time.Time, items []store.Finish, next []string) ([]string, error)
	SendChecksBatch(ctx context.Context, tenantID string, keys []store.CheckKey) (map[store.CheckKey]store.SendChecks, error)
}

// ProcessBatch handles notify:batch: the same send path as notify:send for
// every row, with one claim and one record for the whole batch. Rows that
// are not due and scheduled are left to their own task or the sweeper.
func (nt *Notifier) ProcessBatch(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseNotifyBatchPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("notify batch: %v: %w", err, asynq.SkipRetry)
	}
	return nt.DeliverBatch(ctx, p.NotificationIDs)
}

// DeliverBatch runs the send path for the given ids.
func (nt *Notifier) DeliverBatch(ctx context.Context, ids []string) error {
	bs, ok := nt.cfg.Store.(BatchStore)
	if !ok {
		// A store without batch support: one by one.
		var errs []error
		for _, id := range ids {
			errs = append(errs, nt.Deliver(ctx, id))
		}
		return errors.Join(errs...)
	}
	now := nt.cfg.Now()
	claimed, err := bs.ClaimNotifications(ctx, ids, now, now.Add(nt.cfg.Lease))
	if err != nil {
		return fmt.Errorf("notify batch: claim: %w", err)
	}
	checks := nt.batchChecks(ctx, bs, claimed)
	checkedAt := time.Now()
	waveIDs := func(start int) []string {
		var ids []string
		for _, n := range claimed[start:min(start+batchWave, len(claimed))] {
			ids = append(ids, n.ID)
		}
		return ids
	}
	if len(claimed) > 0 {
		if err := bs.DispatchNotifications(ctx, waveIDs(0), nt.cfg.Now()); err != nil {
			// Nothing was handed over; the claim is released when its
			// lease ends.
			return fmt.Errorf("notify batch: dispatch: %w", err)
		}
	}
	for start := 0; start < len(claimed); start += batchWave {
		end := min(start+batchWave, len(claimed))
		// The record of this wave dispatches the next in the same commit.
		if err := nt.deliverWave(ctx, claimed[start:end], checks[start:end], checkedAt, waveIDs(end)); err != nil {
			// The rows after this wave stay claimed but undispatched: the
			// sweeper releases them when their lease ends.
			return err
		}
	}
	return nil
}

// deliverWave sends dispatched rows batchParallelism at a time and records
// their outcomes, dispatching next with the record.
func (nt *Notifier) deliverWave(ctx context.Context, rows []store.Notification, checks []batchRowChecks, checkedAt time.Time, next []string) error {
	results := make([]store.AttemptResult, len(rows))
	var wg sync.WaitGroup
	sem := make(chan struct{}, batchParallelism)
	for i, n := range rows {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			switch c := checks[i]; {
			case !c.read || time.Since(checkedAt) > maxBatchCheckAge:
				// Checks read for the batch are only used while fresh;
				// later rows re-read their own right before the send.
				results[i] = nt.attempt(ctx, n)
			case c.tenantGone:
				results[i] = nt.attemptChecked(ctx, n, store.Tenant{}, ReasonTenantGone, nil)
			default:
				tenant, reason, err := nt.checkWith(ctx, n, c.checks)
				results[i] = nt.attemptChecked(ctx, n, tenant, reason, err)
			}
		}()
	}
	wg.Wait()
	return nt.recordBatch(ctx, rows, results, next)
}

// batchRowChecks is what batchChecks read for one claimed row.
// maxBatchCheckAge bounds how old the batch-wide send checks may be when a
// row is sent; a row sent later re-reads its own, as the single path does.
const maxBatchCheckAge = time.Second

type batchRowChecks struct {
	read       bool // false: the row reads its own checks (attempt)
	tenantGone bool
	checks     store.SendChecks
}

// batchChecks reads the send checks of all claimed rows with one
// SendChecksBatch per tenant instead of one SendChecks per row. They are
// read once the rows are claimed, before the first send of the batch. Where
// that read fails, the rows fall back to the per-row checks of attempt.
func (nt *Notifier) batchChecks(ctx context.Context, bs BatchStore, rows []store.Notification) []batchRowChecks {
	out := make([]batchRowChecks, len(rows))
	byTenant := make(map[string][]int)
	var tenants []string
	for i, n := range rows {
		if n.Channel == store.ChannelSMS {
			// An SMS rests on an explicit consent whose withdrawal must stop
			// the very next message: SMS rows always read their own checks
			// right before the send.
			continue
		}
		if _, ok := byTenant[n.TenantID]; !ok {
			tenants = append(tenants, n.TenantID)
		}
		byTenant[n.TenantID] = append(byTenant[n.TenantID], i)
	}
	for _, tenantID := range tenants {
		idx := byTenant[tenantID]
		keys := make([]store.CheckKey, len(idx))
		for j, i := range idx {
			keys[j] = checkKey(rows[i])
		}
		got, err := bs.SendChecksBatch(ctx, tenantID, keys)
		switch {
		case errors.Is(err, store.ErrNotFound):
			for _, i := range idx {
				out[i] = batchRowChecks{read: true, tenantGone: true}
			}
		case err != nil:
			nt.log.Warn("notify: batch send checks failed, checking row by row",
				"tenant_id", tenantID, "notifications", len(idx), "err", err)
		default:
			for j, i := range idx {
				c, ok := got[keys[j]]
				out[i] = batchRowChecks{read: ok, checks: c}
			}
		}
	}
	return out
}

// checkKey is the (subject, consent purpose) whose send checks n needs.
func checkKey(n store.Notification) store.CheckKey {
	return store.CheckKey{SubjectID: n.SubjectID, Purpose: consentPurpose(n)}
}

// recordBatch records all outcomes in one statement, retrying a few times
// like finish does: after the providers accepted the messages the record
// matters most.
func (nt *Notifier) recordBatch(ctx context.Context, rows []store.Notification, results []store.AttemptResult, next []string) error {
	if len(rows) == 0 {
		return nil
	}
	bs := nt.cfg.Store.(BatchStore)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	items := make([]store.Finish, len(rows))
	for i, n := range rows {
		items[i] = store.Finish{ID: n.ID, Result: results[i]}
	}
	var done []string
	var err error
	for delay := recordRetryFirst; ; delay = min(2*delay, recordRetryMax) {
		if done, err = bs.FinishAndDispatch(ctx, nt.cfg.Now(), items, next); err == nil {
			break
		}
		if serr := sleep(ctx, delay); serr != nil {
			break
		}
	}
	if err != nil {
		nt.log.Error("notify: recording a batch failed", "notifications", len(rows))
		return fmt.Errorf("notify batch: record outcomes: %w", err)
	}
	recorded := make(map[string]bool, len(done))
	for _, id := range done {
		recorded[id] = true
	}
	for i, n := range rows {
		r := results[i]
		if !recorded[n.ID] {
			nt.log.Warn("notify: claim lost before recording", "notification_id", n.ID, "status", r.Status)
			continue
		}
		nt.cfg.Metrics.NotificationState(n.Channel, n.Template, r.Status)
		nt.log.Debug("notify: done", "notification_id", n.ID, "tenant_id", n.TenantID,
			"channel", n.Channel, "status", r.Status, "reason", r.Reason, "attempt", len(n.Attempts)+1)
		nt.enqueueRetry(ctx, n, r)
	}
	nt.log.Debug("notify: batch done", "notifications", len(rows), "recorded", len(done))
	return nil
}
