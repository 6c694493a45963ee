package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/termind/termind/internal/store"
)

// pullEnqueuer is implemented by queues that carry calendar pulls
// (queue.Client). Without it, POST /v1/connections/{id}/sync answers 503
// not_configured.
type pullEnqueuer interface {
	EnqueuePull(ctx context.Context, connectionID string, full bool) error
}

// requestedPullEnqueuer is implemented by queue.Client: a pull asked for
// through the API is not absorbed by one already running.
type requestedPullEnqueuer interface {
	EnqueuePullRequested(ctx context.Context, connectionID string, full bool) error
}

// syncRequest is the optional body of POST /v1/connections/{id}/sync.
type syncRequest struct {
	// Full asks for a full reconciliation instead of an incremental pull.
	Full bool `json:"full"`
}

type syncAccepted struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Sync  string `json:"sync"` // "queued"
}

// syncConnection asks for a sync of an active connection now. A pending
// pull absorbs the request, a running one does not (see
// queue.EnqueuePullRequested). Anything but an active connection
// is a 409: a paused, broken or revoked calendar is not read.
func (s *server) syncConnection(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	id, ok := connectionID(w, r)
	if !ok {
		return
	}
	var req syncRequest
	if !readJSON(w, r, maxBodyBytes, &req, true) {
		return
	}
	pq, ok := s.queue.(pullEnqueuer)
	if !ok {
		writeError(w, notConfigured("calendar sync"))
		return
	}
	c, ok := s.loadConnection(w, r, key.TenantID, id)
	if !ok {
		return
	}
	if c.State != store.ConnActive {
		msg := fmt.Sprintf("the connection is %s; only an active connection syncs", c.State)
		if c.StateReason != "" && (c.State == store.ConnBroken || c.State == store.ConnPaused) {
			msg += " (" + c.StateReason + ")"
		}
		writeError(w, &apiError{Status: http.StatusConflict, Code: codeConnectionNotActive, Message: msg})
		return
	}
	// Unlike pushes and notifications, nothing in the store records the
	// request: if the queue does not take it, the client must be told.
	ctx, cancel := detached(r.Context(), enqueueTimeout)
	defer cancel()
	enqueue := pq.EnqueuePull
	if rq, ok := s.queue.(requestedPullEnqueuer); ok {
		enqueue = rq.EnqueuePullRequested
	}
	if err := enqueue(ctx, c.ID, req.Full); err != nil {
		s.internalError(w, r, "enqueue pull", err)
		return
	}
	writeJSON(w, http.StatusAccepted, syncAccepted{ID: c.ID, State: c.State, Sync: "queued"})
}

// connectionSyncView is the sync block of a connection's view.
type connectionSyncView struct {
	LastSyncAt string      `json:"last_sync_at"`
	LastFullAt string      `json:"last_full_at"`
	LastError  string      `json:"last_error"`
	Attention  string      `json:"attention"` // why a person must look (mass-delete guard), "" if not
	Imported   int         `json:"imported"`  // imported occurrences held now
	LastRun    syncRunView `json:"last_run"`
}

type syncRunView struct {
	Imported int    `json:"imported"`
	Removed  int    `json:"removed"`
	Pushed   int    `json:"pushed"`
	Restored int    `json:"restored"`
	Full     bool   `json:"full"`
	Error    string `json:"error"`
}

func viewSyncStatus(st store.SyncStatus) *connectionSyncView {
	return &connectionSyncView{
		LastSyncAt: rfc3339(st.LastSyncAt),
		LastFullAt: rfc3339(st.LastFullAt),
		LastError:  st.LastError,
		Attention:  st.Attention,
		Imported:   st.Imported,
		LastRun: syncRunView{
			Imported: st.LastRun.Imported,
			Removed:  st.LastRun.Removed,
			Pushed:   st.LastRun.Pushed,
			Restored: st.LastRun.Restored,
			Full:     st.LastRun.Full,
			Error:    st.LastRun.Error,
		},
	}
}

// viewConnectionWithSync is the view of GET /v1/connections/{id} and the
// list: the connection and its sync status.
func (s *server) viewConnectionWithSync(ctx context.Context, c store.Connection) (connectionView, error) {
	v := viewConnection(c)
	st, err := s.store.GetSyncStatus(ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return v, nil // erased meanwhile
	}
	if err != nil {
		return v, fmt.Errorf("sync status: %w", err)
	}
	v.Sync = viewSyncStatus(st)
	return v, nil
}
