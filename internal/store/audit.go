package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AuditEntry is one line of the append-only audit log. It holds who did
// what to which target, never secrets or message bodies.
type AuditEntry struct {
	ID         string
	TenantID   string
	Actor      string // "api_key:<id>", "cli", "system", "oauth_callback"
	Action     string // "consent.granted", "connection.create", "connection.revoke", "subject.export", …
	TargetKind string // "subject", "connection", "notification", "tenant"
	TargetID   string
	SubjectID  string // the person concerned, if any ("" after erasure)
	SourceIP   string
	Detail     string // short, non-personal
	CreatedAt  time.Time
	ExpiresAt  time.Time // CreatedAt + the tenant's audit retention (default 365 days)
}

const auditCols = "id, tenant_id, actor, action, target_kind, target_id, subject_id, source_ip, detail, created_at, expires_at"

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	execer
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Audit appends an entry (ID, CreatedAt and ExpiresAt set by the store).
// An unknown tenant gives ErrNotFound.
func (s *Store) Audit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if err := s.insertAudit(ctx, s.db, &e, time.Now()); err != nil {
		return AuditEntry{}, fmt.Errorf("audit: %w", err)
	}
	return e, nil
}

// insertAudit is the one place an audit entry is written: it sets ID,
// CreatedAt (now) and ExpiresAt (now + the tenant's audit retention).
func (s *Store) insertAudit(ctx context.Context, q querier, e *AuditEntry, now time.Time) error {
	if e.TenantID == "" || e.Action == "" {
		return errors.New("tenant and action are required")
	}
	var retention int64
	err := q.QueryRowContext(ctx, s.rebind("SELECT audit_retention_ms FROM tenants WHERE id = ?"), e.TenantID).Scan(&retention)
	if err != nil {
		return fmt.Errorf("tenant: %w", notFound(err))
	}
	e.ID = newID("aud_")
	e.CreatedAt = truncMS(now)
	e.ExpiresAt = fromMS(ms(e.CreatedAt) + retention)
	_, err = q.ExecContext(ctx, s.rebind("INSERT INTO audit ("+auditCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		e.ID, e.TenantID, e.Actor, e.Action, e.TargetKind, e.TargetID, e.SubjectID, e.SourceIP, e.Detail,
		ms(e.CreatedAt), ms(e.ExpiresAt))
	return err
}

// ListAudit returns a tenant's entries about a subject ("" = all of the
// tenant), oldest first.
func (s *Store) ListAudit(ctx context.Context, tenantID, subjectID string) ([]AuditEntry, error) {
	out, err := s.queryAudit(ctx, s.read, tenantID, subjectID)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

func (s *Store) queryAudit(ctx context.Context, q querier, tenantID, subjectID string) ([]AuditEntry, error) {
	query := "SELECT " + auditCols + " FROM audit WHERE tenant_id = ?"
	args := []any{tenantID}
	if subjectID != "" {
		query += " AND subject_id = ?"
		args = append(args, subjectID)
	}
	rows, err := q.QueryContext(ctx, s.rebind(query+" ORDER BY created_at, id"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var created, expires int64
		if err := rows.Scan(&e.ID, &e.TenantID, &e.Actor, &e.Action, &e.TargetKind, &e.TargetID, &e.SubjectID,
			&e.SourceIP, &e.Detail, &created, &expires); err != nil {
			return nil, err
		}
		e.CreatedAt, e.ExpiresAt = fromMS(created), fromMS(expires)
		out = append(out, e)
	}
	return out, rows.Err()
}
