package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/termind/termind/internal/store"
)

// noticeEnqueuer is implemented by queues that carry calendar pulls
// (queue.Client): a push notification becomes a debounced pull.
type noticeEnqueuer interface {
	EnqueuePullAfterNotice(ctx context.Context, connectionID string, debounce time.Duration, now time.Time) error
}

// defaultPushDebounce folds a burst of notifications (Google sends one
// per change, and people change several events at once) into one pull.
const defaultPushDebounce = 2 * time.Second

// googlePush receives Google's push notifications (events.watch). A
// notification says only "something changed": the channel id must be one
// of ours and its token must match, then a pull is queued. Google expects
// a quick 2xx; anything else makes it retry, so known-but-useless
// notifications (the "sync" handshake, a connection no longer active) are
// still 200. Unknown channels and wrong tokens are refused.
func (s *server) googlePush(w http.ResponseWriter, r *http.Request) {
	channelID := r.Header.Get("X-Goog-Channel-ID")
	state := r.Header.Get("X-Goog-Resource-State")
	if channelID == "" || state == "" {
		writeError(w, &apiError{Status: http.StatusBadRequest, Code: codeInvalidField,
			Message: "X-Goog-Channel-ID and X-Goog-Resource-State are required", Field: "X-Goog-Channel-ID"})
		return
	}
	connID, err := s.store.VerifyWatchChannel(r.Context(), channelID, r.Header.Get("X-Goog-Channel-Token"), s.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, notFound("no such channel"))
		return
	case errors.Is(err, store.ErrWrongToken):
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "google push with a wrong channel token")
		writeError(w, &apiError{Status: http.StatusForbidden, Code: codeForbidden, Message: "X-Goog-Channel-Token does not match the channel"})
		return
	case err != nil:
		s.internalError(w, r, "verify channel", err)
		return
	}
	if state == "sync" {
		// The handshake right after the channel opened: nothing changed.
		w.WriteHeader(http.StatusOK)
		return
	}
	q, ok := s.queue.(noticeEnqueuer)
	if !ok {
		writeError(w, notConfigured("calendar sync"))
		return
	}
	debounce := s.cfg.PushDebounce
	if debounce <= 0 {
		debounce = defaultPushDebounce
	}
	ctx, cancel := detached(r.Context(), enqueueTimeout)
	defer cancel()
	if err := q.EnqueuePullAfterNotice(ctx, connID, debounce, s.now()); err != nil {
		// 5xx: Google retries the notification later.
		s.internalError(w, r, "enqueue pull", err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
