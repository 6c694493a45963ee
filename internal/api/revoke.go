package api

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/termind/termind/internal/store"
)

// RevocationStore commits a revocation (see store.BeginRevocation).
type RevocationStore interface {
	BeginRevocation(ctx context.Context, tenantID, id string, r store.Revocation) (store.Connection, error)
}

// RevocationQueue hands a committed revocation's cleanup to the workers.
type RevocationQueue interface {
	EnqueueRevoke(ctx context.Context, connectionID string) error
}

// RevokeConnection is the one way a person or an operator revokes a
// connection, used by POST /v1/connections/{id}/revoke and the admin pages:
// it commits the revocation (state revoking, "revoked" in the ledger for
// each granted purpose, an audit entry) and, unless the connection is
// already revoked, enqueues its cleanup. A failed enqueue is logged and not
// returned: the revoking state is the record, and the sweeper re-enqueues
// it. Errors are BeginRevocation's (store.ErrNotFound for an unknown
// connection or another tenant's).
func RevokeConnection(ctx context.Context, s RevocationStore, q RevocationQueue, log *slog.Logger,
	tenantID, id string, r store.Revocation) (store.Connection, error) {
	c, err := s.BeginRevocation(ctx, tenantID, id, r)
	if err != nil {
		return store.Connection{}, fmt.Errorf("revoke connection: %w", err)
	}
	if c.State == store.ConnRevoked {
		return c, nil
	}
	// The commit stands even if the client hangs up now: finish handing
	// the cleanup over.
	ectx, cancel := detached(ctx, revokeEnqueueTimeout)
	defer cancel()
	if err := q.EnqueueRevoke(ectx, c.ID); err != nil && log != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "enqueue revoke failed; the sweeper will retry",
			slog.String("tenant_id", tenantID), slog.String("connection_id", c.ID), slog.String("err", err.Error()))
	}
	return c, nil
}
