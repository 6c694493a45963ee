package store

// Retention policy per tenant and legal holds. The purge that applies both
// is in purge.go and inactivity.go.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Day is the unit retention windows are set in.
const Day = 24 * time.Hour

// Retention defaults beyond DefaultNotificationRetention and
// DefaultAuditRetention (tenants.go).
const (
	DefaultImportedEventRetention     = 30 * Day
	DefaultBrokenConnectionRetention  = 30 * Day
	DefaultInactivityPeriod           = 1825 * Day // 5 years
	InactivityErase                   = "erase"
	InactivityAnonymise               = "anonymise"
	DefaultInactivityAction           = InactivityErase
	maxHoldReasonLen                  = 500
	maxHoldDuration                   = 3650 * Day
	holdScopeTenant, holdScopeSubject = "tenant", "subject"
)

// RetentionPolicy is how long a tenant's records are kept.
type RetentionPolicy struct {
	// Notifications: after a notification's final state.
	Notifications time.Duration
	// Audit: after an audit entry was written.
	Audit time.Duration
	// ImportedEvents: after an imported event ended.
	ImportedEvents time.Duration
	// BrokenConnections: how long a broken connection is kept before it is
	// revoked (with the full cleanup of a revocation).
	BrokenConnections time.Duration
	// InactiveSubjects: a subject without appointment, notification,
	// consent or connection activity for this long is treated by
	// InactivityAction (erase or anonymise).
	InactiveSubjects time.Duration
	InactivityAction string
}

// DefaultRetentionPolicy is a new tenant's policy.
func DefaultRetentionPolicy() RetentionPolicy {
	return RetentionPolicy{
		Notifications:     DefaultNotificationRetention,
		Audit:             DefaultAuditRetention,
		ImportedEvents:    DefaultImportedEventRetention,
		BrokenConnections: DefaultBrokenConnectionRetention,
		InactiveSubjects:  DefaultInactivityPeriod,
		InactivityAction:  DefaultInactivityAction,
	}
}

// Policy field names, as FieldError.Field reports them.
const (
	PolicyNotifications     = "notifications"
	PolicyAudit             = "audit"
	PolicyImportedEvents    = "imported_events"
	PolicyBrokenConnections = "broken_connections"
	PolicyInactiveSubjects  = "inactive_subjects"
	PolicyInactivityAction  = "inactivity_action"
)

// policyLimit is the allowed range of one retention window, in days.
type policyLimit struct {
	Field    string
	Min, Max int
}

// policyLimits are the bounds every window is checked against, in the
// order of RetentionPolicy.windows. The audit log must cover at least a
// month of disputes; an inactive subject is given at least a year.
var policyLimits = []policyLimit{
	{PolicyNotifications, 1, 3650},
	{PolicyAudit, 30, 3650},
	{PolicyImportedEvents, 1, 3650},
	{PolicyBrokenConnections, 1, 365},
	{PolicyInactiveSubjects, 365, 3650},
}

