package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The batch forms of the send path. A worker that handles a batch task
// claims and records many notifications per statement, so the cost per
// message is dominated by the message, not by database round trips.

// MaxBatch bounds the ids of one ClaimNotifications or FinishAttempts call.
const MaxBatch = 500

// ClaimNotifications is ClaimNotification for many ids in one statement.
// It returns the rows it moved from scheduled to sending; ids that were not
// scheduled and due are left alone and not returned.
func (s *Store) ClaimNotifications(ctx context.Context, ids []string, now, leaseUntil time.Time) ([]Notification, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > MaxBatch {
		return nil, fmt.Errorf("claim notifications: %d ids, at most %d", len(ids), MaxBatch)
	}
	args := []any{ms(leaseUntil), ms(now), ms(now)}
	for _, id := range ids {
		args = append(args, id)
	}
	out, err := queryAll(ctx, s.db, scanNotification, s.rebind(`UPDATE notifications
		SET status = 'sending', claimed_until = ?, updated_at = ?, dispatched_at = 0
		WHERE status = 'scheduled' AND send_at <= ? AND `+notOffboarding+` AND id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)
		RETURNING `+notificationCols), args...)
	if err != nil {
		return nil, fmt.Errorf("claim notifications: %w", err)
	}
	return out, nil
}

// DispatchNotifications records that claimed rows are being handed to the
// provider now. Until then a row whose lease runs out was certainly not
// sent and is released (see MarkInterrupted); from then on it is in doubt
// until its outcome is recorded. Callers dispatch a few rows at a time,
// right before sending them, so that a crash leaves few rows in doubt.
func (s *Store) DispatchNotifications(ctx context.Context, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > MaxBatch {
		return fmt.Errorf("dispatch notifications: %d ids, at most %d", len(ids), MaxBatch)
	}
	args := []any{ms(now)}
	for _, id := range ids {
		args = append(args, id)
	}
	if _, err := s.db.ExecContext(ctx, s.rebind(`UPDATE notifications SET dispatched_at = ?
		WHERE status = 'sending' AND id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`), args...); err != nil {
		return fmt.Errorf("dispatch notifications: %w", err)
	}
	return nil
}

// Finish is one notification's outcome for FinishAttempts.
type Finish struct {
	ID     string
	Result AttemptResult
}

// FinishAttempts records many outcomes at once, each with the semantics of
// FinishAttempt (only rows still sending change; attempts are numbered by
// the store). It returns the ids it recorded; an id missing from the answer
// was no longer sending (its claim was lost).
func (s *Store) FinishAttempts(ctx context.Context, now time.Time, items []Finish) ([]string, error) {
	return s.FinishAndDispatch(ctx, now, items, nil)
}

// FinishAndDispatch is FinishAttempts that, in the same transaction,
// dispatches the next rows (DispatchNotifications): a batch sent in waves
// records one wave and hands over the next with one commit.
func (s *Store) FinishAndDispatch(ctx context.Context, now time.Time, items []Finish, next []string) ([]string, error) {
	if len(items) == 0 {
		return nil, s.DispatchNotifications(ctx, next, now)
	}
	if len(items) > MaxBatch || len(next) > MaxBatch {
		return nil, fmt.Errorf("finish attempts: %d items and %d to dispatch, at most %d each", len(items), len(next), MaxBatch)
	}
	if s.dialect == DialectPostgres {
		return s.finishAttemptsPostgres(ctx, now, items, next)
	}
	// SQLite has no network round trip to save: one transaction (one
	// commit) around the single-row statements.
	var done []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if len(next) > 0 {
			if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE notifications SET dispatched_at = ?
				WHERE status = 'sending' AND id IN (?`+strings.Repeat(", ?", len(next)-1)+`)`), append([]any{ms(now)}, anys(next)...)...); err != nil {
				return fmt.Errorf("dispatch: %w", err)
			}
		}
		for _, it := range items {
			query, args, err := s.finishStatement(it.ID, now, it.Result, "id")
			if err != nil {
				return err
			}
			var id string
			err = tx.QueryRowContext(ctx, query, args...).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			done = append(done, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish attempts: %w", err)
	}
	return done, nil
}

// finishAttemptsPostgres records the batch in one UPDATE … FROM unnest(…).
func (s *Store) finishAttemptsPostgres(ctx context.Context, now time.Time, items []Finish, next []string) ([]string, error) {
	n := len(items)
	ids, statuses, reasons, attempts, providers := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	retryAt := make([]int64, n)
	for i, it := range items {
		r := it.Result
		switch r.Status {
		case StatusSent, StatusFailed, StatusSuppressed, StatusScheduled:
		default:
			return nil, fmt.Errorf("finish attempts: invalid status %q", r.Status)
		}
		a := r.Attempt
		if a.At.IsZero() {
			a.At = now.UTC()
		}
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("finish attempts: %w", err)
		}
		ids[i], statuses[i], reasons[i], attempts[i], providers[i] = it.ID, r.Status, r.Reason, string(b), r.ProviderID
		retryAt[i] = ms(now)
		if !r.RetryAt.IsZero() {
			retryAt[i] = ms(r.RetryAt)
		}
	}
	if next == nil {
		next = []string{}
	}
	// The dispatch of the next rows rides along as a data-modifying CTE:
	// one statement, one commit. It touches other rows than the update.
	done, err := queryStrings(ctx, s.db, `WITH dispatched AS (
			UPDATE notifications SET dispatched_at = $7 WHERE status = 'sending' AND id = ANY($8::text[]))
		UPDATE notifications AS n SET
			status = v.status,
			status_reason = v.reason,
			claimed_until = 0,
			attempts = (n.attempts::jsonb || jsonb_build_array(
				jsonb_set(v.attempt::jsonb, '{n}', to_jsonb(jsonb_array_length(n.attempts::jsonb) + 1))))::text,
			provider_id = CASE WHEN v.provider = '' THEN n.provider_id ELSE v.provider END,
			updated_at = $7,
			send_at = CASE WHEN v.status = 'scheduled' THEN v.retry_at ELSE n.send_at END,
			final_at = CASE WHEN v.status = 'scheduled' THEN n.final_at ELSE $7 END,
			expires_at = CASE WHEN v.status = 'scheduled' THEN n.expires_at ELSE $7 + t.notification_retention_ms END
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
			AS v(id, status, reason, attempt, provider, retry_at), tenants AS t
		WHERE n.id = v.id AND n.status = 'sending' AND t.id = n.tenant_id
		RETURNING n.id`, ids, statuses, reasons, attempts, providers, retryAt, ms(now), next)
	if err != nil {
		return nil, fmt.Errorf("finish attempts: %w", err)
	}
	return done, nil
}
