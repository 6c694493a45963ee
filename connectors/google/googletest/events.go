package googletest

// The events resource: get, insert, update, patch, delete, and the test's
// own edits (PutEvent, DeleteEvent, CancelInstance), which behave like a
// person editing the calendar in Google's UI.

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"google.golang.org/api/calendar/v3"
)

// Google's rule for client-chosen event ids: base32hex characters, 5 to
// 1024 of them (the length is checked apart: Go's regexp caps repeat
// counts at 1000).
var eventIDPattern = regexp.MustCompile(`^[a-v0-9]+$`)

func validEventID(id string) bool {
	return len(id) >= 5 && len(id) <= 1024 && eventIDPattern.MatchString(id)
}

// eventRef is what an event id resolves to: a plain event or series
// master, or an instance of a series (which may have an exception stored).
type eventRef struct {
	stored *storedEvent // plain event or master; nil for an instance
	master *storedEvent // the series, for an instance
	instID string
	orig   time.Time // original start of the instance
	sp     span      // the master's span, for an instance
}

// resolve finds id in c. The caller holds s.mu.
func (s *Server) resolve(c *calendarData, id string) (eventRef, bool) {
	if se := c.events[id]; se != nil {
		return eventRef{stored: se}, true
	}
	i := strings.LastIndexByte(id, '_')
	if i < 0 {
		return eventRef{}, false
	}
	master := c.events[id[:i]]
	if master == nil || !isRecurring(master.ev) {
		return eventRef{}, false
	}
	orig, allDay, err := parseInstanceSuffix(id[i+1:])
	if err != nil {
		return eventRef{}, false
	}
	sp, err := eventSpan(master.ev)
	if err != nil || sp.allDay != allDay {
		return eventRef{}, false
	}
	if _, ok := master.exceptions[id]; !ok && !isOccurrence(master.ev, orig) {
		return eventRef{}, false
	}
	return eventRef{master: master, instID: id, orig: orig, sp: sp}, true
}

// current is the event as a GET returns it.
func (r eventRef) current() *calendar.Event {
	if r.stored != nil {
		return clone(r.stored.ev)
	}
	var inst *calendar.Event
	if ex := r.master.exceptions[r.instID]; ex != nil {
		inst = clone(ex.ev)
	} else {
		inst = instanceOf(r.master.ev, r.sp, r.orig)
	}
	if r.master.ev.Status == "cancelled" {
		// A deleted series takes its instances with it.
		inst.Status = "cancelled"
	}
	return inst
}

// put stores ev as the new state of r (an update, a restore or a
// deletion) and bumps the change sequence. The caller holds s.mu.
func (s *Server) put(c *calendarData, r eventRef, ev *calendar.Event) *calendar.Event {
	old := r.current()
	ev.Kind = "calendar#event"
	ev.Created = old.Created
	ev.ICalUID = old.ICalUID
	ev.HtmlLink = old.HtmlLink
	ev.Creator, ev.Organizer = old.Creator, old.Organizer
	ev.Sequence = old.Sequence + 1
	if ev.Status == "" {
		ev.Status = "confirmed"
	}
	if r.stored != nil {
		ev.Id = old.Id
		r.stored.ev = ev
		s.touch(c, r.stored, ev)
		return clone(ev)
	}
	// A changed instance becomes an exception of its series.
	ev.Id = r.instID
	ev.RecurringEventId = r.master.ev.Id
	ev.OriginalStartTime = r.sp.eventDateTime(r.orig)
	ev.Recurrence = nil
	if r.master.exceptions == nil {
		r.master.exceptions = map[string]*storedEvent{}
	}
	ex := &storedEvent{ev: ev}
	r.master.exceptions[r.instID] = ex
	s.touch(c, ex, ev)
	return clone(ev)
}

