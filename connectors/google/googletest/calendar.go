package googletest

// The Google Calendar API v3 part of the fake: the events collection of
// calendars the test creates with AddCalendar, push notification channels,
// and the plumbing every API route shares: bearer-token and scope checks
// against the OAuth fake, Google's error bodies, the request log and
// injected failures.
//
// Routes, under APIURL:
//
//	GET    calendars/{calendarId}/events                      list.go
//	POST   calendars/{calendarId}/events                      events.go
//	GET    calendars/{calendarId}/events/{eventId}            events.go
//	PUT    calendars/{calendarId}/events/{eventId}            events.go
//	PATCH  calendars/{calendarId}/events/{eventId}            events.go
//	DELETE calendars/{calendarId}/events/{eventId}            events.go
//	GET    calendars/{calendarId}/events/{eventId}/instances  list.go
//	POST   calendars/{calendarId}/events/watch                channels.go
//	POST   channels/stop                                      channels.go
//
// Where the fake is simpler than Google, it errs towards what a careful
// client must handle anyway:
//
//   - every calendar is in UTC, so all-day events are UTC dates;
//   - an incremental listing reports every changed single event, even one
//     outside the window of the full listing it continues; instances of
//     series are reported only inside that window;
//   - sequence grows on every change, not only on significant ones;
//   - q matches summary, description and location only;
//   - notifications are delivered once, in order, without retries.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/api/calendar/v3"
)

const apiPrefix = "/calendar/v3/"

// Scopes that allow reading events, and those that also allow writing.
var (
	readScopes = []string{
		"https://www.googleapis.com/auth/calendar",
		"https://www.googleapis.com/auth/calendar.readonly",
		"https://www.googleapis.com/auth/calendar.events",
		"https://www.googleapis.com/auth/calendar.events.readonly",
	}
	writeScopes = []string{
		"https://www.googleapis.com/auth/calendar",
		"https://www.googleapis.com/auth/calendar.events",
	}
)

// APIRequest is one request the Calendar API routes answered.
type APIRequest struct {
	Method string
	Path   string // unescaped, e.g. /calendar/v3/calendars/c1/events
	Query  url.Values
	Header http.Header // If-Match, Authorization, …
	Body   []byte
	Status int
}

// SentAttendees reports whether the request body named attendees, for
// tests that check that no invitation can go out.
func (r APIRequest) SentAttendees() bool {
	var body struct {
		Attendees []json.RawMessage `json:"attendees"`
	}
	return json.Unmarshal(r.Body, &body) == nil && len(body.Attendees) > 0
}

// Failure is an error answer injected by FailCalendar, in Google's JSON
// error format.
type Failure struct {
	Status     int
	Reason     string
	Message    string
	RetryAfter string // the Retry-After header, when set
}

// The failures Google documents for the Calendar API
// (developers.google.com/calendar/api/guides/errors).
var (
	RateLimitExceeded     = Failure{Status: 403, Reason: "rateLimitExceeded", Message: "Rate Limit Exceeded"}
	UserRateLimitExceeded = Failure{Status: 403, Reason: "userRateLimitExceeded", Message: "User Rate Limit Exceeded"}
	QuotaExceeded         = Failure{Status: 403, Reason: "quotaExceeded", Message: "Calendar usage limits exceeded."}
	TooManyRequests       = Failure{Status: 429, Reason: "rateLimitExceeded", Message: "Rate Limit Exceeded"}
	BackendError          = Failure{Status: 503, Reason: "backendError", Message: "Backend Error"}
)

// calendarAPI is the Calendar API state of a Server, guarded by Server.mu.
type calendarAPI struct {
	calendars  map[string]*calendarData
	syncTokens map[string]*syncState
	pages      map[string]*pageState
	channels   map[string]*channel // by channel id
	stopped    []string
	deliveries []Delivery
	requests   []APIRequest
	failures   []injectedFailure
	lastETag   int64
	channelSeq int64
	primary    string    // the calendar "primary" stands for
	notify     *notifier // has its own lock
}

type calendarData struct {
	id         string
	resourceID string // of its events collection, for watch channels
	seq        int64  // change sequence: bumped by every change
	updated    time.Time
	events     map[string]*storedEvent // plain events and series masters
}

