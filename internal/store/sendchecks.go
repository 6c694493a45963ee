package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SendChecks is what a worker must re-read immediately before a send
// (DESIGN "Consent is checked at the side effect"), fetched in one query
// because it runs once per message.
type SendChecks struct {
	Tenant      Tenant
	Restricted  bool
	SMSOptedOut bool
	// Consent is the latest decision for the purpose asked for, "" if none
	// (or if no purpose was asked for).
	Consent string
}

// SendChecks reads the tenant, the subject's flags and, when purpose is not
// empty, the subject's latest consent decision for it. An unknown tenant
// gives ErrNotFound; an unknown or empty subject has no flags and no consent.
func (s *Store) SendChecks(ctx context.Context, tenantID, subjectID, purpose string) (SendChecks, error) {
	var c SendChecks
	var retentionMS, auditMS, created int64
	var rules string
	err := s.read.QueryRowContext(ctx, s.rebind(`SELECT t.id, t.name, t.default_locale, t.notification_retention_ms, t.audit_retention_ms,
			t.reminder_rules, t.created_at,
			COALESCE(sub.restricted, FALSE), COALESCE(sub.sms_opted_out, FALSE),
			COALESCE((SELECT c.decision FROM consents c
				WHERE c.tenant_id = t.id AND c.subject_id = ? AND c.purpose = ?
				ORDER BY c.created_at DESC, c.id DESC LIMIT 1), '')
		FROM tenants t LEFT JOIN subjects sub ON sub.tenant_id = t.id AND sub.id = ?
		WHERE t.id = ?`), subjectID, purpose, subjectID, tenantID).Scan(
		&c.Tenant.ID, &c.Tenant.Name, &c.Tenant.DefaultLocale, &retentionMS, &auditMS, &rules, &created,
		&c.Restricted, &c.SMSOptedOut, &c.Consent)
	if errors.Is(err, sql.ErrNoRows) {
		return SendChecks{}, fmt.Errorf("send checks: tenant %w", ErrNotFound)
	}
	if err != nil {
		return SendChecks{}, fmt.Errorf("send checks: %w", err)
	}
	c.Tenant.NotificationRetention = time.Duration(retentionMS) * time.Millisecond
	c.Tenant.AuditRetention = time.Duration(auditMS) * time.Millisecond
	c.Tenant.CreatedAt = fromMS(created)
	if c.Tenant.ReminderRules, err = parseMinutes(rules); err != nil {
		return SendChecks{}, fmt.Errorf("send checks: tenant reminder rules: %w", err)
	}
	if c.Tenant.ReminderRules == nil {
		c.Tenant.ReminderRules = []time.Duration{}
	}
	return c, nil
}
