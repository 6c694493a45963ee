package api

// Cross-calendar blocking of a connection: set at creation (CalDAV
// connect body field "blocking") or changed with
// PATCH /v1/connections/{id} {"blocking": bool}.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/termind/termind/internal/store"
)

// auditConnectionBlocking is the audit action of a change of blocking.
const auditConnectionBlocking = "connection.blocking"

// blockEnqueuer is implemented by queues that carry calendar:block
// (queue.Client). Without it a change of blocking takes effect at the
// connection's next full pull.
type blockEnqueuer interface {
	EnqueueBlock(ctx context.Context, connectionID string) error
}

// blockingStore is what PATCH /v1/connections/{id} needs beyond Store
// (*store.Store has it).
type blockingStore interface {
	CalendarWriteGranted(ctx context.Context, connectionID string) (bool, error)
	SetConnectionBlocking(ctx context.Context, tenantID, id string, blocking bool, audit store.AuditEntry) (store.Connection, error)
}

// patchConnectionRequest is the body of PATCH /v1/connections/{id}.
type patchConnectionRequest struct {
	Blocking *bool `json:"blocking"`
}

// blockingNeedsExport is the rule of the blocking field: blockers are
// written into the calendar.
const blockingNeedsExport = `needs direction "export" or "both": blockers are written into this calendar`

// validateBlocking checks blocking against the connection's direction.
func validateBlocking(blocking bool, direction string) *apiError {
	if blocking && direction != store.DirectionExport && direction != store.DirectionBoth {
		return invalidField("blocking", blockingNeedsExport)
	}
	return nil
}

// patchConnection turns cross-calendar blocking on or off. Turning it on
// needs a connection whose direction includes export and whose subject
// granted calendar.write on it (the rule of appointment copies). A change
// is audited and a block is enqueued, which writes or removes the
// blockers; a failed enqueue is logged, and the connection's next full
// pull does the same.
func (s *server) patchConnection(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	id, ok := connectionID(w, r)
	if !ok {
		return
	}
	var req patchConnectionRequest
	if !readJSON(w, r, maxBodyBytes, &req, false) {
		return
	}
	if req.Blocking == nil {
		writeError(w, invalidField("blocking", "is required: true or false"))
		return
	}
	bs, ok := s.store.(blockingStore)
	if !ok {
		writeError(w, notConfigured("cross-calendar blocking"))
		return
	}
	c, ok := s.loadConnection(w, r, key.TenantID, id)
	if !ok {
		return
	}
	if c.State == store.ConnRevoking || c.State == store.ConnRevoked {
		writeError(w, &apiError{Status: http.StatusConflict, Code: codeConnectionNotActive,
			Message: "the connection is " + c.State + "; it cannot be changed"})
		return
	}
	if *req.Blocking {
		if aerr := validateBlocking(true, c.Direction); aerr != nil {
			writeError(w, aerr)
			return
		}
		granted, err := bs.CalendarWriteGranted(r.Context(), c.ID)
		if err != nil {
			s.internalError(w, r, "calendar write granted", err)
			return
		}
		if !granted {
			writeError(w, invalidField("blocking", "needs calendar.write granted on this connection: blockers are written into this calendar"))
			return
		}
	}
	changed := c.Blocking != *req.Blocking
	c, err := bs.SetConnectionBlocking(r.Context(), key.TenantID, c.ID, *req.Blocking, store.AuditEntry{
		Actor:    actorOf(key),
		Action:   auditConnectionBlocking,
		SourceIP: sourceIP("", r),
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, notFound("no such connection"))
		return
	case errors.Is(err, store.ErrNotActive):
		writeError(w, &apiError{Status: http.StatusConflict, Code: codeConnectionNotActive,
			Message: "the connection is being revoked; it cannot be changed"})
		return
	case err != nil:
		s.internalError(w, r, "set connection blocking", err)
		return
	}
	if changed {
		s.enqueueBlock(r, c)
	}
	v, err := s.viewConnectionWithSync(r.Context(), c)
	if err != nil {
		s.internalError(w, r, "get connection", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// enqueueBlock asks for the connection's blockers to be written or
// removed now; a failure is logged and left to the next full pull.
func (s *server) enqueueBlock(r *http.Request, c store.Connection) {
	bq, ok := s.queue.(blockEnqueuer)
	if !ok || c.State != store.ConnActive {
		return
	}
	ctx, cancel := detached(r.Context(), enqueueTimeout)
	defer cancel()
	if err := bq.EnqueueBlock(ctx, c.ID); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "enqueue block failed; the next full pull does it",
			slog.String("tenant_id", c.TenantID), slog.String("connection_id", c.ID), slog.String("err", err.Error()))
	}
}

// reservedAppointmentPrefix starts the ids of the synthetic appointments
// blockers are copies of (sync.IsBlocker); a real appointment with such an
// id would be taken for a blocker.
const reservedAppointmentPrefix = "blocker:"
