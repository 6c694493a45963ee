package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/queue"
)

// Limits of the appointment request.
const (
	maxAppointmentSubjects = 20
	maxTitleLen            = 200 // characters
	maxLocationLen         = 500 // characters
	maxDescriptionBytes    = 8 << 10
	maxAppointmentLength   = 31 * 24 * time.Hour
	maxAppointmentDays     = 31
	maxReminders           = 10
	minReminderMinutes     = 5
	maxReminderMinutes     = 30 * 24 * 60 // 43,200: 30 days
	maxTimeZoneLen         = 64
	maxRecipients          = 2 * maxAppointmentSubjects // an address and a number per subject
	maxNotifyTextLen       = 200                        // provider_name, service, customer_name
	pushEnqueueTimeout     = 5 * time.Second
)

// Templates of appointment notifications.
const (
	templateConfirmation = "confirmation"
	templateReminder     = "reminder"
	templateReschedule   = "reschedule"
	templateCancellation = "cancellation"
)

// appointmentTemplates are the templates an appointment's notify block must
// be able to render: whichever the appointment's next change sends is
// checked before anything is stored, so the answer does not depend on the
// stored state.
var appointmentTemplates = []string{templateConfirmation, templateReminder, templateReschedule, templateCancellation}

// pushEnqueuer is implemented by queues that carry calendar pushes
// (queue.Client). A queue without it pushes nothing; the sync engine's
// reconciliation writes the copies on its next run.
type pushEnqueuer interface {
	EnqueuePush(ctx context.Context, p queue.PushPayload) error
}

// appointmentRequest is the body of PUT /v1/appointments/{id}.
type appointmentRequest struct {
	SubjectIDs  []string       `json:"subject_ids"`
	Start       string         `json:"start"`
	End         string         `json:"end"`
	AllDay      bool           `json:"all_day"`
	StartDate   string         `json:"start_date"`
	EndDate     string         `json:"end_date"`
	TimeZone    string         `json:"time_zone"`
	Title       string         `json:"title"`
	Location    string         `json:"location"`
	Description string         `json:"description"`
	Status      string         `json:"status"`
	Reminders   []int          `json:"reminders"` // minutes before start; absent or null: the tenant's rules; []: none
	Notify      *notifyRequest `json:"notify"`
}

// notifyRequest says who is told about an appointment's changes, and the
// template variables that do not come from the appointment itself.
type notifyRequest struct {
	Recipients   []recipientRequest `json:"recipients"`
	ProviderName string             `json:"provider_name"`
	Service      string             `json:"service"`
	CustomerName string             `json:"customer_name"`
	ManageURL    string             `json:"manage_url"`
	// Confirmation sends the confirmation when the appointment is created
	// (or a cancelled one confirmed again).
	Confirmation bool `json:"confirmation"`
}

type recipientRequest struct {
	SubjectID    string `json:"subject_id"`
	Channel      string `json:"channel"`
	To           string `json:"to"`
	Locale       string `json:"locale"`
	CustomerName string `json:"customer_name"` // overrides notify.customer_name
}

// cancelAppointmentRequest is the optional body of DELETE
// /v1/appointments/{id}: without notify, reminders are cancelled but no
// cancellation notice is sent.
type cancelAppointmentRequest struct {
	Notify *notifyRequest `json:"notify"`
}

var appointmentIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~@:+=-]{1,200}$`)

// validateAppointment checks every rule of the path id and the body that
// needs no I/O, in field order, and returns the appointment to store.
// notify is checked by validateNotify.
func validateAppointment(tenantID, id string, req appointmentRequest) (store.Appointment, *apiError) {
	a := store.Appointment{TenantID: tenantID, ID: id}
	// The id becomes part of the file name and UID of our calendar copies,
	// so it is limited to characters that are safe in both.
	if !appointmentIDPattern.MatchString(id) {
		return a, invalidField("id", "the appointment id must be 1 to 200 of the characters A-Z a-z 0-9 . _ ~ @ : + = -")
	}
	// Our blockers are written as copies of appointments with these ids.
	if strings.HasPrefix(id, reservedAppointmentPrefix) {
		return a, invalidField("id", "the appointment id must not start with "+reservedAppointmentPrefix+" (reserved)")
	}
	if n := len(req.SubjectIDs); n == 0 || n > maxAppointmentSubjects {
		return a, invalidField("subject_ids", fmt.Sprintf("must list 1 to %d subject ids", maxAppointmentSubjects))
	}
	for i, s := range req.SubjectIDs {
		field := fmt.Sprintf("subject_ids[%d]", i)
		if msg := checkSubjectID(s); msg != "" {
			return a, invalidField(field, msg)
		}
		if slices.Index(req.SubjectIDs, s) != i {
			return a, invalidField(field, "is listed twice")
		}
	}
	a.SubjectIDs = slices.Clone(req.SubjectIDs)

	if aerr := validateTimes(&a, req); aerr != nil {
		return a, aerr
	}
	if req.TimeZone == "" || len(req.TimeZone) > maxTimeZoneLen || req.TimeZone == "Local" || !printableASCII(req.TimeZone) {
		return a, invalidField("time_zone", "is required: an IANA time zone such as Europe/Berlin")
	}
	if _, err := time.LoadLocation(req.TimeZone); err != nil {
		return a, invalidField("time_zone", "must be a known IANA time zone such as Europe/Berlin")
	}
	a.TimeZone = req.TimeZone

	if n := utf8.RuneCountInString(req.Title); n == 0 || n > maxTitleLen || !printableText(req.Title) || strings.TrimSpace(req.Title) == "" {
		return a, invalidField("title", "is required: 1 to 200 printable characters")
	}
	if utf8.RuneCountInString(req.Location) > maxLocationLen || !printableText(req.Location) {
		return a, invalidField("location", "must be at most 500 printable characters")
	}
	if len(req.Description) > maxDescriptionBytes || !multilineText(req.Description) {
		return a, invalidField("description", "must be at most 8 KiB of UTF-8 text (line breaks and tabs allowed, no other control characters)")
	}
	a.Title, a.Location, a.Description = req.Title, req.Location, req.Description

	switch req.Status {
	case "", store.AppointmentConfirmed:
		a.Status = store.AppointmentConfirmed
	case store.AppointmentCancelled:
		a.Status = store.AppointmentCancelled
	default:
		return a, invalidField("status", `must be "confirmed" or "cancelled"`)
	}

	if req.Reminders != nil {
		if len(req.Reminders) > maxReminders {
			return a, invalidField("reminders", fmt.Sprintf("must list at most %d reminders in minutes before the start ([] for none; left out: the tenant's rules)", maxReminders))
		}
		for i, m := range req.Reminders {
			field := fmt.Sprintf("reminders[%d]", i)
			if m < minReminderMinutes || m > maxReminderMinutes {
				return a, invalidField(field, fmt.Sprintf("must be %d to %d minutes before the start", minReminderMinutes, maxReminderMinutes))
			}
			if slices.Index(req.Reminders, m) != i {
				return a, invalidField(field, "is listed twice")
			}
		}
		a.Reminders = make([]time.Duration, 0, len(req.Reminders))
		for _, m := range req.Reminders {
			a.Reminders = append(a.Reminders, time.Duration(m)*time.Minute)
		}
	}
	return a, nil
}

// validateTimes checks start and end (timed) or start_date and end_date
// (all-day) and sets them on a. Instants are kept to the second.
func validateTimes(a *store.Appointment, req appointmentRequest) *apiError {
	if req.AllDay {
		if req.Start != "" {
			return invalidField("start", "must be left out when all_day is true: use start_date")
		}
		if req.End != "" {
			return invalidField("end", "must be left out when all_day is true: use end_date")
		}
		sd, err := time.Parse(time.DateOnly, req.StartDate)
		if err != nil {
			return invalidField("start_date", "is required for all-day appointments: a date such as 2030-03-01")
		}
		ed, err := time.Parse(time.DateOnly, req.EndDate)
		if err != nil {
			return invalidField("end_date", "is required for all-day appointments: the day after the last day, such as 2030-03-02")
		}
		if !ed.After(sd) {
			return invalidField("end_date", "must be after start_date (the end date is exclusive)")
		}
		if ed.Sub(sd) > maxAppointmentDays*24*time.Hour {
			return invalidField("end_date", fmt.Sprintf("must be at most %d days after start_date", maxAppointmentDays))
		}
		a.AllDay = true
		a.StartDate, a.EndDate = req.StartDate, req.EndDate
		a.Start, a.End = sd, ed
		return nil
	}
	if req.StartDate != "" {
		return invalidField("start_date", "is only for all-day appointments: set all_day to true, or use start")
	}
	if req.EndDate != "" {
		return invalidField("end_date", "is only for all-day appointments: set all_day to true, or use end")
	}
	start, err := time.Parse(time.RFC3339, req.Start)
	if err != nil {
		return invalidField("start", "is required: an RFC 3339 time with offset such as 2030-03-01T09:00:00+01:00")
	}
	end, err := time.Parse(time.RFC3339, req.End)
	if err != nil {
		return invalidField("end", "is required: an RFC 3339 time with offset such as 2030-03-01T09:30:00+01:00")
	}
	start, end = start.UTC().Truncate(time.Second), end.UTC().Truncate(time.Second)
	if !end.After(start) {
		return invalidField("end", "must be after start")
	}
	if end.Sub(start) > maxAppointmentLength {
		return invalidField("end", fmt.Sprintf("must be at most %d days after start", maxAppointmentDays))
	}
	a.Start, a.End = start, end
	return nil
}

// multilineText accepts valid UTF-8 whose only control characters are
// line breaks and tabs ("" too).
func multilineText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// validateNotify checks the notify block against the appointment's
// subjects. Each recipient is checked with the notification rules (channel,
// to, locale), its errors named under notify.recipients[i].
func validateNotify(n *notifyRequest, subjectIDs []string, now time.Time) *apiError {
	if count := len(n.Recipients); count == 0 || count > maxRecipients {
		return invalidField("notify.recipients", fmt.Sprintf("must list 1 to %d recipients", maxRecipients))
	}
	for i, rc := range n.Recipients {
		prefix := fmt.Sprintf("notify.recipients[%d]", i)
		if !slices.Contains(subjectIDs, rc.SubjectID) {
			return invalidField(prefix+".subject_id", "must be one of the appointment's subject_ids")
		}
		_, aerr := validateNotification(notificationRequest{
			IdempotencyKey: "check",
			Channel:        rc.Channel,
			To:             rc.To,
			Locale:         rc.Locale,
			Template:       templateConfirmation,
			Data:           []byte("{}"),
			Purpose:        store.PurposeTransactional,
			SubjectID:      rc.SubjectID,
		}, now)
		if aerr != nil {
			return aerr.withPrefix(prefix)
		}
		if utf8.RuneCountInString(rc.CustomerName) > maxNotifyTextLen || !printableText(rc.CustomerName) {
			return invalidField(prefix+".customer_name", "must be at most 200 printable characters")
		}
		for _, prev := range n.Recipients[:i] {
			if prev.SubjectID == rc.SubjectID && prev.Channel == rc.Channel {
				return invalidField(prefix, "names a subject and channel already listed: one recipient per subject and channel")
			}
		}
	}
	for _, f := range []struct{ name, value string }{
		{"notify.provider_name", n.ProviderName},
		{"notify.service", n.Service},
		{"notify.customer_name", n.CustomerName},
	} {
		if utf8.RuneCountInString(f.value) > maxNotifyTextLen || !printableText(f.value) {
			return invalidField(f.name, "must be at most 200 printable characters")
		}
	}
	if n.ManageURL != "" {
		u, err := url.Parse(n.ManageURL)
		if len(n.ManageURL) > maxURLLen || !printableASCII(n.ManageURL) || err != nil ||
			(u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return invalidField("notify.manage_url", "must be an http or https URL of at most 2048 characters")
		}
	}
	return nil
}

// templateData is what the templates get for one recipient: times in
// RFC 3339 (shown in time_zone), the provider and service, the person's
// name, and previous_start for a reschedule.
func templateDataFor(a store.Appointment, n *notifyRequest, rc recipientRequest, previousStart time.Time) map[string]any {
	loc := zoneOf(a)
	start, end := appointmentBounds(a, loc)
	d := map[string]any{
		"start":         start.Format(time.RFC3339),
		"end":           end.Format(time.RFC3339),
		"time_zone":     a.TimeZone,
		"provider_name": n.ProviderName,
		"service":       n.Service,
		"customer_name": n.CustomerName,
	}
	if rc.CustomerName != "" {
		d["customer_name"] = rc.CustomerName
	}
	if a.Location != "" {
		d["location"] = a.Location
	}
	if n.ManageURL != "" {
		d["manage_url"] = n.ManageURL
	}
	if !previousStart.IsZero() {
		d["previous_start"] = previousStart.In(loc).Format(time.RFC3339)
	}
	// Absent rather than empty: the renderer's message then says what is
	// missing.
	for k, v := range d {
		if v == "" {
			delete(d, k)
		}
	}
	return d
}

func zoneOf(a store.Appointment) *time.Location {
	loc, err := time.LoadLocation(a.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// appointmentBounds returns start and end as instants in loc: the stored
// instants for timed appointments, local midnight of the dates for all-day
// ones (which is also what reminders count back from).
func appointmentBounds(a store.Appointment, loc *time.Location) (time.Time, time.Time) {
	if !a.AllDay {
		return a.Start.In(loc), a.End.In(loc)
	}
	day := func(date string, fallback time.Time) time.Time {
		d, err := time.Parse(time.DateOnly, date)
		if err != nil {
			d = fallback
		}
		return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
	}
	return day(a.StartDate, a.Start), day(a.EndDate, a.End)
}

// checkNotifyRender asks the renderer whether every template the
// appointment may send can be rendered for every recipient, and names the
// request field a refusal is about.
func (s *server) checkNotifyRender(tenant store.Tenant, a store.Appointment, n *notifyRequest) *apiError {
	for i, rc := range n.Recipients {
		locales := []string{rc.Locale}
		if tenant.DefaultLocale != "" && tenant.DefaultLocale != rc.Locale {
			locales = append(locales, tenant.DefaultLocale)
		}
		prefix := fmt.Sprintf("notify.recipients[%d]", i)
		// previous_start is checked with the start as a stand-in.
		data := templateDataFor(a, n, rc, a.Start)
		for _, name := range appointmentTemplates {
			err := s.renderer.Check(tenant.ID, rc.Channel, name, locales, data)
			if err == nil {
				continue
			}
			aerr, ok := renderError(err)
			if !ok {
				s.log.Error("template check failed", "tenant_id", tenant.ID, "template", name)
				return errInternal
			}
			return notifyRenderError(aerr, prefix, rc, name)
		}
	}
	return nil
}

// notifyRenderError renames the renderer's field (a data key, locale,
// template) to the request field the client has to change.
func notifyRenderError(aerr *apiError, prefix string, rc recipientRequest, template string) *apiError {
	e := *aerr
	switch e.Field {
	case "data.provider_name", "data.service", "data.manage_url":
		e.Field = "notify." + strings.TrimPrefix(e.Field, "data.")
	case "data.customer_name":
		e.Field = "notify.customer_name"
		if rc.CustomerName != "" {
			e.Field = prefix + ".customer_name"
		}
	case "data.location", "data.time_zone", "data.start", "data.end":
		e.Field = strings.TrimPrefix(e.Field, "data.")
	case "data.previous_start":
		e.Field = "start"
	case "locale", "channel":
		e.Field = prefix + "." + e.Field
	case "data":
		// An SMS that needs too many segments.
		e.Field = prefix
		e.Message = template + ": " + e.Message
	default:
		// A tenant's own template may need a variable we do not supply.
		e.Message = fmt.Sprintf("template %s: %s: %s", template, e.Field, e.Message)
		e.Field = "notify"
	}
	return &e
}

// appointmentView is an appointment on the wire.
type appointmentView struct {
	ID            string              `json:"id"`
	Version       int                 `json:"version"`
	Status        string              `json:"status"`
	Start         string              `json:"start"` // RFC 3339 (UTC); a date for all-day
	End           string              `json:"end"`
	TimeZone      string              `json:"time_zone"`
	AllDay        bool                `json:"all_day"`
	SubjectIDs    []string            `json:"subject_ids"`
	Sync          appointmentSyncView `json:"sync"`
	Notifications notificationCounts  `json:"notifications"`
}

// appointmentSyncView tells how the appointment's copies stand.
type appointmentSyncView struct {
	// Connections counts the calendars that get a copy (active, export,
	// calendar.write granted).
	Connections int `json:"connections"`
	// Queued counts the pushes this request enqueued (0 when nothing changed).
	Queued int `json:"queued"`
	// Error is the last push problem ("" if none).
	Error string `json:"error"`
}

// notificationCounts says what this request did to the appointment's
// notifications.
type notificationCounts struct {
	Created   int `json:"created"`
	Cancelled int `json:"cancelled"`
}

func viewAppointment(a store.Appointment) appointmentView {
	v := appointmentView{
		ID:         a.ID,
		Version:    a.Version,
		Status:     a.Status,
		Start:      rfc3339(a.Start),
		End:        rfc3339(a.End),
		TimeZone:   a.TimeZone,
		AllDay:     a.AllDay,
		SubjectIDs: a.SubjectIDs,
		Sync:       appointmentSyncView{Error: a.SyncError},
	}
	if a.AllDay {
		v.Start, v.End = a.StartDate, a.EndDate
	}
	if v.SubjectIDs == nil {
		v.SubjectIDs = []string{}
	}
	return v
}

// putAppointment creates or updates an appointment. Everything is
// validated (including that the notify block renders with every
// appointment template) before the store is touched. When the store says
// the appointment changed, its copies are pushed and its notifications
// planned: see applyChange.
func (s *server) putAppointment(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	var req appointmentRequest
	if !readJSON(w, r, maxBodyBytes, &req, false) {
		return
	}
	now := s.now()
	a, aerr := validateAppointment(key.TenantID, r.PathValue("id"), req)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if req.Notify != nil {
		if aerr := validateNotify(req.Notify, a.SubjectIDs, now); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	tenant, err := s.store.GetTenant(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get tenant", err)
		return
	}
	if req.Notify != nil {
		if aerr := s.checkNotifyRender(tenant, a, req.Notify); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	ch, err := s.store.UpsertAppointment(r.Context(), a)
	if err != nil {
		s.internalError(w, r, "upsert appointment", err)
		return
	}
	v, err := s.applyChange(r, tenant, ch, req.Notify, now)
	if err != nil {
		s.internalError(w, r, "plan appointment notifications", err)
		return
	}
	status := http.StatusOK
	if ch.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, v)
}

// cancelAppointment cancels an appointment: its reminders are cancelled,
// its copies removed, and with a notify body the cancellation notice is
// sent. Cancelling a cancelled appointment changes nothing.
func (s *server) cancelAppointment(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	id := r.PathValue("id")
	if checkSubjectID(id) != "" {
		writeError(w, notFound("no such appointment"))
		return
	}
	var req cancelAppointmentRequest
	if !readJSON(w, r, maxBodyBytes, &req, true) {
		return
	}
	now := s.now()
	a, err := s.store.GetAppointment(r.Context(), key.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFound("no such appointment"))
		return
	}
	if err != nil {
		s.internalError(w, r, "get appointment", err)
		return
	}
	tenant, err := s.store.GetTenant(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get tenant", err)
		return
	}
	if req.Notify != nil {
		if aerr := validateNotify(req.Notify, a.SubjectIDs, now); aerr != nil {
			writeError(w, aerr)
			return
		}
		if aerr := s.checkNotifyRender(tenant, a, req.Notify); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	ch, err := s.store.CancelAppointment(r.Context(), key.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFound("no such appointment"))
		return
	}
	if err != nil {
		s.internalError(w, r, "cancel appointment", err)
		return
	}
	v, err := s.applyChange(r, tenant, ch, req.Notify, now)
	if err != nil {
		s.internalError(w, r, "plan appointment notifications", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// changePlan is what an appointment change means for its notifications.
type changePlan struct {
	cancelReminders bool
	notice          string    // template of the notice to send now, "" for none
	previousStart   time.Time // for the reschedule notice
	reminders       bool      // plan reminders for the new version
}

// planChange decides, for a change the store committed:
//
//   - created (or a cancelled appointment confirmed again): the
//     confirmation if asked for, and reminders;
//   - start or end moved: pending reminders cancelled, the reschedule
//     notice with previous_start, reminders for the new times;
//   - cancelled: pending reminders cancelled, the cancellation notice;
//   - any other change of a confirmed appointment: with notify, its
//     reminders are re-planned with the new content; without, they stay.
//
// Notices and reminders need notify (its recipients); cancelling stale
// reminders does not.
func planChange(ch store.AppointmentChange, n *notifyRequest) changePlan {
	var p changePlan
	if !ch.Changed {
		return p
	}
	a, prev := ch.Appointment, ch.Previous
	switch {
	case a.Status == store.AppointmentCancelled:
		if prev == nil {
			return p // created cancelled: nothing was planned, nothing to tell
		}
		p.cancelReminders = true
		if prev.Status == store.AppointmentConfirmed {
			p.notice = templateCancellation
		}
	case prev == nil || prev.Status == store.AppointmentCancelled:
		p.cancelReminders = prev != nil
		if n != nil && n.Confirmation {
			p.notice = templateConfirmation
		}
		p.reminders = true
	case ch.Rescheduled:
		p.cancelReminders = true
		p.notice = templateReschedule
		p.previousStart, _ = appointmentBounds(*prev, zoneOf(*prev))
		p.reminders = true
	default:
		p.cancelReminders = n != nil
		p.reminders = true
	}
	if n == nil {
		p.notice, p.reminders = "", false
	}
	return p
}

// applyChange carries out what a committed change means: stale reminders
// cancelled, notices and new reminders stored in one call and enqueued,
// and a push per connection that holds a copy. It returns the view.
func (s *server) applyChange(r *http.Request, tenant store.Tenant, ch store.AppointmentChange, n *notifyRequest, now time.Time) (appointmentView, error) {
	a := ch.Appointment
	v := viewAppointment(a)
	ctx := r.Context()

	conns, err := s.store.AppointmentConnections(ctx, a.TenantID, a.ID)
	if err != nil {
		return v, fmt.Errorf("appointment connections: %w", err)
	}
	v.Sync.Connections = len(conns)
	if !ch.Changed {
		return v, nil
	}

	p := planChange(ch, n)
	if p.cancelReminders {
		cancelled, err := s.store.CancelAppointmentNotifications(ctx, a.TenantID, a.ID, store.PurposeReminder)
		if err != nil {
			return v, fmt.Errorf("cancel reminders: %w", err)
		}
		v.Notifications.Cancelled = cancelled
	}
	var items []store.Notification
	if n != nil {
		items, err = planNotifications(tenant, a, n, p, now)
		if err != nil {
			return v, err
		}
	}
	var created []store.Notification
	if len(items) > 0 {
		results, err := s.store.CreateNotifications(ctx, items)
		if err != nil {
			return v, fmt.Errorf("create notifications: %w", err)
		}
		for _, res := range results {
			switch res.Outcome {
			case store.Created:
				created = append(created, res.Notification)
			case store.Existing:
			default:
				// Keys carry the version, so only a replay of a version with
				// other notify data gets here: the first one stands.
				s.log.LogAttrs(ctx, slog.LevelWarn, "appointment notification already planned with other data",
					slog.String("tenant_id", a.TenantID), slog.Int("version", a.Version))
			}
		}
		v.Notifications.Created = len(created)
	}
	if !ch.Created || a.Status != store.AppointmentCancelled {
		// An appointment created cancelled has no copies to remove.
		v.Sync.Queued = s.enqueuePushes(r, a, conns)
	}
	s.enqueueAll(r, created)
	return v, nil
}

// planNotifications builds the notice and the reminders of a change for
// every recipient. Reminders whose time has passed are left out.
func planNotifications(tenant store.Tenant, a store.Appointment, n *notifyRequest, p changePlan, now time.Time) ([]store.Notification, error) {
	var out []store.Notification
	add := func(rc recipientRequest, template, purpose, kind string, sendAt time.Time, previousStart time.Time) error {
		data := templateDataFor(a, n, rc, previousStart)
		vn := validNotification{
			req: notificationRequest{
				IdempotencyKey: appointmentKey(a.ID, a.Version, kind, rc.SubjectID, rc.Channel),
				Channel:        rc.Channel,
				To:             rc.To,
				Locale:         rc.Locale,
				Template:       template,
				Purpose:        purpose,
				SubjectID:      rc.SubjectID,
			},
			data:   data,
			sendAt: sendAt,
		}
		hash, err := requestHash(vn)
		if err != nil {
			return err
		}
		vn.hash = hash
		sn, err := toStoreNotification(a.TenantID, vn, now)
		if err != nil {
			return err
		}
		sn.AppointmentID = a.ID
		out = append(out, sn)
		return nil
	}
	if p.notice != "" {
		for _, rc := range n.Recipients {
			if err := add(rc, p.notice, store.PurposeTransactional, p.notice, time.Time{}, p.previousStart); err != nil {
				return nil, err
			}
		}
	}
	if p.reminders {
		start, _ := appointmentBounds(a, zoneOf(a))
		for _, rule := range reminderRules(a, tenant) {
			at := start.Add(-rule).UTC()
			if !at.After(now) {
				continue
			}
			kind := templateReminder + ":" + strconv.Itoa(int(rule/time.Minute))
			for _, rc := range n.Recipients {
				if err := add(rc, templateReminder, store.PurposeReminder, kind, at, time.Time{}); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// reminderRules are the appointment's own rules (an empty list: none), else
// the tenant's, the earliest reminder first, without duplicates or
// non-positive ones.
func reminderRules(a store.Appointment, tenant store.Tenant) []time.Duration {
	rules := a.Reminders
	if rules == nil {
		rules = tenant.ReminderRules
	}
	out := make([]time.Duration, 0, len(rules))
	for _, r := range rules {
		if r > 0 && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(x, y time.Duration) int { return cmp.Compare(y, x) })
	return out
}

// appointmentKey is the idempotency key of one planned notification,
// deterministic in appointment, version, kind, subject and channel:
// "appt:<id>:v<version>:<kind>:<subject>:<channel>", with the ids replaced
// by a hash where they would not fit the key rules.
func appointmentKey(appointmentID string, version int, kind, subjectID, channel string) string {
	k := fmt.Sprintf("appt:%s:v%d:%s:%s:%s", appointmentID, version, kind, subjectID, channel)
	if len(k) <= maxIdempotencyKey && printableASCII(k) && !strings.Contains(appointmentID, ":") && !strings.Contains(subjectID, ":") {
		return k
	}
	return fmt.Sprintf("appt#%s:v%d:%s:%s:%s", shortHash(appointmentID), version, kind, shortHash(subjectID), channel)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// enqueuePushes asks for the appointment's copy on each connection to be
// written (or removed, once cancelled) at its version, and returns how many
// were handed over. A failure is logged: the sync engine's reconciliation
// writes what a lost push missed.
func (s *server) enqueuePushes(r *http.Request, a store.Appointment, conns []store.Connection) int {
	pq, ok := s.queue.(pushEnqueuer)
	if !ok || len(conns) == 0 {
		return 0
	}
	ctx, cancel := detached(r.Context(), pushEnqueueTimeout)
	defer cancel()
	queued := 0
	for _, c := range conns {
		err := pq.EnqueuePush(ctx, queue.PushPayload{ConnectionID: c.ID, AppointmentID: a.ID, TenantID: a.TenantID, Version: a.Version})
		if err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "enqueue push failed; reconciliation will write the copy",
				slog.String("tenant_id", a.TenantID), slog.String("connection_id", c.ID), slog.String("err", err.Error()))
			continue
		}
		queued++
	}
	return queued
}
