package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// GetSubject returns ErrNotFound if the tenant never named this subject.
func (s *Store) GetSubject(ctx context.Context, tenantID, subjectID string) (Subject, error) {
	var sub Subject
	var created, updated int64
	err := s.read.QueryRowContext(ctx, s.rebind(
		"SELECT tenant_id, id, restricted, sms_opted_out, created_at, updated_at FROM subjects WHERE tenant_id = ? AND id = ?"),
		tenantID, subjectID).Scan(&sub.TenantID, &sub.ID, &sub.Restricted, &sub.SMSOptedOut, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Subject{}, fmt.Errorf("get subject: %w", ErrNotFound)
	}
	if err != nil {
		return Subject{}, fmt.Errorf("get subject: %w", err)
	}
	sub.CreatedAt, sub.UpdatedAt = fromMS(created), fromMS(updated)
	return sub, nil
}

// SetSubjectRestricted sets or clears the Art. 18 restriction (creating the subject row if needed).
func (s *Store) SetSubjectRestricted(ctx context.Context, tenantID, subjectID string, restricted bool) error {
	now := time.Now().UnixMilli()
	_, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO subjects (tenant_id, id, restricted, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, id) DO UPDATE SET restricted = excluded.restricted, updated_at = excluded.updated_at`),
		tenantID, subjectID, restricted, now, now)
	if err != nil {
		return fmt.Errorf("set subject restricted: %w", err)
	}
	return nil
}

// SetSMSOptedOut marks a subject as opted out of SMS.
func (s *Store) SetSMSOptedOut(ctx context.Context, tenantID, subjectID string) error {
	now := time.Now().UnixMilli()
	_, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO subjects (tenant_id, id, sms_opted_out, created_at, updated_at)
		VALUES (?, ?, TRUE, ?, ?)
		ON CONFLICT (tenant_id, id) DO UPDATE SET sms_opted_out = TRUE, updated_at = excluded.updated_at`),
		tenantID, subjectID, now, now)
	if err != nil {
		return fmt.Errorf("set sms opted out: %w", err)
	}
	return nil
}

// execer is a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

const ensureSubjectSQL = `INSERT INTO subjects (tenant_id, id, created_at, updated_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (tenant_id, id) DO NOTHING`

// ensureSubject creates the subject row if it does not exist yet.
func (s *Store) ensureSubject(ctx context.Context, e execer, tenantID, subjectID string, now int64) error {
	_, err := e.ExecContext(ctx, s.rebind(ensureSubjectSQL), tenantID, subjectID, now, now)
	return err
}

const consentCols = "id, tenant_id, subject_id, purpose, decision, policy_version, actor, source_ip, user_agent, connection_id, created_at"

// RecordConsent appends a decision to the ledger (creating the subject row
// if needed) and returns it with ID and CreatedAt set. A CreatedAt given by
// the caller is kept (truncated to milliseconds); otherwise it is now.
func (s *Store) RecordConsent(ctx context.Context, c Consent) (Consent, error) {
	if err := checkConsent(c); err != nil {
		return Consent{}, fmt.Errorf("record consent: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.ensureSubject(ctx, tx, c.TenantID, c.SubjectID, time.Now().UnixMilli()); err != nil {
			return err
		}
		return s.insertConsent(ctx, tx, &c)
	})
	if err != nil {
		return Consent{}, fmt.Errorf("record consent: %w", err)
	}
	return c, nil
}

func checkConsent(c Consent) error {
	if c.TenantID == "" || c.SubjectID == "" || c.Purpose == "" || c.Decision == "" {
		return errors.New("tenant, subject, purpose and decision are required")
	}
	return nil
}

// insertConsent is the one place a ledger entry is written. It sets c.ID and
// c.CreatedAt (now unless given, truncated to milliseconds); the subject row
// must exist or be created by the caller in the same transaction.
func (s *Store) insertConsent(ctx context.Context, e execer, c *Consent) error {
	if err := checkConsent(*c); err != nil {
		return err
	}
	c.ID = newID("cns_")
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	c.CreatedAt = truncMS(c.CreatedAt)
	_, err := e.ExecContext(ctx, s.rebind("INSERT INTO consents ("+consentCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		c.ID, c.TenantID, c.SubjectID, c.Purpose, c.Decision, c.PolicyVersion, c.Actor, c.SourceIP, c.UserAgent, c.ConnectionID, ms(c.CreatedAt))
	return err
}

// ListConsents returns a subject's ledger, oldest first.
func (s *Store) ListConsents(ctx context.Context, tenantID, subjectID string) ([]Consent, error) {
	out, err := s.queryConsents(ctx, s.read, tenantID, subjectID)
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	return out, nil
}

func (s *Store) queryConsents(ctx context.Context, q querier, tenantID, subjectID string) ([]Consent, error) {
	rows, err := q.QueryContext(ctx, s.rebind("SELECT "+consentCols+" FROM consents WHERE tenant_id = ? AND subject_id = ? ORDER BY created_at, id"),
		tenantID, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Consent
	for rows.Next() {
		var c Consent
		var created int64
		if err := rows.Scan(&c.ID, &c.TenantID, &c.SubjectID, &c.Purpose, &c.Decision, &c.PolicyVersion,
			&c.Actor, &c.SourceIP, &c.UserAgent, &c.ConnectionID, &created); err != nil {
			return nil, err
		}
		c.CreatedAt = fromMS(created)
		out = append(out, c)
	}
	return out, rows.Err()
}

// ConsentDecision is the latest decision for (subject, purpose), or "" if none.
// Ties in time go to the later-recorded entry (ids are time-ordered).
func (s *Store) ConsentDecision(ctx context.Context, tenantID, subjectID, purpose string) (string, error) {
	var d string
	err := s.read.QueryRowContext(ctx, s.rebind(`SELECT decision FROM consents
		WHERE tenant_id = ? AND subject_id = ? AND purpose = ?
		ORDER BY created_at DESC, id DESC LIMIT 1`), tenantID, subjectID, purpose).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("consent decision: %w", err)
	}
	return d, nil
}