// storedEvent is an event or series master as Google keeps it, deleted ones
// included (status "cancelled") since their ids stay taken and incremental
// sync reports them.
type storedEvent struct {
	ev  *calendar.Event
	seq int64 // change sequence of its last change
	// exceptions of a series: modified or cancelled instances, by instance
	// id.
	exceptions map[string]*storedEvent
}

type injectedFailure struct {
	match func(*http.Request) bool // nil matches every request
	n     int
	f     Failure
}

func newCalendarAPI() calendarAPI {
	return calendarAPI{
		calendars:  map[string]*calendarData{},
		syncTokens: map[string]*syncState{},
		pages:      map[string]*pageState{},
		channels:   map[string]*channel{},
	}
}

// routeCalendar adds the Calendar API routes to mux.
func (s *Server) routeCalendar(mux *http.ServeMux) {
	const c = apiPrefix + "calendars/{calendarId}/events"
	mux.HandleFunc("GET "+c, s.api(false, s.listEvents))
	mux.HandleFunc("POST "+c, s.api(true, s.insertEvent))
	mux.HandleFunc("POST "+c+"/watch", s.api(false, s.watchEvents))
	mux.HandleFunc("GET "+c+"/{eventId}", s.api(false, s.getEvent))
	mux.HandleFunc("PUT "+c+"/{eventId}", s.api(true, s.updateEvent))
	mux.HandleFunc("PATCH "+c+"/{eventId}", s.api(true, s.patchEvent))
	mux.HandleFunc("DELETE "+c+"/{eventId}", s.api(true, s.deleteEvent))
	mux.HandleFunc("GET "+c+"/{eventId}/instances", s.api(false, s.listInstances))
	mux.HandleFunc("POST "+apiPrefix+"channels/stop", s.api(false, s.stopChannel))
	mux.HandleFunc(apiPrefix, s.api(false, func(w http.ResponseWriter, _ *http.Request) {
		apiError(w, http.StatusNotFound, "notFound", "Not Found")
	}))
}

// APIURL is the Calendar API's base URL, for option.WithEndpoint.
func (s *Server) APIURL() string { return s.srv.URL + apiPrefix }

// AddCalendar creates a calendar with no events; adding one that exists
// does nothing. The first calendar added is also "primary".
func (s *Server) AddCalendar(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cal.calendars[id] != nil {
		return
	}
	if s.cal.primary == "" {
		s.cal.primary = id
	}
	s.cal.calendars[id] = &calendarData{
		id:         id,
		resourceID: random(20),
		updated:    s.now(),
		events:     map[string]*storedEvent{},
	}
}

// CalendarRequests returns the Calendar API requests answered so far, in
// the order they finished.
func (s *Server) CalendarRequests() []APIRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cal.requests)
}

// ResetCalendarRequests empties the request log.
func (s *Server) ResetCalendarRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cal.requests = nil
}

// FailCalendar makes the next n Calendar API requests answer f.
func (s *Server) FailCalendar(n int, f Failure) { s.FailCalendarWhere(nil, n, f) }

// FailCalendarWhere makes the next n Calendar API requests for which match
// is true answer f. match runs under the fake's lock, so it must not call
// the Server; it may read the request's body.
func (s *Server) FailCalendarWhere(match func(*http.Request) bool, n int, f Failure) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cal.failures = append(s.cal.failures, injectedFailure{match: match, n: n, f: f})
}

// ExpireSyncTokens makes every sync token issued so far for the calendar
// answer 410, as Google does when it drops a token's state.
func (s *Server) ExpireSyncTokens(calendarID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok, st := range s.cal.syncTokens {
		if st.calendarID == calendarID {
			delete(s.cal.syncTokens, tok)
		}
	}
}

// api wraps a Calendar API handler: it logs the request, answers injected
// failures, and checks the bearer token and its scopes (write: the route
// changes events).
func (s *Server) api(write bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer s.logRequest(r, body, rec)

		if f, ok := s.takeFailure(r, body); ok {
			writeFailure(rec, f)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		scopes, valid := s.GrantedScopes(strings.TrimSpace(tok))
		if !ok || !valid {
			rec.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
			writeAPIError(rec, http.StatusUnauthorized, apiErrorItem{
				Domain: "global", Reason: "authError", Message: "Invalid Credentials",
				LocationType: "header", Location: "Authorization",
			}, "Invalid Credentials")
			return
		}
		need := readScopes
		if write {
			need = writeScopes
		}
		if !slices.ContainsFunc(scopes, func(sc string) bool { return slices.Contains(need, sc) }) {
			writeAPIError(rec, http.StatusForbidden, apiErrorItem{
				Domain: "global", Reason: "insufficientPermissions", Message: "Insufficient Permission",
			}, "Request had insufficient authentication scopes.")
			return
		}
		h(rec, r)
	}
}

