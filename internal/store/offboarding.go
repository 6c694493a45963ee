package store

// Tenant offboarding: all processing of a tenant stops in one commit, and
// after a grace period every personal row of the tenant is erased, leaving
// the anonymous counters (delivery_stats, usage_stats) and a non-personal
// trace (the tenant_offboarding row, one audit entry).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// DefaultOffboardingGrace is how long an offboarding can be cancelled
// before the tenant's personal data is erased.
const DefaultOffboardingGrace = 28 * 24 * time.Hour

// ReasonOffboarding is the state reason of connections revoked, and the
// status reason of notifications cancelled, by an offboarding.
const ReasonOffboarding = "tenant_offboarding"

// ErrOffboarding: the tenant is being offboarded (or was), so the request
// starts no new work.
var ErrOffboarding = errors.New("tenant is offboarding")

// Offboarding is the state of a tenant's offboarding.
type Offboarding struct {
	TenantID    string
	RequestedAt time.Time
	PurgeAt     time.Time // personal data is erased from then on
	PurgedAt    time.Time // zero until erased; then it cannot be cancelled
}

// OffboardReport says what BeginOffboarding stopped.
type OffboardReport struct {
	Offboarding Offboarding
	// Revoking lists the connections put into revocation; the caller
	// enqueues calendar:revoke for each (the same cleanup as a revocation).
	Revoking      []string
	Notifications int64 // scheduled notifications cancelled
	Keys          int64 // API keys suspended
}

// OffboardRequest says who offboards a tenant and for how long it can be
// cancelled.
type OffboardRequest struct {
	Grace    time.Duration // 0: DefaultOffboardingGrace
	Actor    string
	SourceIP string
	Now      time.Time
}

// notOffboarding is the claim condition that keeps workers from sending
// for an offboarding tenant, should a notification slip in after the
// offboarding committed (a request that authenticated just before it).
const notOffboarding = "NOT EXISTS (SELECT 1 FROM tenant_offboarding o WHERE o.tenant_id = notifications.tenant_id)"

const offboardingCols = "tenant_id, requested_at, purge_at, purged_at"

func scanOffboarding(r rowScanner) (Offboarding, error) {
	var o Offboarding
	var req, purge, purged int64
	if err := r.Scan(&o.TenantID, &req, &purge, &purged); err != nil {
		return Offboarding{}, err
	}
	o.RequestedAt, o.PurgeAt, o.PurgedAt = fromMS(req), fromMS(purge), fromMS(purged)
	return o, nil
}

// GetOffboarding returns the tenant's offboarding; ErrNotFound if it is
// not being offboarded.
func (s *Store) GetOffboarding(ctx context.Context, tenantID string) (Offboarding, error) {
	o, err := scanOffboarding(s.read.QueryRowContext(ctx, s.rebind(
		"SELECT "+offboardingCols+" FROM tenant_offboarding WHERE tenant_id = ?"), tenantID))
	if err != nil {
		return Offboarding{}, fmt.Errorf("get offboarding: %w", notFound(err))
	}
	return o, nil
}

// BeginOffboarding stops all processing of a tenant in one transaction:
// every live connection is revoked as BeginRevocation would (ledger and
// audit entries, after calendar writes in flight finish), scheduled
// notifications are cancelled, pending OAuth authorizations dropped, the
// tenant's API keys are suspended, and the erasure is due at Now + Grace. ErrConflict if the tenant is already
// offboarding; ErrNotFound for an unknown tenant.
func (s *Store) BeginOffboarding(ctx context.Context, tenantID string, req OffboardRequest) (OffboardReport, error) {
	if req.Grace < 0 {
		return OffboardReport{}, errors.New("begin offboarding: negative grace period")
	}
	if req.Grace == 0 {
		req.Grace = DefaultOffboardingGrace
	}
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	now := truncMS(req.Now)
	for attempt := 0; ; attempt++ {
		live, err := queryStrings(ctx, s.read, s.rebind("SELECT id FROM connections WHERE tenant_id = ? AND state IN "+liveStates+" ORDER BY id"), tenantID)
		if err != nil {
			return OffboardReport{}, fmt.Errorf("begin offboarding: connections: %w", err)
		}
		release := s.fenceExclusive(live)
		var rep OffboardReport
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			var err error
			rep, err = s.beginOffboarding(ctx, tx, tenantID, req, now, live)
			return err
		})
		release()
		if errors.Is(err, errFenceMoved) && attempt < 5 {
			continue
		}
		if err != nil {
			return OffboardReport{}, fmt.Errorf("begin offboarding: %w", err)
		}
		return rep, nil
	}
}

