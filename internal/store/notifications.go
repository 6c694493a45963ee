package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// notificationCols is the column list every notification query returns, in
// the order scanNotification reads it.
const notificationCols = `id, tenant_id, subject_id, appointment_id, idempotency_key, request_hash, purpose, channel,
	recipient, locale, template, data, status, status_reason, send_at, attempts, provider_id,
	claimed_until, needs_reconciliation, created_at, updated_at, final_at, expires_at`

// finalSet sets final_at and the retention-based expires_at; it takes the
// final time twice as arguments.
const finalSet = `final_at = ?,
	expires_at = ? + (SELECT t.notification_retention_ms FROM tenants t WHERE t.id = notifications.tenant_id)`

// AttemptInterrupted is the outcome MarkInterrupted records.
const AttemptInterrupted = "interrupted"

// ReasonOutcomeUnknown is the status reason MarkInterrupted sets.
const ReasonOutcomeUnknown = "outcome_unknown"

func scanNotification(r rowScanner) (Notification, error) {
	var n Notification
	var data, attempts string
	var sendAt, claimed, created, updated, final, expires int64
	if err := r.Scan(&n.ID, &n.TenantID, &n.SubjectID, &n.AppointmentID, &n.IdempotencyKey, &n.RequestHash, &n.Purpose, &n.Channel,
		&n.Recipient, &n.Locale, &n.Template, &data, &n.Status, &n.StatusReason, &sendAt, &attempts, &n.ProviderID,
		&claimed, &n.NeedsReconciliation, &created, &updated, &final, &expires); err != nil {
		return Notification{}, err
	}
	if data != "" {
		n.Data = json.RawMessage(data)
	}
	if err := json.Unmarshal([]byte(attempts), &n.Attempts); err != nil {
		return Notification{}, fmt.Errorf("notification %s: attempts: %w", n.ID, err)
	}
	if n.Attempts == nil {
		n.Attempts = []Attempt{}
	}
	n.SendAt, n.ClaimedUntil = fromMS(sendAt), fromMS(claimed)
	n.CreatedAt, n.UpdatedAt = fromMS(created), fromMS(updated)
	n.FinalAt, n.ExpiresAt = fromMS(final), fromMS(expires)
	return n, nil
}