// create stores a new event. The caller holds s.mu and has checked that
// the id is free.
func (s *Server) create(c *calendarData, ev *calendar.Event) *calendar.Event {
	if ev.Id == "" {
		ev.Id = newEventID()
	}
	now := s.now().UTC().Format(rfc3339Millis)
	ev.Kind = "calendar#event"
	ev.Created = now
	if ev.ICalUID == "" {
		ev.ICalUID = ev.Id + "@google.com"
	}
	if ev.Status == "" {
		ev.Status = "confirmed"
	}
	ev.HtmlLink = "https://www.google.com/calendar/event?eid=" + ev.Id
	ev.Creator = &calendar.EventCreator{Email: c.id, Self: true}
	ev.Organizer = &calendar.EventOrganizer{Email: c.id, Self: true}
	se := &storedEvent{ev: ev}
	c.events[ev.Id] = se
	s.touch(c, se, ev)
	return clone(ev)
}

// touch records a change of se: new etag and updated, the next change
// sequence, and an "exists" notification to the calendar's channels. The
// caller holds s.mu.
func (s *Server) touch(c *calendarData, se *storedEvent, ev *calendar.Event) {
	now := s.now()
	c.seq++
	c.updated = now
	se.seq = c.seq
	ev.Etag = s.newETag()
	ev.Updated = now.UTC().Format(rfc3339Millis)
	s.notifyChange(c)
}

// newEventID makes an id the way Google does: 26 base32hex characters.
func newEventID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	b := make([]byte, 26)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b)
}

// validate checks what Google checks of an event body before storing it.
func validate(ev *calendar.Event) (reason, message string, ok bool) {
	sp, err := eventSpan(ev)
	switch {
	case errors.Is(err, errNoStart):
		return "required", "Missing start time.", false
	case errors.Is(err, errNoEnd):
		return "required", "Missing end time.", false
	case errors.Is(err, errMixedTimes):
		return "invalid", "Start and end times must either both be date or both be dateTime.", false
	case err != nil:
		return "invalid", "Invalid start or end time.", false
	}
	if sp.end.Before(sp.start) {
		return "timeRangeEmpty", "The specified time range is empty.", false
	}
	if isRecurring(ev) {
		if _, err := ruleSet(ev, sp); err != nil {
			return "invalid", "Invalid recurrence rule.", false
		}
	}
	switch ev.Status {
	case "", "confirmed", "tentative", "cancelled":
	default:
		return "invalid", "Invalid value for: status", false
	}
	return "", "", true
}

func decodeEvent(r *http.Request) (*calendar.Event, error) {
	ev := new(calendar.Event)
	if err := json.NewDecoder(r.Body).Decode(ev); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}

// checkSendUpdates answers 400 for a sendUpdates value Google does not
// know.
func checkSendUpdates(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Query().Get("sendUpdates") {
	case "", "all", "externalOnly", "none":
		return true
	}
	apiError(w, http.StatusBadRequest, "invalid", "Invalid value for: sendUpdates")
	return false
}

// ifMatch answers 412 when the request's If-Match names another version.
func ifMatch(w http.ResponseWriter, r *http.Request, etag string) bool {
	im := r.Header.Get("If-Match")
	if im == "" || im == "*" || im == etag {
		return true
	}
	writeAPIError(w, http.StatusPreconditionFailed, apiErrorItem{
		Domain: "global", Reason: "conditionNotMet", Message: "Precondition Failed",
		LocationType: "header", Location: "If-Match",
	}, "Precondition Failed")
	return false
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calendarOf(w, r)
	if c == nil {
		return
	}
	ref, ok := s.resolve(c, r.PathValue("eventId"))
	if !ok {
		apiError(w, http.StatusNotFound, "notFound", "Not Found")
		return
	}
	ev := ref.current()
	if notModified(w, r, ev.Etag) {
		return
	}
	writeAPIJSON(w, http.StatusOK, ev.Etag, ev)
}

