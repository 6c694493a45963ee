package caldav_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
)

// FuzzParse feeds arbitrary bytes to ParseObject, Occurrences (over a
// fixed two-year window) and ContentHash. None may panic, and a small
// input must not take long. Seeds: the whole corpus and testdata.
func FuzzParse(f *testing.F) {
	for _, path := range corpusFiles(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	local, err := filepath.Glob(filepath.Join("testdata", "*.ics"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range local {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	from, to := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		began := time.Now()
		cal, err := caldav.ParseObject(data)
		if err != nil {
			if cal != nil {
				t.Fatalf("ParseObject returned a calendar with error %v", err)
			}
			return
		}
		occ, err := caldav.Occurrences(cal, from, to, loc)
		if err == nil && len(occ) > 0 && occ[0].Start.Location() != time.UTC {
			t.Errorf("occurrence not in UTC: %+v", occ[0])
		}
		if len(occ) > caldav.MaxOccurrences*len(cal.Children) {
			t.Errorf("%d occurrences from %d components", len(occ), len(cal.Children))
		}
		if _, err := caldav.ContentHash(data); err != nil {
			t.Errorf("ContentHash failed on data ParseObject accepted: %v", err)
		}
		if d := time.Since(began); d > 10*time.Second && len(data) < 64<<10 {
			t.Errorf("%d bytes took %v", len(data), d)
		}
	})
}

// FuzzOccurrences expands arbitrary calendar objects over an arbitrary
// window (a start offset in days from 2025-01-01 and a length of 1 to
// 1,000 days) and checks what sync relies on: every occurrence overlaps
// the window, ends no earlier than it starts, is in UTC, the list is
// sorted, no UID yields more than MaxOccurrences, and a small input
// finishes quickly. Seeds: the corpus and testdata, over a default window.
func FuzzOccurrences(f *testing.F) {
	for _, path := range corpusFiles(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, int16(0), uint16(730))
	}
	local, err := filepath.Glob(filepath.Join("testdata", "*.ics"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range local {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, int16(-400), uint16(30))
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, offsetDays int16, spanDays uint16) {
		cal, err := caldav.ParseObject(data)
		if err != nil {
			return
		}
		from := base.AddDate(0, 0, int(offsetDays))
		to := from.AddDate(0, 0, 1+int(spanDays)%1000)
		began := time.Now()
		occ, _ := caldav.Occurrences(cal, from, to, loc)
		if d := time.Since(began); d > 10*time.Second && len(data) < 64<<10 {
			t.Errorf("%d bytes over %v took %v", len(data), to.Sub(from), d)
		}
		perUID := map[string]int{}
		for i, o := range occ {
			if o.Start.Location() != time.UTC || o.End.Location() != time.UTC {
				t.Fatalf("occurrence %d not in UTC: %+v", i, o)
			}
			if o.End.Before(o.Start) {
				t.Fatalf("occurrence %d ends before it starts: %+v", i, o)
			}
			if !o.Start.Before(to) || (o.End.After(o.Start) && !o.End.After(from)) || (o.End.Equal(o.Start) && o.Start.Before(from)) {
				t.Fatalf("occurrence %d (%v – %v, all-day %v) outside the window %v – %v", i, o.Start, o.End, o.AllDay, from, to)
			}
			if i > 0 && o.Start.Before(occ[i-1].Start) {
				t.Fatalf("occurrences not sorted at %d: %v after %v", i, o.Start, occ[i-1].Start)
			}
			perUID[o.UID]++
		}
		for uid, n := range perUID {
			if uid == "" {
				continue // events without UID are each a series of their own
			}
			// Overrides without a master stand alone, so a UID may add a
			// few beyond the series' cap; the cap is what bounds the work.
			if n > caldav.MaxOccurrences+len(cal.Children) {
				t.Fatalf("UID %q yields %d occurrences", uid, n)
			}
		}
	})
}