func (s *Store) beginOffboarding(ctx context.Context, tx *sql.Tx, tenantID string, req OffboardRequest, now time.Time, fenced []string) (OffboardReport, error) {
	var rep OffboardReport
	// No row lock on the tenant: FOR UPDATE would block every insert that
	// references it (foreign keys take KEY SHARE) and could deadlock with a
	// calendar write holding a fence; the offboarding row's primary key
	// serialises concurrent offboardings instead.
	var one int
	if err := tx.QueryRowContext(ctx, s.rebind("SELECT 1 FROM tenants WHERE id = ?"), tenantID).Scan(&one); err != nil {
		return rep, fmt.Errorf("tenant: %w", notFound(err))
	}
	res, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO tenant_offboarding (`+offboardingCols+`) VALUES (?, ?, ?, 0)
		ON CONFLICT (tenant_id) DO NOTHING`), tenantID, ms(now), ms(now.Add(req.Grace)))
	if err != nil {
		return rep, fmt.Errorf("record: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return rep, fmt.Errorf("already offboarding: %w", ErrConflict)
	}
	rep.Offboarding = Offboarding{TenantID: tenantID, RequestedAt: now, PurgeAt: now.Add(req.Grace)}

	for _, id := range fenced {
		if err := s.pgFence(ctx, tx, id, true); err != nil {
			return rep, err
		}
	}
	live, err := queryStrings(ctx, tx, s.rebind("SELECT id FROM connections WHERE tenant_id = ? AND state IN "+liveStates+" ORDER BY id"+s.forUpdate()), tenantID)
	if err != nil {
		return rep, fmt.Errorf("connections: %w", err)
	}
	r := Revocation{Actor: req.Actor, Reason: ReasonOffboarding, SourceIP: req.SourceIP}
	for _, id := range live {
		if !slices.Contains(fenced, id) {
			return rep, errFenceMoved
		}
		if _, err := s.revokeTx(ctx, tx, id, r, now); err != nil {
			return rep, fmt.Errorf("revoke %s: %w", id, err)
		}
	}
	// Revocations already under way are listed too: their cleanup may
	// still need a task.
	if rep.Revoking, err = queryStrings(ctx, tx, s.rebind("SELECT id FROM connections WHERE tenant_id = ? AND state = 'revoking' ORDER BY id"), tenantID); err != nil {
		return rep, fmt.Errorf("connections: %w", err)
	}
	if res, err = tx.ExecContext(ctx, s.rebind(`UPDATE notifications
		SET status = 'cancelled', status_reason = ?, claimed_until = 0, updated_at = ?, `+finalSet+`
		WHERE tenant_id = ? AND status = 'scheduled'`), ReasonOffboarding, ms(now), ms(now), ms(now), tenantID); err != nil {
		return rep, fmt.Errorf("notifications: %w", err)
	}
	if rep.Notifications, err = res.RowsAffected(); err != nil {
		return rep, fmt.Errorf("notifications: %w", err)
	}
	// A pending Google authorization would otherwise still create a
	// connection when the browser comes back.
	if _, err = tx.ExecContext(ctx, s.rebind("DELETE FROM oauth_states WHERE tenant_id = ?"), tenantID); err != nil {
		return rep, fmt.Errorf("oauth states: %w", err)
	}
	if res, err = tx.ExecContext(ctx, s.rebind("UPDATE api_keys SET suspended_at = ? WHERE tenant_id = ? AND disabled_at = 0 AND suspended_at = 0"),
		ms(now), tenantID); err != nil {
		return rep, fmt.Errorf("api keys: %w", err)
	}
	if rep.Keys, err = res.RowsAffected(); err != nil {
		return rep, fmt.Errorf("api keys: %w", err)
	}
	err = s.insertAudit(ctx, tx, &AuditEntry{TenantID: tenantID, Actor: req.Actor, Action: "tenant.offboard", TargetKind: "tenant",
		TargetID: tenantID, SourceIP: req.SourceIP, Detail: fmt.Sprintf("connections=%d notifications=%d keys=%d purge_at=%s",
			len(live), rep.Notifications, rep.Keys, rep.Offboarding.PurgeAt.Format(time.RFC3339))}, now)
	if err != nil {
		return rep, fmt.Errorf("audit: %w", err)
	}
	return rep, nil
}

// CancelOffboarding ends an offboarding within its grace period: the
// suspended API keys work again. Revoked connections stay revoked and
// cancelled notifications stay cancelled (consent withdrawn on the
// customers' behalf is not silently restored). ErrConflict if the tenant
// is not offboarding or the grace period is over (erased or about to be).
func (s *Store) CancelOffboarding(ctx context.Context, tenantID, actor, sourceIP string, now time.Time) error {
	now = truncMS(now)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		o, err := scanOffboarding(tx.QueryRowContext(ctx, s.rebind(
			"SELECT "+offboardingCols+" FROM tenant_offboarding WHERE tenant_id = ?"+s.forUpdate()), tenantID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("not offboarding: %w", ErrConflict)
		}
		if err != nil {
			return err
		}
		if !o.PurgedAt.IsZero() || !now.Before(o.PurgeAt) {
			return fmt.Errorf("grace period over: %w", ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, s.rebind("DELETE FROM tenant_offboarding WHERE tenant_id = ?"), tenantID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.rebind("UPDATE api_keys SET suspended_at = 0 WHERE tenant_id = ? AND suspended_at <> 0"), tenantID)
		if err != nil {
			return fmt.Errorf("api keys: %w", err)
		}
		keys, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("api keys: %w", err)
		}
		return s.insertAudit(ctx, tx, &AuditEntry{TenantID: tenantID, Actor: actor, Action: "tenant.offboard_cancel",
			TargetKind: "tenant", TargetID: tenantID, SourceIP: sourceIP, Detail: fmt.Sprintf("keys=%d", keys)}, now)
	})
	if err != nil {
		return fmt.Errorf("cancel offboarding: %w", err)
	}
	return nil
}

// OffboardPurgeReport says what PurgeOffboarded erased.
type OffboardPurgeReport struct {
	Tenants int   // tenants erased
	Rows    int64 // personal rows deleted
	// Held counts tenants due for erasure that a legal hold keeps: their
	// erasure waits until every hold on them has ended.
	Held int
}

// offboardDeletes are the tenant's personal rows, children first. The
// tenant id is the only argument of each.
var offboardDeletes = []struct{ what, sql string }{
	{"external events", "DELETE FROM external_events WHERE connection_id IN (SELECT id FROM connections WHERE tenant_id = ?)"},
	{"links", "DELETE FROM links WHERE connection_id IN (SELECT id FROM connections WHERE tenant_id = ?)"},
	{"connections", "DELETE FROM connections WHERE tenant_id = ?"},
	{"oauth states", "DELETE FROM oauth_states WHERE tenant_id = ?"},
	{"appointment subjects", "DELETE FROM appointment_subjects WHERE tenant_id = ?"},
	{"appointments", "DELETE FROM appointments WHERE tenant_id = ?"},
	{"consents", "DELETE FROM consents WHERE tenant_id = ?"},
	{"audit", "DELETE FROM audit WHERE tenant_id = ?"},
	{"subjects", "DELETE FROM subjects WHERE tenant_id = ?"},
	{"admin sessions", "DELETE FROM admin_sessions WHERE tenant_id = ?"},
	{"api keys", "DELETE FROM api_keys WHERE tenant_id = ?"},
	// Reasons may name people; the holds have ended (see PurgeOffboarded).
	{"legal holds", "DELETE FROM legal_holds WHERE tenant_id = ?"},
	{"controller", "DELETE FROM tenant_controllers WHERE tenant_id = ?"},
}

// PurgeOffboarded erases every tenant whose grace period ended by now:
// notifications are counted into delivery_stats and deleted in batches of
// batchSize, then every other personal row (connections with their
// credentials, imported events and links — whether or not their calendar
// cleanup finished —, OAuth states, appointments, consents, audit
// entries, subjects, API keys, controller details) goes in one
// transaction, the tenant's name is blanked and purged_at set. What stays:
// delivery_stats, usage_stats, the tenant id with its settings, the
// tenant_offboarding row and one "tenant.purge" audit entry counting rows.
func (s *Store) PurgeOffboarded(ctx context.Context, now time.Time, batchSize int) (OffboardPurgeReport, error) {
	if batchSize <= 0 {
		batchSize = DefaultPurgeBatch
	}
	now = truncMS(now)
	due, err := queryStrings(ctx, s.read, s.rebind(
		"SELECT tenant_id FROM tenant_offboarding WHERE purged_at = 0 AND purge_at <= ? ORDER BY purge_at, tenant_id"), ms(now))
	if err != nil {
		return OffboardPurgeReport{}, fmt.Errorf("purge offboarded: %w", err)
	}
	var rep OffboardPurgeReport
	for _, tenantID := range due {
		// A hold on the tenant or on any of its subjects keeps the whole
		// erasure waiting: erasing around held records would leave them
		// without the context (consents, audit) a hold exists to keep.
		var holds int
		if err := s.read.QueryRowContext(ctx, s.rebind(`SELECT count(*) FROM legal_holds
			WHERE tenant_id = ? AND ended_at = 0 AND until_at > ?`), tenantID, ms(now)).Scan(&holds); err != nil {
			return rep, fmt.Errorf("purge offboarded: tenant %s: holds: %w", tenantID, err)
		}
		if holds > 0 {
			rep.Held++
			continue
		}
		n, err := s.purgeTenant(ctx, tenantID, now, batchSize)
		rep.Rows += n
		if err != nil {
			return rep, fmt.Errorf("purge offboarded: tenant %s: %w", tenantID, err)
		}
		rep.Tenants++
	}
	return rep, nil
}

func (s *Store) purgeTenant(ctx context.Context, tenantID string, now time.Time, batchSize int) (int64, error) {
	var total int64
	for {
		n, err := s.purgeTenantNotifications(ctx, tenantID, batchSize)
		total += n
		if err != nil {
			return total, fmt.Errorf("notifications: %w", err)
		}
		if n < int64(batchSize) {
			break
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Cancelled meanwhile (or erased by a concurrent run): nothing to do.
		var purgeAt, purgedAt int64
		err := tx.QueryRowContext(ctx, s.rebind("SELECT purge_at, purged_at FROM tenant_offboarding WHERE tenant_id = ?"+s.forUpdate()), tenantID).
			Scan(&purgeAt, &purgedAt)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (purgedAt != 0 || purgeAt > ms(now))) {
			return nil
		}
		if err != nil {
			return err
		}
		var rows int64
		for _, d := range offboardDeletes {
			res, err := tx.ExecContext(ctx, s.rebind(d.sql), tenantID)
			if err != nil {
				return fmt.Errorf("%s: %w", d.what, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("%s: %w", d.what, err)
			}
			rows += n
		}
		// Notifications written after the batches above (none are expected:
		// the keys are suspended) go uncounted rather than stay.
		res, err := tx.ExecContext(ctx, s.rebind("DELETE FROM notifications WHERE tenant_id = ?"), tenantID)
		if err != nil {
			return fmt.Errorf("notifications: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("notifications: %w", err)
		}
		rows += n
		// The name may be a person's (a sole trader's practice).
		if _, err := tx.ExecContext(ctx, s.rebind("UPDATE tenants SET name = '' WHERE id = ?"), tenantID); err != nil {
			return fmt.Errorf("tenant: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.rebind("UPDATE tenant_offboarding SET purged_at = ? WHERE tenant_id = ?"), ms(now), tenantID); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		total += rows
		return s.insertAudit(ctx, tx, &AuditEntry{TenantID: tenantID, Actor: "system", Action: "tenant.purge", TargetKind: "tenant",
			TargetID: tenantID, Detail: fmt.Sprintf("rows=%d", total)}, now)
	})
	return total, err
}

// purgeTenantNotifications counts one batch of the tenant's notifications
// into delivery_stats and deletes it, in one transaction.
func (s *Store) purgeTenantNotifications(ctx context.Context, tenantID string, limit int) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// A cancellation that committed meanwhile stops the erasure; the
		// lock keeps one from committing during this batch.
		var purged int64
		err := tx.QueryRowContext(ctx, s.rebind("SELECT purged_at FROM tenant_offboarding WHERE tenant_id = ?"+s.forUpdate()), tenantID).Scan(&purged)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && purged != 0) {
			return nil
		}
		if err != nil {
			return err
		}
		ids, err := queryStrings(ctx, tx, s.rebind("SELECT id FROM notifications WHERE tenant_id = ? ORDER BY id LIMIT ?"+s.forUpdate()),
			tenantID, limit)
		if err != nil || len(ids) == 0 {
			return err
		}
		in := "(" + placeholders(len(ids)) + ")"
		args := anys(ids)
		if _, err := tx.ExecContext(ctx, s.rebind(statsUpsertHead+
			"(SELECT tenant_id, created_day, channel, template, status FROM notifications WHERE id IN "+in+")"+statsUpsertTail), args...); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.rebind("DELETE FROM notifications WHERE id IN "+in), args...)
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
