package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// DefaultPurgeBatch is the batch size PurgeExpired uses when given 0 or less.
const DefaultPurgeBatch = 10_000

// statsUpsertHead + rows + statsUpsertTail adds the grouped rows to
// delivery_stats. The ORDER BY keeps the row-lock order fixed so two purges
// cannot deadlock.
const statsUpsertHead = `INSERT INTO delivery_stats (tenant_id, day, channel, template, status, count)
	SELECT tenant_id, created_day, channel, template, status, count(*) FROM `

const statsUpsertTail = ` AS b
	WHERE true -- SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT
	GROUP BY tenant_id, created_day, channel, template, status
	ORDER BY tenant_id, created_day, channel, template, status
	ON CONFLICT (tenant_id, day, channel, template, status)
	DO UPDATE SET count = delivery_stats.count + excluded.count`

// pgPurgeBatch deletes one batch and counts it, in one statement: the
// data-modifying CTEs run exactly once whatever the outer SELECT reads.
// SKIP LOCKED lets a concurrent purge take other rows instead of waiting.
// Deleting by ctid gives a TID scan of exactly the locked rows; "id IN
// (SELECT …)" let the planner pick a hash join over a full table scan per
// batch (18 s instead of 2 s for a million rows).
const pgPurgeBatch = `WITH del AS (
		DELETE FROM notifications WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM notifications WHERE expires_at <= $1
			ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))
		RETURNING tenant_id, created_day, channel, template, status
	), counted AS (` + statsUpsertHead + "del" + statsUpsertTail + ` RETURNING 1)
	SELECT count(*) FROM del`

// sqliteBatchRows is the same rows as a sub-select; the count and the
// delete run in one write transaction, which nothing can interleave with,
// and the order (expires_at, id) is total, so both see the same batch.
const sqliteBatchRows = `(SELECT id, tenant_id, created_day, channel, template, status FROM notifications
	WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?)`

// Steps PurgeExpiredProgress reports.
const (
	PurgeStepNotifications = "notifications"
	PurgeStepAudit         = "audit"
	PurgeStepOAuthStates   = "oauth_states"
)

// pgPurgeBatchHeld is pgPurgeBatch leaving out rows under a legal hold;
// it runs only while some hold is active.
const pgPurgeBatchHeld = `WITH del AS (
		DELETE FROM notifications WHERE ctid = ANY(ARRAY(
			SELECT n.ctid FROM notifications n WHERE n.expires_at <= $1 AND NOT ` + "%s" + `
			ORDER BY n.expires_at LIMIT $2 FOR UPDATE OF n SKIP LOCKED))
		RETURNING tenant_id, created_day, channel, template, status
	), counted AS (` + statsUpsertHead + "del" + statsUpsertTail + ` RETURNING 1)
	SELECT count(*) FROM del`

// sqliteBatchRowsHeld is sqliteBatchRows leaving out held rows
// (arguments: now, now, limit).
const sqliteBatchRowsHeld = `(SELECT id, tenant_id, created_day, channel, template, status FROM notifications n
	WHERE expires_at <= ? AND NOT %s ORDER BY expires_at, id LIMIT ?)`

// PurgeExpired applies every tenant's retention policy at now:
//
//   - legal holds whose end date passed are recorded as expired (audited);
//   - notifications with ExpiresAt <= now are deleted in batches of
//     batchSize until a batch comes back short, each batch first counted
//     into delivery_stats in the same transaction;
//   - expired audit entries are deleted the same way (batched, without
//     statistics), expired OAuth states in one statement, ended holds once
//     the audit retention has passed since they ended;
//   - per tenant, imported events that ended longer ago than its window
//     are deleted, connections broken for longer than its window are put
//     into revocation, and subjects inactive for longer than its period are
//     erased or anonymised (inactivity.go).
//
// Records under an active legal hold are left alone and counted in
// Report.Held. Connections put into revocation are listed in
// Report.Revoking: the caller enqueues their cleanup. dryRun counts
// without changing anything.
//
// Report.Batches counts every notification batch run, the last (short,
// possibly empty) one included; a dry run reports the batches a real run
// would take.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time, batchSize int, dryRun bool) (PurgeReport, error) {
	return s.purgeExpired(ctx, now, batchSize, dryRun, nil)
}

