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
