package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/termind/termind/internal/store"
)

// subjectExport is GET /v1/subjects/{id}/export: everything the tenant holds
// about a person, in one machine-readable document (GDPR Art. 15 and 20).
// Unlike the operational views it shows recipients and message data in
// full: it is the person's own data, handed to them.
type subjectExport struct {
	Subject        subjectView          `json:"subject"`
	Consents       []consentView        `json:"consents"`
	Connections    []connectionView     `json:"connections"`
	Notifications  []exportNotification `json:"notifications"`
	Appointments   []exportAppointment  `json:"appointments"`
	ExternalEvents []exportEvent        `json:"external_events"`
	Audit          []exportAudit        `json:"audit"`
	ExportedAt     string               `json:"exported_at"`
}

type subjectView struct {
	ID          string `json:"id"`
	Restricted  bool   `json:"restricted"`
	SMSOptedOut bool   `json:"sms_opted_out"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
}

type exportNotification struct {
	ID             string          `json:"id"`
	AppointmentID  string          `json:"appointment_id"`
	IdempotencyKey string          `json:"idempotency_key"`
	Purpose        string          `json:"purpose"`
	Channel        string          `json:"channel"`
	Recipient      string          `json:"recipient"`
	Locale         string          `json:"locale"`
	Template       string          `json:"template"`
	Data           json.RawMessage `json:"data"`
	Status         string          `json:"status"`
	StatusReason   string          `json:"status_reason"`
	SendAt         string          `json:"send_at"`
	Attempts       []attemptView   `json:"attempts"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
}

