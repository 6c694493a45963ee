package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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

// CheckKey is one (subject, consent purpose) pair for SendChecksBatch.
type CheckKey struct {
	SubjectID, Purpose string
}

// sendChecksChunk bounds the keys of one SendChecksBatch query (two
// parameters each).
const sendChecksChunk = 200

// SendChecksBatch is SendChecks for many keys of one tenant: one query per
// sendChecksChunk distinct keys instead of one per key. Every key gets the
// answer SendChecks would give for it (an empty subject has no flags and no
// consent; an empty purpose has no consent). An unknown tenant gives
// ErrNotFound. No keys give an empty map without a query.
func (s *Store) SendChecksBatch(ctx context.Context, tenantID string, keys []CheckKey) (map[CheckKey]SendChecks, error) {
	distinct := make([]CheckKey, 0, len(keys))
	seen := make(map[CheckKey]bool, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			distinct = append(distinct, k)
		}
	}
	out := make(map[CheckKey]SendChecks, len(distinct))
	for len(distinct) > 0 {
		chunk := distinct[:min(len(distinct), sendChecksChunk)]
		distinct = distinct[len(chunk):]
		if err := s.sendChecksChunk(ctx, tenantID, chunk, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sendChecksChunk runs the query of SendChecks for up to sendChecksChunk
// keys at once: the keys as a VALUES list, joined to the tenant and the
// subjects, with the latest consent per key from a correlated subquery
// (served by the consents_subject index).
func (s *Store) sendChecksChunk(ctx context.Context, tenantID string, keys []CheckKey, out map[CheckKey]SendChecks) error {
	args := make([]any, 0, 2*len(keys)+1)
	for _, k := range keys {
		args = append(args, k.SubjectID, k.Purpose)
	}
	args = append(args, tenantID)
	rows, err := s.read.QueryContext(ctx, s.rebind(`WITH k (subject_id, purpose) AS (VALUES (?, ?)`+strings.Repeat(", (?, ?)", len(keys)-1)+`)
		SELECT k.subject_id, k.purpose,
			t.id, t.name, t.default_locale, t.notification_retention_ms, t.audit_retention_ms,
			t.reminder_rules, t.created_at,
			COALESCE(sub.restricted, FALSE), COALESCE(sub.sms_opted_out, FALSE),
			COALESCE((SELECT c.decision FROM consents c
				WHERE c.tenant_id = t.id AND c.subject_id = k.subject_id AND c.purpose = k.purpose
				ORDER BY c.created_at DESC, c.id DESC LIMIT 1), '')
		FROM tenants t CROSS JOIN k
		LEFT JOIN subjects sub ON sub.tenant_id = t.id AND sub.id = k.subject_id
		WHERE t.id = ?`), args...)
	if err != nil {
		return fmt.Errorf("send checks batch: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var k CheckKey
		var c SendChecks
		var retentionMS, auditMS, created int64
		var rules string
		if err := rows.Scan(&k.SubjectID, &k.Purpose,
			&c.Tenant.ID, &c.Tenant.Name, &c.Tenant.DefaultLocale, &retentionMS, &auditMS, &rules, &created,
			&c.Restricted, &c.SMSOptedOut, &c.Consent); err != nil {
			return fmt.Errorf("send checks batch: %w", err)
		}
		c.Tenant.NotificationRetention = time.Duration(retentionMS) * time.Millisecond
		c.Tenant.AuditRetention = time.Duration(auditMS) * time.Millisecond
		c.Tenant.CreatedAt = fromMS(created)
		if c.Tenant.ReminderRules, err = parseMinutes(rules); err != nil {
			return fmt.Errorf("send checks batch: tenant reminder rules: %w", err)
		}
		if c.Tenant.ReminderRules == nil {
			c.Tenant.ReminderRules = []time.Duration{}
		}
		out[k] = c
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("send checks batch: %w", err)
	}
	if n == 0 {
		// The keys are never empty here, so no row means no tenant.
		return fmt.Errorf("send checks batch: tenant %w", ErrNotFound)
	}
	return nil
}