// CreateNotifications inserts notifications in one transaction, honouring
// idempotency keys per tenant: an existing key with the same RequestHash
// yields Existing, with another hash Mismatch; otherwise the item is stored
// (ID, Status=scheduled, CreatedAt, UpdatedAt and ExpiresAt set by the store)
// and creates the subject row if SubjectID is set.
//
// Existing and Mismatch results carry the stored row. A zero SendAt means
// now; an empty IdempotencyKey makes the item unique (the new id is used as
// its key). An unknown tenant fails the whole call with ErrNotFound.
func (s *Store) CreateNotifications(ctx context.Context, items []Notification) ([]CreateResult, error) {
	if len(items) == 0 {
		return nil, nil
	}
	now := truncMS(time.Now())
	results := make([]CreateResult, len(items))

	// Rows are inserted in key order (stable, so a later duplicate still
	// meets the earlier one): two concurrent batches then take their locks
	// in the same order and cannot deadlock on PostgreSQL.
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(items[a].TenantID, items[b].TenantID),
			cmp.Compare(items[a].IdempotencyKey, items[b].IdempotencyKey))
	})

	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, s.rebind(`INSERT INTO notifications (id, tenant_id, subject_id,
			appointment_id, idempotency_key, request_hash, purpose, channel, recipient, locale, template, data,
			status, send_at, attempts, created_at, created_day, updated_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?, ?)
			ON CONFLICT (tenant_id, idempotency_key) DO NOTHING`))
		if err != nil {
			return err
		}
		defer ins.Close()
		sel, err := tx.PrepareContext(ctx, s.rebind("SELECT "+notificationCols+" FROM notifications WHERE tenant_id = ? AND idempotency_key = ?"))
		if err != nil {
			return err
		}
		defer sel.Close()

		retention := map[string]int64{}
		type subjectKey struct{ tenant, id string }
		var subjects []subjectKey
		for _, i := range order {
			it := items[i]
			keep, ok := retention[it.TenantID]
			if !ok {
				err := tx.QueryRowContext(ctx, s.rebind("SELECT notification_retention_ms FROM tenants WHERE id = ?"), it.TenantID).Scan(&keep)
				if errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("item %d: tenant: %w", i, ErrNotFound)
				}
				if err != nil {
					return fmt.Errorf("item %d: tenant: %w", i, err)
				}
				retention[it.TenantID] = keep
			}
			n := Notification{
				ID:             newID("ntf_"),
				TenantID:       it.TenantID,
				SubjectID:      it.SubjectID,
				AppointmentID:  it.AppointmentID,
				IdempotencyKey: it.IdempotencyKey,
				RequestHash:    it.RequestHash,
				Purpose:        it.Purpose,
				Channel:        it.Channel,
				Recipient:      it.Recipient,
				Locale:         it.Locale,
				Template:       it.Template,
				Data:           it.Data,
				Status:         StatusScheduled,
				SendAt:         truncMS(it.SendAt),
				Attempts:       []Attempt{},
				CreatedAt:      now,
				UpdatedAt:      now,
			}
			if n.IdempotencyKey == "" {
				n.IdempotencyKey = n.ID
			}
			if n.SendAt.IsZero() {
				n.SendAt = now
			}
			n.ExpiresAt = fromMS(ms(n.SendAt) + keep)
			res, err := ins.ExecContext(ctx, n.ID, n.TenantID, n.SubjectID, n.AppointmentID, n.IdempotencyKey, n.RequestHash,
				n.Purpose, n.Channel, n.Recipient, n.Locale, n.Template, string(n.Data), n.Status,
				ms(n.SendAt), ms(now), dayOf(ms(now)), ms(now), ms(n.ExpiresAt))
			if err != nil {
				return fmt.Errorf("item %d: insert: %w", i, err)
			}
			inserted, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("item %d: insert: %w", i, err)
			}
			if inserted == 1 {
				results[i] = CreateResult{Notification: n, Outcome: Created}
				if n.SubjectID != "" {
					subjects = append(subjects, subjectKey{n.TenantID, n.SubjectID})
				}
				continue
			}
			// The key is taken, by an earlier item of this call or by a
			// committed transaction (ON CONFLICT waited for it to finish).
			old, err := scanNotification(sel.QueryRowContext(ctx, n.TenantID, n.IdempotencyKey))
			if err != nil {
				return fmt.Errorf("item %d: existing: %w", i, err)
			}
			outcome := Existing
			if old.RequestHash != it.RequestHash {
				outcome = Mismatch
			}
			results[i] = CreateResult{Notification: old, Outcome: outcome}
		}

		// Subjects last and sorted, for the same lock-order reason as above.
		slices.SortFunc(subjects, func(a, b subjectKey) int {
			return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.id, b.id))
		})
		subjects = slices.Compact(subjects)
		if len(subjects) > 0 {
			up, err := tx.PrepareContext(ctx, s.rebind(ensureSubjectSQL))
			if err != nil {
				return err
			}
			defer up.Close()
			for _, sk := range subjects {
				if _, err := up.ExecContext(ctx, sk.tenant, sk.id, ms(now), ms(now)); err != nil {
					return fmt.Errorf("subject: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create notifications: %w", err)
	}
	return results, nil
}

// GetNotification returns ErrNotFound for an unknown id or another tenant's.
func (s *Store) GetNotification(ctx context.Context, tenantID, id string) (Notification, error) {
	n, err := scanNotification(s.read.QueryRowContext(ctx,
		s.rebind("SELECT "+notificationCols+" FROM notifications WHERE tenant_id = ? AND id = ?"), tenantID, id))
	if err != nil {
		return Notification{}, fmt.Errorf("get notification: %w", notFound(err))
	}
	return n, nil
}

// GetNotificationByID loads a notification for a worker (no tenant scope:
// task payloads carry only ids).
func (s *Store) GetNotificationByID(ctx context.Context, id string) (Notification, error) {
	n, err := scanNotification(s.read.QueryRowContext(ctx,
		s.rebind("SELECT "+notificationCols+" FROM notifications WHERE id = ?"), id))
	if err != nil {
		return Notification{}, fmt.Errorf("get notification: %w", notFound(err))
	}
	return n, nil
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// CancelNotification moves a scheduled notification to cancelled. A
// notification in any other state gives ErrConflict (with the row).
func (s *Store) CancelNotification(ctx context.Context, tenantID, id string, now time.Time) (Notification, error) {
	n, err := scanNotification(s.db.QueryRowContext(ctx, s.rebind(`UPDATE notifications
		SET status = 'cancelled', claimed_until = 0, updated_at = ?, `+finalSet+`
		WHERE tenant_id = ? AND id = ? AND status = 'scheduled'
		RETURNING `+notificationCols), ms(now), ms(now), ms(now), tenantID, id))
	if err == nil {
		return n, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Notification{}, fmt.Errorf("cancel notification: %w", err)
	}
	cur, err := s.GetNotification(ctx, tenantID, id)
	if err != nil {
		return Notification{}, fmt.Errorf("cancel notification: %w", err)
	}
	return cur, fmt.Errorf("cancel notification: status %s: %w", cur.Status, ErrConflict)
}

// ClaimNotification is the compare-and-set scheduled → sending that makes
// one worker the sender (a sending row is never re-claimed: see MarkInterrupted).
// It succeeds only if the row is scheduled and SendAt <= now. On success it
// returns the row with Status=sending and ClaimedUntil=leaseUntil, ok=true.
// Otherwise ok=false and the current row is returned (caller decides).
func (s *Store) ClaimNotification(ctx context.Context, id string, now, leaseUntil time.Time) (n Notification, ok bool, err error) {
	// A single send goes to the provider right after its claim: it counts
	// as dispatched from the claim on.
	n, err = scanNotification(s.db.QueryRowContext(ctx, s.rebind(`UPDATE notifications
		SET status = 'sending', claimed_until = ?, updated_at = ?, dispatched_at = ?
		WHERE id = ? AND status = 'scheduled' AND send_at <= ? AND `+notOffboarding+`
		RETURNING `+notificationCols), ms(leaseUntil), ms(now), ms(now), id, ms(now)))
	if err == nil {
		return n, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Notification{}, false, fmt.Errorf("claim notification: %w", err)
	}
	n, err = s.GetNotificationByID(ctx, id)
	if err != nil {
		return Notification{}, false, fmt.Errorf("claim notification: %w", err)
	}
	return n, false, nil
}

// lockNotification reads one row inside tx, locked against concurrent
// changes until the transaction ends.
func (s *Store) lockNotification(ctx context.Context, tx *sql.Tx, where string, args ...any) (Notification, error) {
	n, err := scanNotification(tx.QueryRowContext(ctx,
		s.rebind("SELECT "+notificationCols+" FROM notifications WHERE "+where+s.forUpdate()), args...))
	return n, notFound(err)
}

// updateNotification applies set (with its args) to row id and returns the new row.
func (s *Store) updateNotification(ctx context.Context, tx *sql.Tx, id, set string, args ...any) (Notification, error) {
	return scanNotification(tx.QueryRowContext(ctx,
		s.rebind("UPDATE notifications SET "+set+" WHERE id = ? RETURNING "+notificationCols), append(args, id)...))
}

func marshalAttempts(a []Attempt) (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("attempts: %w", err)
	}
	return string(b), nil
}

// FinishAttempt records the outcome of a claimed send: appends the attempt,
// sets status/reason/provider id, and for final states FinalAt and
// ExpiresAt = FinalAt + tenant retention. Only valid while the row is
// sending (else ErrConflict).
//
// A zero Attempt.N or Attempt.At is filled in (next number, now); a zero
// RetryAt on a retry means now.
func (s *Store) FinishAttempt(ctx context.Context, id string, now time.Time, r AttemptResult) (Notification, error) {
	// One statement, no transaction: this runs once per send, and the
	// status = 'sending' condition is the compare-and-set that makes a
	// late or second writer fail instead of overwriting.
	query, args, err := s.finishStatement(id, now, r, notificationCols)
	if err != nil {
		return Notification{}, fmt.Errorf("finish attempt: %w", err)
	}
	n, err := scanNotification(s.db.QueryRowContext(ctx, query, args...))
	if err == nil {
		return n, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Notification{}, fmt.Errorf("finish attempt: %w", err)
	}
	cur, err := s.GetNotificationByID(ctx, id)
	if err != nil {
		return Notification{}, fmt.Errorf("finish attempt: %w", err)
	}
	return cur, fmt.Errorf("finish attempt: status %s: %w", cur.Status, ErrConflict)
}

// finishStatement is the conditional UPDATE that records one attempt,
// returning the given columns of the row it changed (none if the row was
// not sending).
func (s *Store) finishStatement(id string, now time.Time, r AttemptResult, returning string) (string, []any, error) {
	switch r.Status {
	case StatusSent, StatusFailed, StatusSuppressed, StatusScheduled:
	default:
		return "", nil, fmt.Errorf("invalid status %q", r.Status)
	}
	a := r.Attempt
	if a.At.IsZero() {
		a.At = now.UTC()
	}
	attempt, err := json.Marshal(a)
	if err != nil {
		return "", nil, err
	}
	set := "status = ?, status_reason = ?, claimed_until = 0, attempts = " + s.appendAttempt(a.N == 0) +
		", provider_id = CASE WHEN ? = '' THEN provider_id ELSE ? END, updated_at = ?, "
	args := []any{r.Status, r.Reason, string(attempt), r.ProviderID, r.ProviderID, ms(now)}
	if r.Status == StatusScheduled {
		retryAt := r.RetryAt
		if retryAt.IsZero() {
			retryAt = now
		}
		set += "send_at = ?"
		args = append(args, ms(retryAt))
	} else {
		set += finalSet
		args = append(args, ms(now), ms(now))
	}
	return s.rebind("UPDATE notifications SET " + set + " WHERE id = ? AND status = 'sending' RETURNING " + returning),
		append(args, id), nil
}

// appendAttempt is the SQL expression that appends the attempt given as a
// JSON parameter to the attempts column, numbering it when numbered is true.
func (s *Store) appendAttempt(numbered bool) string {
	if s.dialect == DialectPostgres {
		obj := "?::jsonb"
		if numbered {
			obj = "jsonb_set(?::jsonb, '{n}', to_jsonb(jsonb_array_length(attempts::jsonb) + 1))"
		}
		return "(attempts::jsonb || jsonb_build_array(" + obj + "))::text"
	}
	obj := "json(?)"
	if numbered {
		obj = "json_set(?, '$.n', json_array_length(attempts) + 1)"
	}
	return "json_insert(attempts, '$[#]', " + obj + ")"
}

// MarkInterrupted ends a sending row whose lease expired before its outcome
// was recorded. A row that was dispatched (handed to the provider, see
// DispatchNotifications) may have gone out: status failed, reason
// "outcome_unknown", NeedsReconciliation, and an attempt with outcome
// "interrupted" is appended. A row that was claimed but never dispatched
// cannot have gone out: it goes back to scheduled, unchanged otherwise, to
// be sent again (the returned row says which).
// ErrConflict if the row is not sending with an expired lease.
func (s *Store) MarkInterrupted(ctx context.Context, id string, now time.Time) (Notification, error) {
	released, err := scanNotification(s.db.QueryRowContext(ctx, s.rebind(`UPDATE notifications
		SET status = 'scheduled', claimed_until = 0, updated_at = ?
		WHERE id = ? AND status = 'sending' AND claimed_until < ? AND dispatched_at = 0
		RETURNING `+notificationCols), ms(now), id, ms(now)))
	if err == nil {
		return released, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Notification{}, fmt.Errorf("mark interrupted: %w", err)
	}
	var out Notification
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		n, err := s.lockNotification(ctx, tx, "id = ?", id)
		if err != nil {
			return err
		}
		if n.Status != StatusSending || !n.ClaimedUntil.Before(now) {
			out = n
			return fmt.Errorf("status %s, lease until %s: %w", n.Status, n.ClaimedUntil.Format(time.RFC3339), ErrConflict)
		}
		attempts, err := marshalAttempts(append(n.Attempts, Attempt{
			N:       len(n.Attempts) + 1,
			At:      now.UTC(),
			Outcome: AttemptInterrupted,
			Error:   "lease expired before the outcome was recorded",
		}))
		if err != nil {
			return err
		}
		out, err = s.updateNotification(ctx, tx, id,
			"status = 'failed', status_reason = ?, needs_reconciliation = TRUE, claimed_until = 0, attempts = ?, updated_at = ?, "+finalSet,
			ReasonOutcomeUnknown, attempts, ms(now), ms(now), ms(now))
		return err
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return out, fmt.Errorf("mark interrupted: %w", err)
		}
		return Notification{}, fmt.Errorf("mark interrupted: %w", err)
	}
	return out, nil
}