func (s *Server) insertEvent(w http.ResponseWriter, r *http.Request) {
	if !checkSendUpdates(w, r) {
		return
	}
	ev, err := decodeEvent(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "parseError", "Parse Error")
		return
	}
	if reason, msg, ok := validate(ev); !ok {
		apiError(w, http.StatusBadRequest, reason, msg)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calendarOf(w, r)
	if c == nil {
		return
	}
	if ev.Id != "" {
		if !validEventID(ev.Id) {
			apiError(w, http.StatusBadRequest, "invalid", "Invalid resource id value.")
			return
		}
		// A deleted event keeps its id: inserting it again is a
		// duplicate, and update brings it back.
		if _, taken := s.resolve(c, ev.Id); taken {
			apiError(w, http.StatusConflict, "duplicate", "The requested identifier already exists.")
			return
		}
	}
	// Google ignores these on insert.
	ev.RecurringEventId, ev.OriginalStartTime, ev.Sequence = "", nil, 0
	out := s.create(c, ev)
	writeAPIJSON(w, http.StatusOK, out.Etag, out)
}

func (s *Server) updateEvent(w http.ResponseWriter, r *http.Request) {
	s.change(w, r, func(_ *calendar.Event) (*calendar.Event, error) { return decodeEvent(r) })
}

// patchEvent merges the body into the event: fields present replace
// (objects merge field by field), null clears, absent fields stay.
func (s *Server) patchEvent(w http.ResponseWriter, r *http.Request) {
	s.change(w, r, func(cur *calendar.Event) (*calendar.Event, error) {
		var patch map[string]any
		if err := json.NewDecoder(r.Body).Decode(&patch); err != nil {
			return nil, fmt.Errorf("decode patch: %w", err)
		}
		b, err := json.Marshal(cur)
		if err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("decode event: %w", err)
		}
		b, err = json.Marshal(mergePatch(doc, patch))
		if err != nil {
			return nil, fmt.Errorf("encode patched event: %w", err)
		}
		out := new(calendar.Event)
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("decode patched event: %w", err)
		}
		return out, nil
	})
}

// target finds the event a write names and checks the request's If-Match
// against it; the caller holds s.mu. When it cannot, it has answered.
func (s *Server) target(w http.ResponseWriter, r *http.Request) (*calendarData, eventRef, bool) {
	c := s.calendarOf(w, r)
	if c == nil {
		return nil, eventRef{}, false
	}
	ref, ok := s.resolve(c, r.PathValue("eventId"))
	if !ok {
		apiError(w, http.StatusNotFound, "notFound", "Not Found")
		return nil, eventRef{}, false
	}
	if !ifMatch(w, r, ref.current().Etag) {
		return nil, eventRef{}, false
	}
	return c, ref, true
}

