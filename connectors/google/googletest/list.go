package googletest

// events.list: full listings, incremental sync with sync tokens, and
// pagination.

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/api/calendar/v3"
)

// Page sizes as Google documents them for events.list.
const (
	defaultMaxResults = 250
	maxMaxResults     = 2500
)

// syncState is what a sync token stands for: the calendar's change
// sequence when the listing was taken, and the query it repeats.
type syncState struct {
	calendarID string
	seq        int64
	query      listQuery
	// instances are the ids of the live instances of each series inside
	// the window, as the client was told: when a series changes, the ids
	// that no longer exist are reported cancelled.
	instances map[string][]string
}

// pageState is the rest of a listing, snapshotted when its first page was
// served, so that later changes cannot shift items between pages; the
// changes are picked up by the sync token of the last page.
type pageState struct {
	calendarID string
	rest       []*calendar.Event
	sync       *syncState // nil: the listing ends without a sync token
}

// listQuery is the part of a listing a sync token remembers.
type listQuery struct {
	singleEvents bool
	showDeleted  bool
	timeMin      time.Time
	timeMax      time.Time
	orderBy      string
	q            string
	iCalUID      string
	updatedMin   time.Time
	private      []string // key=value
	shared       []string
}

// Parameters Google refuses next to a sync token, since the token already
// fixes the query.
var notWithSyncToken = []string{"timeMin", "timeMax", "orderBy", "q", "iCalUID", "updatedMin", "privateExtendedProperty", "sharedExtendedProperty"}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	maxResults, ok := parseMaxResults(w, params.Get("maxResults"))
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calendarOf(w, r)
	if c == nil {
		return
	}

	if tok := params.Get("pageToken"); tok != "" {
		p := s.cal.pages[tok]
		if p == nil || p.calendarID != c.id {
			apiError(w, http.StatusBadRequest, "invalid", "Invalid page token value.")
			return
		}
		s.servePage(w, c, p, maxResults)
		return
	}

	if tok := params.Get("syncToken"); tok != "" {
		for _, name := range notWithSyncToken {
			if params.Has(name) {
				// The text Google answers, whichever parameter it is.
				apiError(w, http.StatusBadRequest, "invalid", "Sync token cannot be used with other request restrictions.")
				return
			}
		}
		st := s.cal.syncTokens[tok]
		if st == nil || st.calendarID != c.id {
			apiError(w, http.StatusGone, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
			return
		}
		q := st.query
		if v := params.Get("singleEvents"); v != "" {
			q.singleEvents = v == "true"
		}
		// Deleted events come anyway; showDeleted only decides whether
		// they carry their details.
		q.showDeleted = params.Get("showDeleted") == "true"
		items, instances := s.collect(c, q, st)
		s.servePage(w, c, &pageState{calendarID: c.id, rest: items, sync: &syncState{calendarID: c.id, seq: c.seq, query: q, instances: instances}}, maxResults)
		return
	}

	q, reason, msg := parseListQuery(params)
	if reason != "" {
		apiError(w, http.StatusBadRequest, reason, msg)
		return
	}
	items, instances := s.collect(c, q, nil)
	s.servePage(w, c, &pageState{calendarID: c.id, rest: items, sync: &syncState{calendarID: c.id, seq: c.seq, query: q, instances: instances}}, maxResults)
}

// servePage answers one page of p: a page token when more remains, else
// the sync token. The caller holds s.mu.
func (s *Server) servePage(w http.ResponseWriter, c *calendarData, p *pageState, maxResults int) {
	n := min(maxResults, len(p.rest))
	resp := &calendar.Events{
		Kind:             "calendar#events",
		Etag:             `"` + strconv.FormatInt(c.updated.UnixMicro(), 10) + `"`,
		Summary:          c.id,
		TimeZone:         "UTC",
		Updated:          c.updated.UTC().Format(rfc3339Millis),
		AccessRole:       "owner",
		DefaultReminders: []*calendar.EventReminder{},
		Items:            p.rest[:n],
	}
	if rest := p.rest[n:]; len(rest) > 0 {
		tok := random(24)
		s.cal.pages[tok] = &pageState{calendarID: p.calendarID, rest: rest, sync: p.sync}
		resp.NextPageToken = tok
	} else if p.sync != nil {
		tok := random(24)
		s.cal.syncTokens[tok] = p.sync
		resp.NextSyncToken = tok
	}
	writeAPIJSON(w, http.StatusOK, resp.Etag, resp)
}

