package googleremote

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/api/calendar/v3"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/sync"
)

// FuzzEventMapping feeds arbitrary Google event JSON through the mapping
// a pull uses: it must never panic, an occurrence must end no earlier
// than it starts and lie in the window, termind's marker must never be
// imported as busy time, and an appointment's copy must read back as ours
// with the same content hash.
func FuzzEventMapping(f *testing.F) {
	for _, seed := range []string{
		`{"id":"abc12","status":"confirmed","summary":"Lunch","start":{"dateTime":"2026-12-01T12:00:00+01:00","timeZone":"Europe/Berlin"},"end":{"dateTime":"2026-12-01T13:00:00+01:00"}}`,
		`{"id":"allday1","start":{"date":"2026-12-24"},"end":{"date":"2026-12-27"},"transparency":"transparent"}`,
		`{"id":"inst1_20261201T110000Z","recurringEventId":"inst1","originalStartTime":{"dateTime":"2026-12-01T11:00:00Z"},"start":{"dateTime":"2026-12-01T11:00:00Z"},"end":{"dateTime":"2026-12-01T10:00:00Z"}}`,
		`{"id":"ours1","extendedProperties":{"private":{"termind":"copy","termind_appointment":"apt-1"}},"start":{"dateTime":"2026-12-01T11:00:00Z"},"end":{"dateTime":"2026-12-01T12:00:00Z"}}`,
		`{"id":"blk1","extendedProperties":{"private":{"termind":"blocker","termind_appointment":"blocker:ab"}}}`,
		`{"id":"bad1","start":{"dateTime":"not a time"},"end":{"date":"2026-13-45"}}`,
		`{"id":"x","start":null}`,
	} {
		f.Add([]byte(seed))
	}
	w := sync.Window{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2027, 11, 1, 0, 0, 0, 0, time.UTC)}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev calendar.Event
		if json.Unmarshal(raw, &ev) != nil {
			return
		}
		it := decode(&ev, &w)
		if it.Name != ev.Id || len(it.UIDs) != 1 {
			t.Fatalf("item %+v for id %q", it, ev.Id)
		}
		if it.Ours && len(it.Occurrences) > 0 {
			t.Fatal("our own event became busy time")
		}
		for _, o := range it.Occurrences {
			if o.End.Before(o.Start) {
				t.Fatalf("occurrence ends %v before it starts %v", o.End, o.Start)
			}
			if !o.Start.Before(w.To) || !o.End.After(w.From) {
				t.Fatalf("occurrence %v–%v outside the window", o.Start, o.End)
			}
		}

		// The copy of an appointment with the event's text reads back as
		// ours, unchanged.
		a := store.Appointment{TenantID: "tn_1", ID: "apt-" + ev.Id, Title: ev.Summary, Location: ev.Location,
			Description: ev.Description, Start: w.From.Add(time.Hour), End: w.From.Add(2 * time.Hour), TimeZone: "Europe/Berlin"}
		var r Remote
		name, data, hash, err := r.Encode(a)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		var back calendar.Event
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("copy is not JSON: %v", err)
		}
		got := decode(&back, &w)
		if !got.Ours || got.AppointmentID != a.ID || got.Hash != hash || name != back.Id || len(back.Attendees) != 0 {
			t.Fatalf("copy read back as %+v (hash %s)", got, hash)
		}
	})
}
