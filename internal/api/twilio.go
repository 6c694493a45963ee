package api

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/termind/termind/connectors/sms"
	"github.com/termind/termind/internal/store"
)

// twilioOptedOut is Twilio's "recipient replied STOP" error: final for the
// message and for every later SMS to that subject.
const twilioOptedOut = "21610"

// twilioStatus receives Twilio's status callbacks. They are not bearer
// authenticated: the X-Twilio-Signature over our public URL and the posted
// form proves they come from Twilio. Unknown SIDs and intermediate statuses
// are acknowledged so that Twilio does not retry them.
func (s *server) twilioStatus(w http.ResponseWriter, r *http.Request) {
	if s.cfg.TwilioAuthToken == "" {
		writeError(w, notFound("no such route"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			writeError(w, tooLarge("body", maxBodyBytes))
			return
		}
		writeError(w, &apiError{Status: http.StatusBadRequest, Code: codeMalformedJSON, Message: "must be a form-encoded body", Field: "body"})
		return
	}
	sig := r.Header.Get("X-Twilio-Signature")
	fullURL := s.cfg.PublicURL + r.URL.RequestURI()
	if sig == "" || !sms.ValidSignature(s.cfg.TwilioAuthToken, fullURL, r.PostForm, sig) {
		writeError(w, &apiError{Status: http.StatusForbidden, Code: codeForbidden, Message: "X-Twilio-Signature is missing or does not match"})
		return
	}

	sid := r.PostForm.Get("MessageSid")
	var status, reason string
	switch r.PostForm.Get("MessageStatus") {
	case "delivered":
		status = store.StatusDelivered
	case "undelivered", "failed":
		status, reason = store.StatusUndelivered, "twilio"
		if code := r.PostForm.Get("ErrorCode"); code != "" {
			reason = "twilio " + code
		}
	default:
		// queued, sending, sent, accepted, …: nothing to record.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if sid == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}

	n, err := s.store.UpdateDeliveryStatus(r.Context(), sid, status, reason, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "twilio status for unknown message", slog.String("message_sid", sid))
		w.WriteHeader(http.StatusNoContent)
		return
	case errors.Is(err, store.ErrConflict):
		// A repeated or late callback: the row already moved on. An
		// opt-out still applies to the subject.
	case err != nil:
		s.internalError(w, r, "update delivery status", err)
		return
	default:
		s.observer.NotificationState(n.Channel, n.Template, n.Status)
	}
	if r.PostForm.Get("ErrorCode") == twilioOptedOut && n.SubjectID != "" {
		if err := s.store.SetSMSOptedOut(r.Context(), n.TenantID, n.SubjectID); err != nil {
			s.internalError(w, r, "set sms opted out", err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