// FieldError is input refused by a rule; Field names the input, Rule says
// what it must be.
type FieldError struct {
	Field string
	Rule  string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

func (p RetentionPolicy) windows() []time.Duration {
	return []time.Duration{p.Notifications, p.Audit, p.ImportedEvents, p.BrokenConnections, p.InactiveSubjects}
}

// Validate checks every window against policyLimits (whole days) and the
// inactivity action; the first violation is returned as a *FieldError.
func (p RetentionPolicy) Validate() error {
	for i, d := range p.windows() {
		l := policyLimits[i]
		if d%Day != 0 || d < time.Duration(l.Min)*Day || d > time.Duration(l.Max)*Day {
			return &FieldError{Field: l.Field, Rule: fmt.Sprintf("must be a whole number of days from %d to %d", l.Min, l.Max)}
		}
	}
	if p.InactivityAction != InactivityErase && p.InactivityAction != InactivityAnonymise {
		return &FieldError{Field: PolicyInactivityAction, Rule: "must be erase or anonymise"}
	}
	return nil
}

// describe lists the windows that differ from old, "field=old->new", for
// the audit entry of a change (durations and an action: nothing personal).
func (p RetentionPolicy) describe(old RetentionPolicy) string {
	var parts []string
	nw, ow := p.windows(), old.windows()
	for i := range nw {
		if nw[i] != ow[i] {
			parts = append(parts, fmt.Sprintf("%s=%dd->%dd", policyLimits[i].Field, ow[i]/Day, nw[i]/Day))
		}
	}
	if p.InactivityAction != old.InactivityAction {
		parts = append(parts, PolicyInactivityAction+"="+old.InactivityAction+"->"+p.InactivityAction)
	}
	return strings.Join(parts, " ")
}

const policyCols = `notification_retention_ms, audit_retention_ms, imported_event_retention_ms,
	broken_connection_retention_ms, inactivity_ms, inactivity_action`

func scanPolicy(r rowScanner) (RetentionPolicy, error) {
	var n, a, e, b, i int64
	var p RetentionPolicy
	if err := r.Scan(&n, &a, &e, &b, &i, &p.InactivityAction); err != nil {
		return RetentionPolicy{}, err
	}
	p.Notifications, p.Audit, p.ImportedEvents = time.Duration(n)*time.Millisecond, time.Duration(a)*time.Millisecond, time.Duration(e)*time.Millisecond
	p.BrokenConnections, p.InactiveSubjects = time.Duration(b)*time.Millisecond, time.Duration(i)*time.Millisecond
	return p, nil
}

// GetRetentionPolicy returns a tenant's policy; ErrNotFound for an unknown tenant.
func (s *Store) GetRetentionPolicy(ctx context.Context, tenantID string) (RetentionPolicy, error) {
	p, err := scanPolicy(s.read.QueryRowContext(ctx, s.rebind("SELECT "+policyCols+" FROM tenants WHERE id = ?"), tenantID))
	if err != nil {
		return RetentionPolicy{}, fmt.Errorf("get retention policy: %w", notFound(err))
	}
	return p, nil
}

// SetRetentionPolicy validates p (a *FieldError if it breaks a rule;
// nothing is stored then) and stores it. A change applies to the records
// already stored too: the expiry of the tenant's notifications and of its
// audit entries is recomputed, so the next purge follows the new
// windows. A change is audited with the old and new values; storing the
// same policy again changes and audits nothing.
func (s *Store) SetRetentionPolicy(ctx context.Context, tenantID string, p RetentionPolicy, actor, sourceIP string, now time.Time) (RetentionPolicy, error) {
	if err := p.Validate(); err != nil {
		return RetentionPolicy{}, fmt.Errorf("set retention policy: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		old, err := scanPolicy(tx.QueryRowContext(ctx, s.rebind("SELECT "+policyCols+" FROM tenants WHERE id = ?"+s.forUpdate()), tenantID))
		if err != nil {
			return notFound(err)
		}
		change := p.describe(old)
		if change == "" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE tenants SET notification_retention_ms = ?, audit_retention_ms = ?,
			imported_event_retention_ms = ?, broken_connection_retention_ms = ?, inactivity_ms = ?, inactivity_action = ?
			WHERE id = ?`), p.Notifications.Milliseconds(), p.Audit.Milliseconds(), p.ImportedEvents.Milliseconds(),
			p.BrokenConnections.Milliseconds(), p.InactiveSubjects.Milliseconds(), p.InactivityAction, tenantID); err != nil {
			return fmt.Errorf("update: %w", err)
		}
		if p.Notifications != old.Notifications {
			// As when written: from the final state, or from send_at
			// while there is none yet.
			if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE notifications
				SET expires_at = CASE WHEN final_at > 0 THEN final_at ELSE send_at END + ? WHERE tenant_id = ?`),
				p.Notifications.Milliseconds(), tenantID); err != nil {
				return fmt.Errorf("notification expiry: %w", err)
			}
		}
		if p.Audit != old.Audit {
			if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE audit SET expires_at = created_at + ? WHERE tenant_id = ?`),
				p.Audit.Milliseconds(), tenantID); err != nil {
				return fmt.Errorf("audit expiry: %w", err)
			}
		}
		return s.insertAudit(ctx, tx, &AuditEntry{TenantID: tenantID, Actor: actor, Action: "retention.update",
			TargetKind: "tenant", TargetID: tenantID, SourceIP: sourceIP, Detail: change}, now)
	})
	if err != nil {
		return RetentionPolicy{}, fmt.Errorf("set retention policy: %w", err)
	}
	return p, nil
}

// Legal hold states, as LegalHold.State reports them.
const (
	HoldActive   = "active"
	HoldReleased = "released"
	HoldExpired  = "expired"
)

// LegalHold keeps records from purges and erasure: a subject's, or with
// SubjectID "" the whole tenant's, until it is released or Until passes.
type LegalHold struct {
	ID        string
	TenantID  string
	SubjectID string // "" = the whole tenant
	Reason    string
	Actor     string
	CreatedAt time.Time
	Until     time.Time
	EndedAt   time.Time // zero while not released or noticed expired
	EndReason string    // HoldReleased or HoldExpired once ended
	EndedBy   string
}

// State is HoldActive, HoldReleased or HoldExpired at now; a hold whose
// end date passed is expired even before the purge records that.
func (h LegalHold) State(now time.Time) string {
	switch {
	case h.EndReason != "":
		return h.EndReason
	case !h.Until.After(now):
		return HoldExpired
	default:
		return HoldActive
	}
}

func (h LegalHold) scope() string {
	if h.SubjectID == "" {
		return holdScopeTenant
	}
	return holdScopeSubject
}

// ErrHeld is matched (errors.Is) by a *HeldError.
var ErrHeld = errors.New("under legal hold")

// HeldError refuses an erasure: a legal hold covers the records.
type HeldError struct {
	HoldID string
	Until  time.Time
	Tenant bool // the hold covers the whole tenant
}

func (e *HeldError) Error() string {
	scope := "the subject"
	if e.Tenant {
		scope = "the whole tenant"
	}
	return fmt.Sprintf("legal hold %s covers %s until %s", e.HoldID, scope, e.Until.Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

const holdCols = "id, tenant_id, subject_id, reason, actor, created_at, until_at, ended_at, end_reason, ended_by"

func scanHold(r rowScanner) (LegalHold, error) {
	var h LegalHold
	var created, until, ended int64
	if err := r.Scan(&h.ID, &h.TenantID, &h.SubjectID, &h.Reason, &h.Actor, &created, &until, &ended, &h.EndReason, &h.EndedBy); err != nil {
		return LegalHold{}, err
	}
	h.CreatedAt, h.Until, h.EndedAt = fromMS(created), fromMS(until), fromMS(ended)
	return h, nil
}

// checkHold validates a hold request (*FieldError).
func checkHold(h LegalHold, now time.Time) error {
	reason := strings.TrimSpace(h.Reason)
	switch {
	case len(h.SubjectID) > 200:
		return &FieldError{Field: "subject_id", Rule: "must be at most 200 characters"}
	case reason == "" || utf8.RuneCountInString(reason) > maxHoldReasonLen:
		return &FieldError{Field: "reason", Rule: fmt.Sprintf("must be 1 to %d characters", maxHoldReasonLen)}
	case !h.Until.After(now):
		return &FieldError{Field: "until", Rule: "must be in the future"}
	case h.Until.Sub(now) > maxHoldDuration:
		return &FieldError{Field: "until", Rule: fmt.Sprintf("must be at most %d days ahead", maxHoldDuration/Day)}
	}
	return nil
}

// PlaceHold stores a legal hold (TenantID, SubjectID, Reason, Until,
// Actor) and audits it. Invalid input gives a *FieldError and stores
// nothing. The audit entry names the hold, its scope and end date, not
// the reason (free text, kept on the hold itself).
func (s *Store) PlaceHold(ctx context.Context, h LegalHold, sourceIP string, now time.Time) (LegalHold, error) {
	if err := checkHold(h, now); err != nil {
		return LegalHold{}, fmt.Errorf("place hold: %w", err)
	}
	h.ID = newID("hld_")
	h.Reason = strings.TrimSpace(h.Reason)
	h.CreatedAt, h.Until = truncMS(now), truncMS(h.Until)
	h.EndedAt, h.EndReason, h.EndedBy = time.Time{}, "", ""
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.rebind("INSERT INTO legal_holds ("+holdCols+") VALUES (?, ?, ?, ?, ?, ?, ?, 0, '', '')"),
			h.ID, h.TenantID, h.SubjectID, h.Reason, h.Actor, ms(h.CreatedAt), ms(h.Until)); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, &AuditEntry{TenantID: h.TenantID, Actor: h.Actor, Action: "hold.place",
			TargetKind: "hold", TargetID: h.ID, SubjectID: h.SubjectID, SourceIP: sourceIP,
			Detail: "scope=" + h.scope() + " until=" + h.Until.Format(time.RFC3339)}, now)
	})
	if err != nil {
		return LegalHold{}, fmt.Errorf("place hold: %w", notFound(err))
	}
	return h, nil
}

// ListHolds lists a tenant's holds, newest first, ended ones included.
func (s *Store) ListHolds(ctx context.Context, tenantID string) ([]LegalHold, error) {
	out, err := queryAll(ctx, s.read, scanHold, s.rebind("SELECT "+holdCols+" FROM legal_holds WHERE tenant_id = ? ORDER BY created_at DESC, id DESC"), tenantID)
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", err)
	}
	return out, nil
}

// ReleaseHold ends a hold before its end date and audits it. Releasing a
// hold that already ended returns it unchanged; ErrNotFound if the tenant
// has no such hold.
func (s *Store) ReleaseHold(ctx context.Context, tenantID, id, actor, sourceIP string, now time.Time) (LegalHold, error) {
	var h LegalHold
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		h, err = scanHold(tx.QueryRowContext(ctx, s.rebind("SELECT "+holdCols+" FROM legal_holds WHERE tenant_id = ? AND id = ?"+s.forUpdate()), tenantID, id))
		if err != nil {
			return notFound(err)
		}
		if h.EndReason != "" {
			return nil
		}
		if !h.Until.After(now) {
			// Its end date passed first: record that, as the purge would.
			return s.endHold(ctx, tx, &h, HoldExpired, "system", "", h.Until, now)
		}
		return s.endHold(ctx, tx, &h, HoldReleased, actor, sourceIP, now, now)
	})
	if err != nil {
		return LegalHold{}, fmt.Errorf("release hold: %w", err)
	}
	return h, nil
}

// endHold marks h ended at endedAt and audits it ("hold.release" or
// "hold.expire") at now.
func (s *Store) endHold(ctx context.Context, tx *sql.Tx, h *LegalHold, reason, actor, sourceIP string, endedAt, now time.Time) error {
	h.EndedAt, h.EndReason, h.EndedBy = truncMS(endedAt), reason, actor
	if _, err := tx.ExecContext(ctx, s.rebind("UPDATE legal_holds SET ended_at = ?, end_reason = ?, ended_by = ? WHERE id = ?"),
		ms(h.EndedAt), h.EndReason, h.EndedBy, h.ID); err != nil {
		return err
	}
	action := "hold.release"
	if reason == HoldExpired {
		action = "hold.expire"
	}
	return s.insertAudit(ctx, tx, &AuditEntry{TenantID: h.TenantID, Actor: actor, Action: action,
		TargetKind: "hold", TargetID: h.ID, SubjectID: h.SubjectID, SourceIP: sourceIP,
		Detail: "scope=" + h.scope() + " until=" + h.Until.Format(time.RFC3339)}, now)
}

// expireHolds records every hold whose end date passed by now as expired,
// audited; it returns how many.
func (s *Store) expireHolds(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		due, err := queryAll(ctx, tx, scanHold, s.rebind("SELECT "+holdCols+" FROM legal_holds WHERE ended_at = 0 AND until_at <= ? ORDER BY until_at, id"+s.forUpdate()), ms(now))
		if err != nil {
			return err
		}
		for i := range due {
			if err := s.endHold(ctx, tx, &due[i], HoldExpired, "system", "", due[i].Until, now); err != nil {
				return err
			}
		}
		n = int64(len(due))
		return nil
	})
	return n, err
}

// heldSQL is true for a row whose tenant (column t) and subject (column
// subj) are covered by a hold active at the argument named by now ("?" or
// "$1").
func heldSQL(t, subj, now string) string {
	return `EXISTS (SELECT 1 FROM legal_holds h WHERE h.tenant_id = ` + t + ` AND (h.subject_id = '' OR h.subject_id = ` + subj + `)
		AND h.ended_at = 0 AND h.until_at > ` + now + `)`
}

// activeHold returns the hold covering the subject at now (a tenant-wide
// one first), as a *HeldError, or nil.
func (s *Store) activeHold(ctx context.Context, q querier, tenantID, subjectID string, now time.Time) error {
	h, err := scanHold(q.QueryRowContext(ctx, s.rebind(`SELECT `+holdCols+` FROM legal_holds
		WHERE tenant_id = ? AND (subject_id = '' OR subject_id = ?) AND ended_at = 0 AND until_at > ?
		ORDER BY subject_id, until_at DESC LIMIT 1`), tenantID, subjectID, ms(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("legal holds: %w", err)
	}
	return &HeldError{HoldID: h.ID, Until: h.Until, Tenant: h.SubjectID == ""}
}

// anyActiveHold says whether any tenant has a hold active at now; purges
// take their plain (faster) statements when none has.
func (s *Store) anyActiveHold(ctx context.Context, now time.Time) (bool, error) {
	var n int
	err := s.read.QueryRowContext(ctx, s.rebind("SELECT count(*) FROM legal_holds WHERE ended_at = 0 AND until_at > ?"), ms(now)).Scan(&n)
	return n > 0, err
}