// PurgeExpiredProgress is PurgeExpired (not a dry run) that calls progress
// with the report so far after each step: every notification batch, the
// audit entries, the OAuth states. An operator watching a purge of
// millions of rows sees it advance.
func (s *Store) PurgeExpiredProgress(ctx context.Context, now time.Time, batchSize int, progress func(step string, rep PurgeReport)) (PurgeReport, error) {
	return s.purgeExpired(ctx, now, batchSize, false, progress)
}

func (s *Store) purgeExpired(ctx context.Context, now time.Time, batchSize int, dryRun bool, progress func(string, PurgeReport)) (PurgeReport, error) {
	if progress == nil {
		progress = func(string, PurgeReport) {}
	}
	if batchSize <= 0 {
		batchSize = DefaultPurgeBatch
	}
	var rep PurgeReport
	if !dryRun {
		n, err := s.expireHolds(ctx, now)
		if err != nil {
			return rep, fmt.Errorf("purge: expire holds: %w", err)
		}
		rep.HoldsExpired = n
	}
	held, err := s.anyActiveHold(ctx, now)
	if err != nil {
		return rep, fmt.Errorf("purge: legal holds: %w", err)
	}
	if held {
		err := s.read.QueryRowContext(ctx, s.rebind(`SELECT
			(SELECT count(*) FROM notifications n WHERE n.expires_at <= ? AND `+heldSQL("n.tenant_id", "n.subject_id", "?")+`),
			(SELECT count(*) FROM audit a WHERE a.expires_at <= ? AND `+heldSQL("a.tenant_id", "a.subject_id", "?")+`)`),
			ms(now), ms(now), ms(now), ms(now)).Scan(&rep.Held.Notifications, &rep.Held.Audit)
		if err != nil {
			return rep, fmt.Errorf("purge: count held: %w", err)
		}
	}
	if dryRun {
		err := s.read.QueryRowContext(ctx, s.rebind(`SELECT
			(SELECT count(*) FROM notifications WHERE expires_at <= ?),
			(SELECT count(*) FROM audit WHERE expires_at <= ?),
			(SELECT count(*) FROM oauth_states WHERE expires_at <= ?)`), ms(now), ms(now), ms(now)).
			Scan(&rep.Notifications, &rep.Audit, &rep.OAuthStates)
		if err != nil {
			return PurgeReport{}, fmt.Errorf("purge: count: %w", err)
		}
		rep.Notifications -= rep.Held.Notifications
		rep.Audit -= rep.Held.Audit
		rep.Batches = int(rep.Notifications/int64(batchSize)) + 1
		if err := s.purgeTenants(ctx, now, true, &rep); err != nil {
			return rep, fmt.Errorf("purge: %w", err)
		}
		return rep, nil
	}
	started := time.Now()
	for {
		n, err := s.purgeBatch(ctx, ms(now), batchSize, held)
		if err != nil {
			return rep, fmt.Errorf("purge: batch %d: %w", rep.Batches+1, err)
		}
		rep.Batches++
		rep.Notifications += n
		progress(PurgeStepNotifications, rep)
		if n < int64(batchSize) {
			break
		}
	}
	for {
		query, args := s.auditPurge(), []any{ms(now), batchSize}
		if held {
			query, args = s.auditPurgeHeld(), []any{ms(now), ms(now), batchSize}
		}
		res, err := s.db.ExecContext(ctx, s.rebind(query), args...)
		if err != nil {
			return rep, fmt.Errorf("purge: audit: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return rep, fmt.Errorf("purge: audit: %w", err)
		}
		rep.Audit += n
		if n < int64(batchSize) {
			break
		}
	}
	progress(PurgeStepAudit, rep)
	res, err := s.db.ExecContext(ctx, s.rebind("DELETE FROM oauth_states WHERE expires_at <= ?"), ms(now))
	if err != nil {
		return rep, fmt.Errorf("purge: oauth states: %w", err)
	}
	if rep.OAuthStates, err = res.RowsAffected(); err != nil {
		return rep, fmt.Errorf("purge: oauth states: %w", err)
	}
	progress(PurgeStepOAuthStates, rep)
	// An ended hold is kept as long as the audit entries about it.
	if _, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM legal_holds WHERE ended_at > 0
		AND ended_at + (SELECT t.audit_retention_ms FROM tenants t WHERE t.id = legal_holds.tenant_id) <= ?`), ms(now)); err != nil {
		return rep, fmt.Errorf("purge: ended holds: %w", err)
	}
	if err := s.purgeTenants(ctx, now, false, &rep); err != nil {
		return rep, fmt.Errorf("purge: %w", err)
	}
	// The admin pages show when the last purge ran and what it deleted.
	if err := s.recordPurgeRun(ctx, PurgeRun{StartedAt: started, FinishedAt: time.Now(), Report: rep}); err != nil {
		return rep, fmt.Errorf("purge: %w", err)
	}
	return rep, nil
}

// auditPurge deletes one batch of expired audit entries (arguments: now,
// limit), by ctid on PostgreSQL for the reason given at pgPurgeBatch.
func (s *Store) auditPurge() string {
	if s.dialect == DialectPostgres {
		return `DELETE FROM audit WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM audit WHERE expires_at <= ? ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED))`
	}
	return `DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?)`
}

// auditPurgeHeld is auditPurge leaving out held entries (arguments: now,
// now, limit).
func (s *Store) auditPurgeHeld() string {
	notHeld := "NOT " + heldSQL("a.tenant_id", "a.subject_id", "?")
	if s.dialect == DialectPostgres {
		return `DELETE FROM audit WHERE ctid = ANY(ARRAY(
			SELECT a.ctid FROM audit a WHERE a.expires_at <= ? AND ` + notHeld + `
			ORDER BY a.expires_at LIMIT ? FOR UPDATE OF a SKIP LOCKED))`
	}
	return `DELETE FROM audit WHERE id IN (SELECT a.id FROM audit a WHERE a.expires_at <= ? AND ` + notHeld + `
		ORDER BY a.expires_at, a.id LIMIT ?)`
}

// purgeBatch deletes one batch of expired notifications; held leaves out
// those under a legal hold.
func (s *Store) purgeBatch(ctx context.Context, now int64, limit int, held bool) (int64, error) {
	if s.dialect == DialectPostgres {
		query := pgPurgeBatch
		if held {
			query = fmt.Sprintf(pgPurgeBatchHeld, heldSQL("n.tenant_id", "n.subject_id", "$1"))
		}
		var n int64
		err := s.db.QueryRowContext(ctx, query, now, limit).Scan(&n)
		return n, err
	}
	rows, args := sqliteBatchRows, []any{now, limit}
	if held {
		rows, args = fmt.Sprintf(sqliteBatchRowsHeld, heldSQL("n.tenant_id", "n.subject_id", "?")), []any{now, now, limit}
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, statsUpsertHead+rows+statsUpsertTail, args...); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM notifications WHERE id IN (SELECT id FROM `+rows+`)`, args...)
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// DeliveryStats returns a tenant's anonymous counters.
func (s *Store) DeliveryStats(ctx context.Context, tenantID string) ([]DeliveryStat, error) {
	rows, err := s.read.QueryContext(ctx, s.rebind(`SELECT tenant_id, day, channel, template, status, count
		FROM delivery_stats WHERE tenant_id = ? ORDER BY day, channel, template, status`), tenantID)
	if err != nil {
		return nil, fmt.Errorf("delivery stats: %w", err)
	}
	defer rows.Close()
	var out []DeliveryStat
	for rows.Next() {
		var d DeliveryStat
		if err := rows.Scan(&d.TenantID, &d.Day, &d.Channel, &d.Template, &d.Status, &d.Count); err != nil {
			return nil, fmt.Errorf("delivery stats: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delivery stats: %w", err)
	}
	return out, nil
}