// listInstances is events.instances: the instances of one series, which
// Google pages like a listing but without sync tokens.
func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	maxResults, ok := parseMaxResults(w, params.Get("maxResults"))
	if !ok {
		return
	}
	q := listQuery{singleEvents: true, showDeleted: params.Get("showDeleted") == "true"}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"timeMin", &q.timeMin}, {"timeMax", &q.timeMax}} {
		if v := params.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				apiError(w, http.StatusBadRequest, "invalid", "Bad Request")
				return
			}
			*p.dst = t
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calendarOf(w, r)
	if c == nil {
		return
	}
	if tok := params.Get("pageToken"); tok != "" {
		p := s.cal.pages[tok]
		if p == nil || p.calendarID != c.id {
			apiError(w, http.StatusBadRequest, "invalid", "Invalid page token value.")
			return
		}
		s.servePage(w, c, p, maxResults)
		return
	}
	se := c.events[r.PathValue("eventId")]
	switch {
	case se == nil || !isRecurring(se.ev):
		apiError(w, http.StatusNotFound, "notFound", "Not Found")
		return
	case se.ev.Status == "cancelled":
		apiError(w, http.StatusGone, "deleted", "Resource has been deleted")
		return
	}
	var hits []hit
	s.collectInstances(se, q, -1, nil, func(ev *calendar.Event, seq int64) {
		if ev.Status == "cancelled" && !q.showDeleted {
			ev = tombstone(ev)
		}
		start, _, _ := parseEventTime(ev.OriginalStartTime)
		hits = append(hits, hit{ev: ev, seq: seq, start: start})
	})
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].start.Before(hits[j].start) })
	items := make([]*calendar.Event, len(hits))
	for i, h := range hits {
		items[i] = h.ev
	}
	s.servePage(w, c, &pageState{calendarID: c.id, rest: items}, maxResults)
}

// parseMaxResults reads maxResults: 250 when absent, at most 2500.
func parseMaxResults(w http.ResponseWriter, v string) (int, bool) {
	if v == "" {
		return defaultMaxResults, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		apiError(w, http.StatusBadRequest, "invalid", "Invalid value for: maxResults")
		return 0, false
	}
	return min(n, maxMaxResults), true
}

func parseListQuery(params map[string][]string) (q listQuery, reason, msg string) {
	get := func(k string) string {
		if v := params[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	q.singleEvents = get("singleEvents") == "true"
	q.showDeleted = get("showDeleted") == "true"
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"timeMin", &q.timeMin}, {"timeMax", &q.timeMax}, {"updatedMin", &q.updatedMin}} {
		if v := get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return q, "invalid", "Bad Request"
			}
			*p.dst = t
		}
	}
	if !q.timeMin.IsZero() && !q.timeMax.IsZero() && !q.timeMin.Before(q.timeMax) {
		return q, "timeRangeEmpty", "The specified time range is empty."
	}
	q.orderBy = get("orderBy")
	switch q.orderBy {
	case "", "updated":
	case "startTime":
		if !q.singleEvents {
			return q, "badRequest", "The requested ordering is not available for the particular query."
		}
	default:
		return q, "invalid", "Invalid value for: orderBy"
	}
	q.q = get("q")
	q.iCalUID = get("iCalUID")
	q.private = params["privateExtendedProperty"]
	q.shared = params["sharedExtendedProperty"]
	return q, "", ""
}

// hit is one item of a listing with what it is sorted by.
type hit struct {
	ev    *calendar.Event
	seq   int64
	start time.Time
}

