package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/termind/termind/internal/store"
)

// maxBusyWindow bounds the window of one busy query: a year and a few
// days, enough for any booking horizon.
const maxBusyWindow = 370 * 24 * time.Hour

type busyInterval struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type busyList struct {
	Items []busyInterval `json:"items"`
}

// subjectBusy answers GET /v1/subjects/{id}/busy?from=&to=: the merged busy
// intervals of the subject's readable calendars, clipped to [from, to), in
// UTC. Only times are shown, never what the person is doing; our own copies
// are never imported, and a restricted subject shows nothing (the store
// answers an empty list).
func (s *server) subjectBusy(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	subjectID := r.PathValue("id")
	if msg := checkSubjectID(subjectID); msg != "" {
		writeError(w, invalidField("id", "the subject id "+msg))
		return
	}
	q := r.URL.Query()
	from, err := time.Parse(time.RFC3339, q.Get("from"))
	if err != nil {
		writeError(w, invalidField("from", "is required: an RFC 3339 time such as 2030-03-01T00:00:00Z"))
		return
	}
	to, err := time.Parse(time.RFC3339, q.Get("to"))
	if err != nil {
		writeError(w, invalidField("to", "is required: an RFC 3339 time such as 2030-03-08T00:00:00Z"))
		return
	}
	from, to = from.UTC(), to.UTC()
	if !to.After(from) {
		writeError(w, invalidField("to", "must be after from"))
		return
	}
	if to.Sub(from) > maxBusyWindow {
		writeError(w, invalidField("to", fmt.Sprintf("must be at most %d days after from", int(maxBusyWindow/(24*time.Hour)))))
		return
	}
	intervals, err := s.store.BusyIntervals(r.Context(), key.TenantID, subjectID, from, to)
	if err != nil {
		s.internalError(w, r, "busy intervals", err)
		return
	}
	out := busyList{Items: make([]busyInterval, 0, len(intervals))}
	for _, iv := range intervals {
		start, end := iv.Start.UTC(), iv.End.UTC()
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		if !end.After(start) {
			continue
		}
		out.Items = append(out.Items, busyInterval{Start: start.Format(time.RFC3339Nano), End: end.Format(time.RFC3339Nano)})
	}
	writeJSON(w, http.StatusOK, out)
}