// change runs an update or patch: body builds the new event from the
// current one.
func (s *Server) change(w http.ResponseWriter, r *http.Request, body func(cur *calendar.Event) (*calendar.Event, error)) {
	if !checkSendUpdates(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ref, ok := s.target(w, r)
	if !ok {
		return
	}
	cur := ref.current()
	ev, err := body(cur)
	if err != nil {
		apiError(w, http.StatusBadRequest, "parseError", "Parse Error")
		return
	}
	if reason, msg, ok := validate(ev); !ok {
		apiError(w, http.StatusBadRequest, reason, msg)
		return
	}
	out := s.put(c, ref, ev)
	writeAPIJSON(w, http.StatusOK, out.Etag, out)
}

func (s *Server) deleteEvent(w http.ResponseWriter, r *http.Request) {
	if !checkSendUpdates(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ref, ok := s.target(w, r)
	if !ok {
		return
	}
	cur := ref.current()
	if cur.Status == "cancelled" {
		apiError(w, http.StatusGone, "deleted", "Resource has been deleted")
		return
	}
	s.cancel(c, ref)
	w.WriteHeader(http.StatusNoContent)
}

// cancel deletes what ref names: the event becomes a tombstone, an
// instance a cancelled exception of its series. The caller holds s.mu.
func (s *Server) cancel(c *calendarData, ref eventRef) {
	ev := ref.current()
	ev.Status = "cancelled"
	if ref.stored != nil {
		s.touch(c, ref.stored, ev)
		ref.stored.ev = ev
		return
	}
	s.put(c, ref, ev)
}

// mergePatch applies patch to doc as RFC 7396 does, which is how Google's
// patch semantics work for JSON: arrays are replaced whole.
func mergePatch(doc, patch map[string]any) map[string]any {
	if doc == nil {
		doc = map[string]any{}
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(doc, k)
		case map[string]any:
			sub, _ := doc[k].(map[string]any)
			doc[k] = mergePatch(sub, pv)
		default:
			doc[k] = v
		}
	}
	return doc
}

// PutEvent is the person creating or editing an event in Google's UI: a
// new id (or none, and one is made) creates the event, an existing id —
// a deleted one too — replaces it, and an instance id of a series changes
// that instance. It returns the stored event. It panics for an unknown
// calendar or an invalid event, which are mistakes in the test.
func (s *Server) PutEvent(calendarID string, ev *calendar.Event) *calendar.Event {
	ev = clone(ev)
	if _, msg, ok := validate(ev); !ok {
		panic("googletest: PutEvent: " + msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustCalendar("PutEvent", calendarID)
	if ev.Id != "" {
		if ref, ok := s.resolve(c, ev.Id); ok {
			return s.put(c, ref, ev)
		}
	}
	return s.create(c, ev)
}

// DeleteEvent is the person deleting an event (or, given an instance id,
// one instance of a series). Deleting a deleted event does nothing.
func (s *Server) DeleteEvent(calendarID, eventID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustCalendar("DeleteEvent", calendarID)
	ref, ok := s.resolve(c, eventID)
	if !ok {
		panic("googletest: DeleteEvent: no event " + eventID)
	}
	if ref.current().Status == "cancelled" {
		return
	}
	s.cancel(c, ref)
}

// CancelInstance is the person deleting the instance of a series that
// originally starts at originalStart (a date at midnight UTC for all-day
// series).
func (s *Server) CancelInstance(calendarID, eventID string, originalStart time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustCalendar("CancelInstance", calendarID)
	master := c.events[eventID]
	if master == nil || !isRecurring(master.ev) {
		panic("googletest: CancelInstance: no recurring event " + eventID)
	}
	sp, err := eventSpan(master.ev)
	if err != nil {
		panic("googletest: CancelInstance: " + err.Error())
	}
	ref, ok := s.resolve(c, eventID+"_"+sp.instanceSuffix(originalStart))
	if !ok {
		panic("googletest: CancelInstance: " + eventID + " has no instance at " + originalStart.String())
	}
	if ref.current().Status != "cancelled" {
		s.cancel(c, ref)
	}
}

// Event returns a copy of the event, instance or tombstone with id.
func (s *Server) Event(calendarID, id string) (*calendar.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cal.calendars[calendarID]
	if c == nil {
		return nil, false
	}
	ref, ok := s.resolve(c, id)
	if !ok {
		return nil, false
	}
	return ref.current(), true
}

// LiveEvents returns copies of the calendar's events that are not deleted,
// series unexpanded, sorted by id.
func (s *Server) LiveEvents(calendarID string) []*calendar.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cal.calendars[calendarID]
	if c == nil {
		return nil
	}
	var out []*calendar.Event
	for _, se := range c.events {
		if se.ev.Status != "cancelled" {
			out = append(out, clone(se.ev))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

// mustCalendar is for the test-side methods. The caller holds s.mu.
func (s *Server) mustCalendar(op, id string) *calendarData {
	c := s.cal.calendars[id]
	if c == nil {
		panic("googletest: " + op + ": no calendar " + id + " (AddCalendar first)")
	}
	return c
}

// tombstone is how list answers without showDeleted show a deleted event
// or cancelled instance: only what a client needs to drop its copy.
func tombstone(ev *calendar.Event) *calendar.Event {
	return &calendar.Event{
		Kind:              "calendar#event",
		Id:                ev.Id,
		Etag:              ev.Etag,
		Status:            "cancelled",
		Updated:           ev.Updated,
		RecurringEventId:  ev.RecurringEventId,
		OriginalStartTime: ev.OriginalStartTime,
	}
}