// collect lists c for q. A nil from is a full listing; otherwise only
// what changed after that sync token, deleted items included, ordered by
// change. It also returns the live instance ids per series for the next
// sync token. The caller holds s.mu.
func (s *Server) collect(c *calendarData, q listQuery, from *syncState) ([]*calendar.Event, map[string][]string) {
	incremental := from != nil
	since := int64(-1)
	var known map[string][]string
	if incremental {
		since, known = from.seq, from.instances
	}
	instances := map[string][]string{}
	var hits []hit
	add := func(ev *calendar.Event, seq int64) {
		// On the organizer's calendar Google keeps the details of deleted
		// events (so that they can be restored) and lists them with
		// showDeleted; otherwise it guarantees only the identifying
		// fields.
		if ev.Status == "cancelled" && !q.showDeleted {
			ev = tombstone(ev)
		}
		start := time.Time{}
		if ev.Start != nil {
			start, _, _ = parseEventTime(ev.Start)
		} else if ev.OriginalStartTime != nil {
			start, _, _ = parseEventTime(ev.OriginalStartTime)
		}
		hits = append(hits, hit{ev: ev, seq: seq, start: start})
	}
	// Google includes deleted events in incremental results, with
	// showDeleted, and since updatedMin.
	withDeleted := incremental || q.showDeleted || !q.updatedMin.IsZero()

	for _, se := range c.events {
		ev := se.ev
		if !isRecurring(ev) {
			switch {
			case incremental:
				// Every change is reported, even of an event now outside
				// the window: the client may hold a copy from before.
				if se.seq > since {
					add(clone(ev), se.seq)
					// A series turned into a single event: its
					// instances are gone.
					for _, id := range known[ev.Id] {
						add(&calendar.Event{Id: id, Status: "cancelled", Etag: ev.Etag, Updated: ev.Updated, RecurringEventId: ev.Id}, se.seq)
					}
				}
			case ev.Status == "cancelled":
				if withDeleted && updatedSince(ev, q) {
					add(clone(ev), se.seq)
				}
			case inWindow(ev, q) && matches(ev, q):
				add(clone(ev), se.seq)
			}
			continue
		}
		if q.singleEvents {
			instances[ev.Id] = s.collectInstances(se, q, since, known[ev.Id], add)
			continue
		}
		// Series unexpanded: the master, then its exceptions as items of
		// their own.
		switch {
		case incremental:
			if se.seq > since {
				add(clone(ev), se.seq)
			}
		case ev.Status == "cancelled":
			if withDeleted && updatedSince(ev, q) {
				add(clone(ev), se.seq)
			}
		case seriesInWindow(ev, q, s.now()) && matches(ev, q):
			add(clone(ev), se.seq)
		}
		if ev.Status == "cancelled" {
			continue
		}
		for _, ex := range se.exceptions {
			switch {
			case incremental:
				if ex.seq > since {
					add(clone(ex.ev), ex.seq)
				}
			// Google documents that cancelled instances appear even
			// when both showDeleted and singleEvents are false.
			case inWindow(ex.ev, q) && (ex.ev.Status == "cancelled" || matches(ex.ev, q)):
				add(clone(ex.ev), ex.seq)
			}
		}
	}

	sort.SliceStable(hits, func(i, j int) bool {
		a, b := hits[i], hits[j]
		switch {
		case incremental:
			if a.seq != b.seq {
				return a.seq < b.seq
			}
		case q.orderBy == "updated":
			if a.ev.Updated != b.ev.Updated {
				return a.ev.Updated < b.ev.Updated
			}
		}
		if !a.start.Equal(b.start) {
			return a.start.Before(b.start)
		}
		return a.ev.Id < b.ev.Id
	})
	out := make([]*calendar.Event, len(hits))
	for i, h := range hits {
		out[i] = h.ev
	}
	return out, instances
}