// UpdateDeliveryStatus applies a provider delivery report, found by the
// provider id: sent → delivered | undelivered (with reason). Returns the row;
// ErrNotFound if no notification has that provider id.
//
// A report that repeats the current status is a no-op; any other change
// from a state other than sent is ErrConflict (with the row).
func (s *Store) UpdateDeliveryStatus(ctx context.Context, providerID, status, reason string, now time.Time) (Notification, error) {
	if status != StatusDelivered && status != StatusUndelivered {
		return Notification{}, fmt.Errorf("update delivery status: invalid status %q", status)
	}
	if providerID == "" {
		return Notification{}, fmt.Errorf("update delivery status: %w", ErrNotFound)
	}
	var out Notification
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// The predicate on '' lets the partial provider_id index serve the query.
		n, err := s.lockNotification(ctx, tx, "provider_id = ? AND provider_id <> '' ORDER BY created_at DESC LIMIT 1", providerID)
		if err != nil {
			return err
		}
		out = n
		if n.Status == status {
			return nil
		}
		if n.Status != StatusSent {
			return fmt.Errorf("status %s: %w", n.Status, ErrConflict)
		}
		out, err = s.updateNotification(ctx, tx, n.ID,
			"status = ?, status_reason = ?, updated_at = ?, "+finalSet,
			status, reason, ms(now), ms(now), ms(now))
		return err
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return out, fmt.Errorf("update delivery status: %w", err)
		}
		return Notification{}, fmt.Errorf("update delivery status: %w", err)
	}
	return out, nil
}