// takeFailure finds the first injected failure for r and uses it up.
func (s *Server) takeFailure(r *http.Request, body []byte) (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.cal.failures {
		f := &s.cal.failures[i]
		if f.match != nil {
			// Each matcher may read the body afresh.
			r.Body = io.NopCloser(bytes.NewReader(body))
			if !f.match(r) {
				continue
			}
		}
		got := f.f
		if f.n--; f.n == 0 {
			s.cal.failures = slices.Delete(s.cal.failures, i, i+1)
		}
		return got, true
	}
	return Failure{}, false
}

func (s *Server) logRequest(r *http.Request, body []byte, rec *statusRecorder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cal.requests = append(s.cal.requests, APIRequest{
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.Query(),
		Header: r.Header.Clone(),
		Body:   body,
		Status: rec.status,
	})
}

// calendarOf finds the calendar named in the path, or answers 404. The
// caller holds s.mu.
func (s *Server) calendarOf(w http.ResponseWriter, r *http.Request) *calendarData {
	id := r.PathValue("calendarId")
	if id == "primary" {
		// Google's alias for the user's own calendar; in the fake, the
		// first one added.
		id = s.cal.primary
	}
	c := s.cal.calendars[id]
	if c == nil {
		apiError(w, http.StatusNotFound, "notFound", "Not Found")
	}
	return c
}

// newETag returns a fresh quoted entity tag. Google's are quoted decimal
// timestamps in microseconds; the fake makes them strictly increasing so
// that two changes in the same microsecond still differ. The caller holds
// s.mu.
func (s *Server) newETag() string {
	v := s.now().UnixMicro()
	if v <= s.cal.lastETag {
		v = s.cal.lastETag + 1
	}
	s.cal.lastETag = v
	return `"` + strconv.FormatInt(v, 10) + `"`
}

// rfc3339Millis is how Google writes created and updated.
const rfc3339Millis = "2006-01-02T15:04:05.000Z"

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

type apiErrorItem struct {
	Domain       string `json:"domain"`
	Reason       string `json:"reason"`
	Message      string `json:"message"`
	LocationType string `json:"locationType,omitempty"`
	Location     string `json:"location,omitempty"`
}

// apiError writes Google's error body with one error of domain "global".
func apiError(w http.ResponseWriter, status int, reason, message string) {
	writeAPIError(w, status, apiErrorItem{Domain: "global", Reason: reason, Message: message}, message)
}

func writeAPIError(w http.ResponseWriter, status int, item apiErrorItem, message string) {
	writeAPIJSON(w, status, "", map[string]any{"error": map[string]any{
		"code":    status,
		"message": message,
		"errors":  []apiErrorItem{item},
	}})
}

func writeFailure(w http.ResponseWriter, f Failure) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	domain := "global"
	switch f.Reason {
	case "rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded":
		// Google files its quota errors under this domain.
		domain = "usageLimits"
	}
	writeAPIError(w, f.Status, apiErrorItem{Domain: domain, Reason: f.Reason, Message: f.Message}, f.Message)
}

// notModified answers 304 when a GET's If-None-Match names the current
// version, as Google does for conditional reads.
func notModified(w http.ResponseWriter, r *http.Request, etag string) bool {
	if r.Method != http.MethodGet || etag == "" || r.Header.Get("If-None-Match") != etag {
		return false
	}
	w.Header().Set("ETag", etag)
	w.WriteHeader(http.StatusNotModified)
	return true
}

// writeAPIJSON writes v, and etag (when set) as the ETag header.
func writeAPIJSON(w http.ResponseWriter, status int, etag string, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// clone deep-copies an event through JSON, the representation that
// matters.
func clone(ev *calendar.Event) *calendar.Event {
	if ev == nil {
		return nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic("googletest: copy event: " + err.Error())
	}
	out := new(calendar.Event)
	if err := json.Unmarshal(b, out); err != nil {
		panic("googletest: copy event: " + err.Error())
	}
	return out
}