// collectInstances adds the instances of series se inside q's window and
// returns the ids of the live ones. Incrementally, an instance counts as
// changed when its series or its own exception changed, and an instance
// the client knew (known) that the changed series no longer has is
// reported cancelled.
func (s *Server) collectInstances(se *storedEvent, q listQuery, since int64, known []string, add func(*calendar.Event, int64)) []string {
	sp, origs, err := occurrences(se.ev, q.timeMin, q.timeMax, s.now())
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var live []string
	emit := func(inst *calendar.Event, seq int64) {
		seen[inst.Id] = true
		if inst.Status != "cancelled" {
			live = append(live, inst.Id)
		}
		switch {
		case since >= 0:
			if seq > since {
				add(inst, seq)
			}
		case inst.Status == "cancelled":
			if (q.showDeleted || !q.updatedMin.IsZero()) && updatedSince(inst, q) {
				add(inst, seq)
			}
		case matches(inst, q):
			add(inst, seq)
		}
	}
	for _, orig := range origs {
		id := se.ev.Id + "_" + sp.instanceSuffix(orig)
		if ex := se.exceptions[id]; ex != nil {
			inst := clone(ex.ev)
			if se.ev.Status == "cancelled" {
				inst.Status = "cancelled"
			}
			emit(inst, max(ex.seq, se.seq))
			continue
		}
		inst := instanceOf(se.ev, sp, orig)
		if se.ev.Status == "cancelled" {
			inst.Status = "cancelled"
		}
		emit(inst, se.seq)
	}
	// A cancelled instance whose occurrence the rule no longer yields
	// (an EXDATE added, say) is still reported while in the window.
	for id, ex := range se.exceptions {
		if seen[id] || ex.ev.Status != "cancelled" || ex.ev.OriginalStartTime == nil {
			continue
		}
		orig, _, err := parseEventTime(ex.ev.OriginalStartTime)
		if err != nil || !q.timeMax.IsZero() && !orig.Before(q.timeMax) || !q.timeMin.IsZero() && orig.Before(q.timeMin) {
			continue
		}
		emit(clone(ex.ev), ex.seq)
	}
	if since >= 0 && se.seq > since {
		for _, id := range known {
			if seen[id] {
				continue
			}
			gone := &calendar.Event{Id: id, Status: "cancelled", Etag: se.ev.Etag, Updated: se.ev.Updated, RecurringEventId: se.ev.Id}
			if orig, _, err := parseInstanceSuffix(id[len(se.ev.Id)+1:]); err == nil {
				gone.OriginalStartTime = sp.eventDateTime(orig)
			}
			add(gone, se.seq)
		}
	}
	return live
}

// inWindow: Google lists an event when it ends after timeMin and starts
// before timeMax.
func inWindow(ev *calendar.Event, q listQuery) bool {
	sp, err := eventSpan(ev)
	if err != nil {
		return false
	}
	if !q.timeMax.IsZero() && !sp.start.Before(q.timeMax) {
		return false
	}
	if !q.timeMin.IsZero() && !sp.end.After(q.timeMin) && !(sp.end.Equal(sp.start) && sp.start.Equal(q.timeMin)) {
		return false
	}
	return true
}

// seriesInWindow: a series is listed when one of its instances is.
func seriesInWindow(ev *calendar.Event, q listQuery, now time.Time) bool {
	if q.timeMin.IsZero() && q.timeMax.IsZero() {
		return true
	}
	_, origs, err := occurrences(ev, q.timeMin, q.timeMax, now)
	return err == nil && len(origs) > 0
}

// matches applies the listing's filters other than time.
func matches(ev *calendar.Event, q listQuery) bool {
	if q.iCalUID != "" && ev.ICalUID != q.iCalUID {
		return false
	}
	if !updatedSince(ev, q) {
		return false
	}
	if q.q != "" {
		text := strings.ToLower(ev.Summary + "\n" + ev.Description + "\n" + ev.Location)
		for _, word := range strings.Fields(strings.ToLower(q.q)) {
			if !strings.Contains(text, word) {
				return false
			}
		}
	}
	var private, shared map[string]string
	if ev.ExtendedProperties != nil {
		private, shared = ev.ExtendedProperties.Private, ev.ExtendedProperties.Shared
	}
	return hasProperties(private, q.private) && hasProperties(shared, q.shared)
}

// updatedSince applies updatedMin.
func updatedSince(ev *calendar.Event, q listQuery) bool {
	if q.updatedMin.IsZero() {
		return true
	}
	u, err := time.Parse(time.RFC3339, ev.Updated)
	return err == nil && !u.Before(q.updatedMin)
}

func hasProperties(props map[string]string, want []string) bool {
	for _, kv := range want {
		k, v, _ := strings.Cut(kv, "=")
		if got, ok := props[k]; !ok || got != v {
			return false
		}
	}
	return true
}