// exportAppointment is an appointment the person takes part in. Its
// subject_ids name only them: who else takes part is other people's data.
type exportAppointment struct {
	ID          string   `json:"id"`
	SubjectIDs  []string `json:"subject_ids"`
	Start       string   `json:"start"` // RFC 3339; a date for all-day
	End         string   `json:"end"`
	AllDay      bool     `json:"all_day"`
	TimeZone    string   `json:"time_zone"`
	Title       string   `json:"title"`
	Location    string   `json:"location"`
	Description string   `json:"description"`
	Status      string   `json:"status"`
	// Reminders in minutes before the start; null: the tenant's rules.
	Reminders []int  `json:"reminders"`
	Version   int    `json:"version"`
	SyncError string `json:"sync_error"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

type exportEvent struct {
	ConnectionID string `json:"connection_id"`
	UID          string `json:"uid"`
	Start        string `json:"start"`
	End          string `json:"end"`
	AllDay       bool   `json:"all_day"`
	TimeZone     string `json:"time_zone"`
	Transparent  bool   `json:"transparent"`
	Title        string `json:"title"`
	Location     string `json:"location"`
	Description  string `json:"description"`
}

type exportAudit struct {
	ID         string `json:"id"`
	Actor      string `json:"actor"`
	Action     string `json:"action"`
	TargetKind string `json:"target_kind"`
	TargetID   string `json:"target_id"`
	SourceIP   string `json:"source_ip"`
	Detail     string `json:"detail"`
	CreatedAt  string `json:"created_at"`
}

// ExportDocument is the JSON document of an access request: the same for
// the API's GET /v1/subjects/{id}/export and the CLI's `subject export`.
func ExportDocument(x store.SubjectExport, now time.Time) any { return viewExport(x, now) }

func viewExport(x store.SubjectExport, now time.Time) subjectExport {
	out := subjectExport{
		Subject: subjectView{
			ID:          x.Subject.ID,
			Restricted:  x.Subject.Restricted,
			SMSOptedOut: x.Subject.SMSOptedOut,
			CreatedAt:   rfc3339(x.Subject.CreatedAt),
			UpdatedAt:   rfc3339(x.Subject.UpdatedAt),
		},
		Consents:       make([]consentView, 0, len(x.Consents)),
		Connections:    make([]connectionView, 0, len(x.Connections)),
		Notifications:  make([]exportNotification, 0, len(x.Notifications)),
		Appointments:   make([]exportAppointment, 0, len(x.Appointments)),
		ExternalEvents: make([]exportEvent, 0, len(x.ExternalEvents)),
		Audit:          make([]exportAudit, 0, len(x.Audit)),
		ExportedAt:     now.UTC().Format(time.RFC3339),
	}
	for _, c := range x.Consents {
		out.Consents = append(out.Consents, viewConsent(c))
	}
	for _, c := range x.Connections {
		out.Connections = append(out.Connections, viewConnection(c))
	}
	for _, n := range x.Notifications {
		data := n.Data
		if len(data) == 0 {
			data = json.RawMessage("{}")
		}
		en := exportNotification{
			ID:             n.ID,
			AppointmentID:  n.AppointmentID,
			IdempotencyKey: n.IdempotencyKey,
			Purpose:        n.Purpose,
			Channel:        n.Channel,
			Recipient:      n.Recipient,
			Locale:         n.Locale,
			Template:       n.Template,
			Data:           data,
			Status:         n.Status,
			StatusReason:   n.StatusReason,
			SendAt:         rfc3339(n.SendAt),
			Attempts:       make([]attemptView, 0, len(n.Attempts)),
			CreatedAt:      rfc3339(n.CreatedAt),
			UpdatedAt:      rfc3339(n.UpdatedAt),
		}
		for _, a := range n.Attempts {
			en.Attempts = append(en.Attempts, attemptView{N: a.N, At: rfc3339(a.At), Outcome: a.Outcome, ProviderID: a.ProviderID, ErrorCode: a.ErrorCode})
		}
		out.Notifications = append(out.Notifications, en)
	}
	for _, a := range x.Appointments {
		out.Appointments = append(out.Appointments, viewExportAppointment(a))
	}
	for _, e := range x.ExternalEvents {
		ev := exportEvent{
			ConnectionID: e.ConnectionID,
			UID:          e.UID,
			Start:        rfc3339(e.Start),
			End:          rfc3339(e.End),
			AllDay:       e.AllDay,
			TimeZone:     e.TimeZone,
			Transparent:  e.Transparent,
			Title:        e.Title,
			Location:     e.Location,
			Description:  e.Description,
		}
		if e.AllDay {
			ev.Start, ev.End = e.Start.Format(time.DateOnly), e.End.Format(time.DateOnly)
		}
		out.ExternalEvents = append(out.ExternalEvents, ev)
	}
	for _, a := range x.Audit {
		out.Audit = append(out.Audit, exportAudit{
			ID:         a.ID,
			Actor:      a.Actor,
			Action:     a.Action,
			TargetKind: a.TargetKind,
			TargetID:   a.TargetID,
			SourceIP:   a.SourceIP,
			Detail:     a.Detail,
			CreatedAt:  rfc3339(a.CreatedAt),
		})
	}
	return out
}

func viewExportAppointment(a store.Appointment) exportAppointment {
	v := viewAppointment(a)
	out := exportAppointment{
		ID:          a.ID,
		SubjectIDs:  v.SubjectIDs,
		Start:       v.Start,
		End:         v.End,
		AllDay:      a.AllDay,
		TimeZone:    a.TimeZone,
		Title:       a.Title,
		Location:    a.Location,
		Description: a.Description,
		Status:      a.Status,
		Version:     a.Version,
		SyncError:   a.SyncError,
		CreatedAt:   rfc3339(a.CreatedAt),
		UpdatedAt:   rfc3339(a.UpdatedAt),
	}
	if a.Reminders != nil {
		out.Reminders = make([]int, 0, len(a.Reminders))
		for _, r := range a.Reminders {
			out.Reminders = append(out.Reminders, int(r/time.Minute))
		}
	}
	return out
}

// exportSubject answers an access request. The export is audited before
// it is handed out: no audit entry, no data.
func (s *server) exportSubject(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	subjectID := r.PathValue("id")
	if msg := checkSubjectID(subjectID); msg != "" {
		writeError(w, invalidField("id", "the subject id "+msg))
		return
	}
	x, err := s.store.ExportSubject(r.Context(), key.TenantID, subjectID)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFound("nothing is held about this subject"))
		return
	}
	if err != nil {
		s.internalError(w, r, "export subject", err)
		return
	}
	err = s.audit(r.Context(), store.AuditEntry{
		TenantID:   key.TenantID,
		Actor:      actorOf(key),
		Action:     auditSubjectExport,
		TargetKind: targetSubject,
		TargetID:   subjectID,
		SubjectID:  subjectID,
		SourceIP:   sourceIP("", r),
	})
	if err != nil {
		s.internalError(w, r, "audit export", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, viewExport(x, s.now()))
}

type erasureAccepted struct {
	SubjectID           string   `json:"subject_id"`
	Status              string   `json:"status"`
	ConnectionsRevoking []string `json:"connections_revoking"`
}

// eraseSubject answers an erasure request: the store deletes every personal
// row and puts the subject's connections into revocation in one
// transaction (leaving a non-personal audit trace); the cleanup of each
// connection then goes to the queue. Erasing twice is harmless.
func (s *server) eraseSubject(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	subjectID := r.PathValue("id")
	if msg := checkSubjectID(subjectID); msg != "" {
		writeError(w, invalidField("id", "the subject id "+msg))
		return
	}
	rep, err := s.store.EraseSubject(r.Context(), key.TenantID, subjectID, actorOf(key), sourceIP("", r))
	var held *store.HeldError
	if errors.As(err, &held) {
		writeError(w, heldConflict(held))
		return
	}
	if err != nil {
		s.internalError(w, r, "erase subject", err)
		return
	}
	revoking := make([]string, 0, len(rep.Revoking))
	for _, id := range rep.Revoking {
		s.enqueueRevoke(r, key.TenantID, id)
		revoking = append(revoking, id)
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "subject erased",
		slog.String("tenant_id", key.TenantID), slog.Int64("rows", rep.Rows), slog.Int("connections_revoking", len(revoking)))
	writeJSON(w, http.StatusAccepted, erasureAccepted{SubjectID: subjectID, Status: "erased", ConnectionsRevoking: revoking})
}