// DueNotifications lists scheduled notifications selected by q, earliest
// first (by SendAt, then ID), at most q.Limit.
func (s *Store) DueNotifications(ctx context.Context, q DueQuery) ([]DueNotification, error) {
	query := `SELECT id, tenant_id, attempts, send_at FROM notifications WHERE status = 'scheduled' AND send_at <= ?`
	args := []any{ms(q.Before)}
	if !q.UntouchedBefore.IsZero() {
		query += ` AND updated_at < ?`
		args = append(args, ms(q.UntouchedBefore))
	}
	if q.After.ID != "" {
		query += ` AND (send_at > ? OR (send_at = ? AND id > ?))`
		args = append(args, ms(q.After.SendAt), ms(q.After.SendAt), q.After.ID)
	}
	rows, err := s.read.QueryContext(ctx, s.rebind(query+` ORDER BY send_at, id LIMIT ?`), append(args, q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("due notifications: %w", err)
	}
	defer rows.Close()
	var out []DueNotification
	for rows.Next() {
		var d DueNotification
		var attempts string
		var sendAt int64
		if err := rows.Scan(&d.ID, &d.TenantID, &attempts, &sendAt); err != nil {
			return nil, fmt.Errorf("due notifications: %w", err)
		}
		var a []json.RawMessage
		if err := json.Unmarshal([]byte(attempts), &a); err != nil {
			return nil, fmt.Errorf("due notifications: %s: attempts: %w", d.ID, err)
		}
		d.Attempt = len(a)
		d.SendAt = fromMS(sendAt)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due notifications: %w", err)
	}
	return out, nil
}

// StaleSending lists ids of sending notifications whose lease ended before now.
func (s *Store) StaleSending(ctx context.Context, now time.Time, limit int) ([]string, error) {
	ids, err := queryStrings(ctx, s.read, s.rebind(`SELECT id FROM notifications
		WHERE status = 'sending' AND claimed_until < ? ORDER BY claimed_until, id LIMIT ?`), ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("stale sending: %w", err)
	}
	return ids, nil
}
