package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ErrWrongToken: a push notification's channel token does not match.
var ErrWrongToken = errors.New("wrong channel token")

// WatchChannel is a push notification channel of a connection (Google
// events.watch). The channel token is never stored, only its hash.
type WatchChannel struct {
	ID           string
	ConnectionID string
	ResourceID   string
	TokenHash    string
	ExpiresAt    time.Time
	CreatedAt    time.Time
}

// HashChannelToken is how a channel token is kept and compared.
func HashChannelToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

const watchCols = "id, connection_id, resource_id, token_hash, expires_at, created_at"

func scanWatchChannel(r rowScanner) (WatchChannel, error) {
	var w WatchChannel
	var expires, created int64
	if err := r.Scan(&w.ID, &w.ConnectionID, &w.ResourceID, &w.TokenHash, &expires, &created); err != nil {
		return WatchChannel{}, err
	}
	w.ExpiresAt, w.CreatedAt = fromMS(expires), fromMS(created)
	return w, nil
}

// AddWatchChannel records an open channel. ErrNotActive when the
// connection is no longer active: the caller stops the channel it just
// opened.
func (s *Store) AddWatchChannel(ctx context.Context, w WatchChannel) error {
	if w.CreatedAt.IsZero() {
		w.CreatedAt = time.Now()
	}
	res, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO watch_channels (`+watchCols+`)
		SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM connections WHERE id = ? AND state = 'active')`),
		w.ID, w.ConnectionID, w.ResourceID, w.TokenHash, ms(w.ExpiresAt), ms(w.CreatedAt), w.ConnectionID)
	if err != nil {
		return fmt.Errorf("add watch channel: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("add watch channel: %w", ErrNotActive)
	}
	return nil
}

// ListWatchChannels returns a connection's channels, newest expiry last.
func (s *Store) ListWatchChannels(ctx context.Context, connectionID string) ([]WatchChannel, error) {
	out, err := queryAll(ctx, s.read, scanWatchChannel, s.rebind("SELECT "+watchCols+
		" FROM watch_channels WHERE connection_id = ? ORDER BY expires_at, id"), connectionID)
	if err != nil {
		return nil, fmt.Errorf("list watch channels: %w", err)
	}
	return out, nil
}

// DeleteWatchChannel forgets a channel (stopped, or expired at Google).
func (s *Store) DeleteWatchChannel(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, s.rebind("DELETE FROM watch_channels WHERE id = ?"), id); err != nil {
		return fmt.Errorf("delete watch channel: %w", err)
	}
	return nil
}

// VerifyWatchChannel checks a notification's channel id and token and
// returns the channel's connection. ErrNotFound for an unknown or expired
// channel, ErrWrongToken for a wrong token (compared in constant time).
func (s *Store) VerifyWatchChannel(ctx context.Context, id, token string, now time.Time) (string, error) {
	w, err := scanWatchChannel(s.read.QueryRowContext(ctx, s.rebind("SELECT "+watchCols+" FROM watch_channels WHERE id = ?"), id))
	if err != nil {
		return "", fmt.Errorf("verify watch channel: %w", notFound(err))
	}
	got := HashChannelToken(token)
	if subtle.ConstantTimeCompare([]byte(got), []byte(w.TokenHash)) != 1 {
		return "", fmt.Errorf("verify watch channel: %w", ErrWrongToken)
	}
	if !w.ExpiresAt.IsZero() && !now.Before(w.ExpiresAt) {
		return "", fmt.Errorf("verify watch channel: expired: %w", ErrNotFound)
	}
	return w.ConnectionID, nil
}

// WatchRenewalsDue lists active connections of provider whose newest
// channel expires before the given time, or that have none.
func (s *Store) WatchRenewalsDue(ctx context.Context, provider string, before time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		limit = DefaultDueLimit
	}
	ids, err := queryStrings(ctx, s.read, s.rebind(`SELECT c.id FROM connections c
		WHERE c.state = 'active' AND c.provider = ?
			AND COALESCE((SELECT MAX(w.expires_at) FROM watch_channels w WHERE w.connection_id = c.id), 0) < ?
		ORDER BY c.id LIMIT ?`), provider, ms(before), limit)
	if err != nil {
		return nil, fmt.Errorf("watch renewals due: %w", err)
	}
	return ids, nil
}

// PauseConnection pauses an active connection until the given time, when
// ResumePausedConnections brings it back; audited as the system.
func (s *Store) PauseConnection(ctx context.Context, id, reason string, until time.Time) (Connection, error) {
	now := time.Now()
	var c Connection
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanConnection(tx.QueryRowContext(ctx, s.rebind(`UPDATE connections
			SET state = 'paused', state_reason = ?, paused_until = ?, updated_at = ? WHERE id = ? AND state = 'active'
			RETURNING `+connCols), reason, ms(until), ms(now), id))
		if errors.Is(err, sql.ErrNoRows) {
			return s.whyNotLive(ctx, tx, id)
		}
		if err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, &AuditEntry{TenantID: c.TenantID, Actor: "system", Action: "connection.state",
			TargetKind: "connection", TargetID: c.ID, SubjectID: c.SubjectID,
			Detail: "state=paused until=" + until.UTC().Format(time.RFC3339)}, now)
	})
	if err != nil {
		return Connection{}, fmt.Errorf("pause connection: %w", err)
	}
	return c, nil
}

// ResumePausedConnections makes the connections whose system pause ended
// by now active again, audited, and returns their ids.
func (s *Store) ResumePausedConnections(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		conns, err := queryAll(ctx, tx, scanConnection, s.rebind(`UPDATE connections
			SET state = 'active', state_reason = '', paused_until = 0, updated_at = ?
			WHERE state = 'paused' AND paused_until > 0 AND paused_until <= ? RETURNING `+connCols), ms(now), ms(now))
		if err != nil {
			return err
		}
		for _, c := range conns {
			ids = append(ids, c.ID)
			if err := s.insertAudit(ctx, tx, &AuditEntry{TenantID: c.TenantID, Actor: "system", Action: "connection.state",
				TargetKind: "connection", TargetID: c.ID, SubjectID: c.SubjectID, Detail: "state=active pause_ended"}, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("resume paused connections: %w", err)
	}
	return ids, nil
}
