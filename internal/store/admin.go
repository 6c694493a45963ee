package store

// Reads and records for the operator pages (internal/admin): sign-in
// sessions, filtered notification lists, per-connection counts and the
// record of retention purge runs.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AdminSession is a signed-in admin page session of one admin API key.
type AdminSession struct {
	TenantID  string
	KeyID     string
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateAdminSession stores a session under the hash of id (the cookie
// value; never stored itself) and deletes sessions that have expired.
func (s *Store) CreateAdminSession(ctx context.Context, id string, sess AdminSession) error {
	if id == "" || sess.TenantID == "" || sess.KeyID == "" || sess.CSRFToken == "" {
		return errors.New("create admin session: id, tenant, key and csrf token are required")
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.rebind("DELETE FROM admin_sessions WHERE expires_at <= ?"), ms(time.Now())); err != nil {
			return fmt.Errorf("expired: %w", err)
		}
		_, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO admin_sessions (id_hash, tenant_id, key_id, csrf_token, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`), hashSecret(id), sess.TenantID, sess.KeyID, sess.CSRFToken, ms(sess.CreatedAt), ms(sess.ExpiresAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create admin session: %w", err)
	}
	return nil
}

// GetAdminSession returns the live session stored under id. An unknown or
// expired session, or one whose API key was disabled or is no longer an
// admin key, gives ErrNotFound.
func (s *Store) GetAdminSession(ctx context.Context, id string, now time.Time) (AdminSession, error) {
	var sess AdminSession
	var created, expires int64
	err := s.read.QueryRowContext(ctx, s.rebind(`SELECT a.tenant_id, a.key_id, a.csrf_token, a.created_at, a.expires_at
		FROM admin_sessions a JOIN api_keys k ON k.id = a.key_id AND k.tenant_id = a.tenant_id
		WHERE a.id_hash = ? AND a.expires_at > ? AND k.disabled_at = 0 AND k.role = ?`), hashSecret(id), ms(now), RoleAdmin).
		Scan(&sess.TenantID, &sess.KeyID, &sess.CSRFToken, &created, &expires)
	if err != nil {
		return AdminSession{}, fmt.Errorf("get admin session: %w", notFound(err))
	}
	sess.CreatedAt, sess.ExpiresAt = fromMS(created), fromMS(expires)
	return sess, nil
}

// DeleteAdminSession ends a session (sign-out). An unknown id is not an error.
func (s *Store) DeleteAdminSession(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, s.rebind("DELETE FROM admin_sessions WHERE id_hash = ?"), hashSecret(id)); err != nil {
		return fmt.Errorf("delete admin session: %w", err)
	}
	return nil
}

// DefaultNotificationListLimit is the page size ListNotifications uses
// when given 0 or less.
const DefaultNotificationListLimit = 100

// NotificationFilter selects a tenant's notifications; empty fields match
// everything.
type NotificationFilter struct {
	TenantID string
	Status   string
	Template string
	// From and To bound the creation time: From <= created_at < To.
	From, To time.Time
	Limit    int
}

// ListNotifications lists a tenant's notifications matching f, newest
// first, at most f.Limit.
func (s *Store) ListNotifications(ctx context.Context, f NotificationFilter) ([]Notification, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultNotificationListLimit
	}
	where := []string{"tenant_id = ?"}
	args := []any{f.TenantID}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	if f.Template != "" {
		where, args = append(where, "template = ?"), append(args, f.Template)
	}
	if !f.From.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, ms(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, ms(f.To))
	}
	query := "SELECT " + notificationCols + " FROM notifications WHERE " + strings.Join(where, " AND ") +
		" ORDER BY created_at DESC, id DESC LIMIT ?"
	out, err := queryAll(ctx, s.read, scanNotification, s.rebind(query), append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return out, nil
}

// ConnectionCounts is how much a connection holds: imported event
// occurrences and sync links.
type ConnectionCounts struct {
	Events int
	Links  int
}

// CountConnectionData returns ConnectionCounts for each of a tenant's
// connections that holds anything; the others are missing from the map.
func (s *Store) CountConnectionData(ctx context.Context, tenantID string) (map[string]ConnectionCounts, error) {
	out := map[string]ConnectionCounts{}
	for _, table := range []string{"external_events", "links"} {
		rows, err := s.read.QueryContext(ctx, s.rebind(`SELECT x.connection_id, count(*) FROM `+table+` x
			JOIN connections c ON c.id = x.connection_id WHERE c.tenant_id = ? GROUP BY x.connection_id`), tenantID)
		if err != nil {
			return nil, fmt.Errorf("count connection data: %s: %w", table, err)
		}
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("count connection data: %s: %w", table, err)
			}
			c := out[id]
			if table == "links" {
				c.Links = n
			} else {
				c.Events = n
			}
			out[id] = c
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("count connection data: %s: %w", table, err)
		}
	}
	return out, nil
}

// purgeRunsKept is how long the record of purge runs goes back.
const purgeRunsKept = 30 * 24 * time.Hour

// PurgeRun is one finished retention purge over all tenants.
type PurgeRun struct {
	StartedAt  time.Time
	FinishedAt time.Time
	Report     PurgeReport
}

// recordPurgeRun appends a finished purge to purge_runs and drops records
// older than purgeRunsKept.
func (s *Store) recordPurgeRun(ctx context.Context, run PurgeRun) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.rebind("DELETE FROM purge_runs WHERE finished_at < ?"),
			ms(run.FinishedAt.Add(-purgeRunsKept))); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO purge_runs (id, started_at, finished_at, notifications, audit, oauth_states, batches)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), newID("pur_"), ms(run.StartedAt), ms(run.FinishedAt),
			run.Report.Notifications, run.Report.Audit, run.Report.OAuthStates, run.Report.Batches)
		return err
	})
	if err != nil {
		return fmt.Errorf("record purge run: %w", err)
	}
	return nil
}

// LastPurgeRun returns the latest finished purge; ErrNotFound before the first.
func (s *Store) LastPurgeRun(ctx context.Context) (PurgeRun, error) {
	var run PurgeRun
	var started, finished int64
	err := s.read.QueryRowContext(ctx, `SELECT started_at, finished_at, notifications, audit, oauth_states, batches
		FROM purge_runs ORDER BY finished_at DESC, id DESC LIMIT 1`).
		Scan(&started, &finished, &run.Report.Notifications, &run.Report.Audit, &run.Report.OAuthStates, &run.Report.Batches)
	if err != nil {
		return PurgeRun{}, fmt.Errorf("last purge run: %w", notFound(err))
	}
	run.StartedAt, run.FinishedAt = fromMS(started), fromMS(finished)
	return run, nil
}
