package workers

// Cross-calendar blocking: the calendar:block handler, and what a pull
// sets off — the blocks of the subject's other calendars when it changed
// busy time, and the connection's own after a full reconciliation.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/internal/store"
	calsync "github.com/termind/termind/internal/sync"
	"github.com/termind/termind/queue"
)

// BlockEngine reconciles a connection's blockers (*sync.Engine).
type BlockEngine interface {
	Block(ctx context.Context, connectionID string) (calsync.BlockResult, error)
}

// BlockPeers lists the connections whose blockers depend on a
// connection's imports (*store.Store).
type BlockPeers interface {
	BlockingPeers(ctx context.Context, connectionID string) ([]string, error)
}

// BlockEnqueuer puts a calendar:block task on the queue (queue.Client);
// one already pending is not an error.
type BlockEnqueuer interface {
	EnqueueBlock(ctx context.Context, connectionID string) error
}

// blocking reports whether the syncer was given what blocking needs.
func (s *Syncer) blocking() bool {
	return s.cfg.Blocks != nil && s.cfg.Peers != nil && s.cfg.BlockQueue != nil
}

// ProcessBlock handles calendar:block, with the outcomes of pulls and
// pushes: skipped when the connection is not active, broken when the
// calendar refuses the credentials, retried when it is unreachable.
func (s *Syncer) ProcessBlock(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseConnectionPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("block: %v: %w", err, asynq.SkipRetry)
	}
	_, err = s.cfg.Blocks.Block(ctx, p.ConnectionID)
	return s.outcome(ctx, "block", p.ConnectionID, err, nil)
}

// afterPull runs after a successful pull. When the pull imported or
// removed something, the busy time the subject's other blocking calendars
// mirror changed: a block of each is enqueued (a failed enqueue is
// logged; the daily full pull of that connection repairs it). After a
// full pull the connection's own blockers are reconciled too, so that
// they mend themselves at least daily; that error is the pull's.
func (s *Syncer) afterPull(ctx context.Context, connectionID string, full bool, res store.SyncResult) error {
	if !s.blocking() {
		return nil
	}
	if res.Imported+res.Removed > 0 {
		peers, err := s.cfg.Peers.BlockingPeers(ctx, connectionID)
		if err != nil {
			s.log.Warn("sync: blocking calendars not found", "connection_id", connectionID, "err", err)
		}
		for _, id := range peers {
			if err := s.cfg.BlockQueue.EnqueueBlock(ctx, id); err != nil {
				s.log.LogAttrs(ctx, slog.LevelWarn, "sync: block not enqueued",
					slog.String("connection_id", id), slog.String("source_connection_id", connectionID), slog.String("err", err.Error()))
			}
		}
	}
	if full {
		if _, err := s.cfg.Blocks.Block(ctx, connectionID); err != nil {
			return err
		}
	}
	return nil
}

// blockingPeers lists the connections mirroring the busy time of a
// connection being revoked; nil when the revoker does not block.
func (rv *Revoker) blockingPeers(ctx context.Context, connectionID string) []string {
	if rv.cfg.Peers == nil || rv.cfg.BlockQueue == nil {
		return nil
	}
	peers, err := rv.cfg.Peers.BlockingPeers(ctx, connectionID)
	if err != nil {
		// Their daily full pull removes the blockers instead.
		rv.log.Warn("revoke: blocking calendars not found", "connection_id", connectionID, "err", err)
	}
	return peers
}

// enqueueBlocks asks for the blockers that stood for a revoked
// connection's busy time to go now rather than at the next full pull.
func (rv *Revoker) enqueueBlocks(ctx context.Context, connectionID string, peers []string) {
	for _, id := range peers {
		if err := rv.cfg.BlockQueue.EnqueueBlock(ctx, id); err != nil {
			rv.log.LogAttrs(ctx, slog.LevelWarn, "revoke: block not enqueued",
				slog.String("connection_id", id), slog.String("source_connection_id", connectionID), slog.String("err", err.Error()))
		}
	}
}

// blockerRemover removes a calendar's blockers only (caldav.Client,
// googleremote.Remote).
type blockerRemover interface {
	RemoveBlockers(ctx context.Context) (int, error)
}

// removeBlockers takes a revoked connection's blockers away when its
// appointment copies are kept: no sync will ever update them again, and
// a stale "Busy" would block the person's time for good. Unreachable:
// retried until the cleanup deadline; any other failure is logged and
// the revocation goes on.
func (rv *Revoker) removeBlockers(ctx context.Context, c store.Connection, creds []byte) error {
	factory := rv.cfg.CalDAV
	if c.Provider == store.ProviderGoogle {
		factory = rv.cfg.GoogleCopies
	}
	if creds == nil || factory == nil {
		return nil
	}
	remover, err := factory(c, creds)
	if err != nil {
		return nil // unusable credentials: nothing can reach the calendar
	}
	br, ok := remover.(blockerRemover)
	if !ok {
		return nil
	}
	removed, err := br.RemoveBlockers(ctx)
	switch {
	case err == nil:
		rv.log.Info("revoke: blockers removed, copies kept", "connection_id", c.ID, "removed", removed)
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("revoke %s: remove blockers: %w", c.ID, err)
	case (errors.Is(err, caldav.ErrUnreachable) || errors.Is(err, calsync.ErrUnavailable)) && !rv.pastDeadline(c):
		return fmt.Errorf("revoke %s: remove blockers: %w", c.ID, err)
	}
	rv.log.Warn("revoke: blockers not removed", "connection_id", c.ID, "removed", removed, "err", err)
	return nil
}
