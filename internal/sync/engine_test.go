package sync

import (
	"slices"
	"testing"

	"github.com/termind/termind/internal/store"
)

func TestMassDeleteGuardThresholds(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	for _, c := range []struct {
		known, gone int
		trips       bool
	}{
		{0, 0, false},
		{1, 1, false}, // one event deleted from a calendar of one
		{2, 1, false},
		{2, 2, true}, // everything gone
		{5, 4, false},
		{5, 5, true},
		{10, 5, false},
		{10, 6, true}, // more than half of ten or more
		{100, 50, false},
		{100, 51, true},
	} {
		if got := e.massDelete(c.known, c.gone); got != c.trips {
			t.Errorf("massDelete(known %d, gone %d) = %v, want %v", c.known, c.gone, got, c.trips)
		}
	}
}

// TestImportBatchLastWins: for each UID only the last queued step counts,
// so writing the batch at the end equals writing each step at once.
func TestImportBatchLastWins(t *testing.T) {
	t.Parallel()
	var b importBatch
	b.put(store.ImportedObject{UID: "a", Link: store.Link{RemoteID: "1.ics"}})
	b.put(store.ImportedObject{UID: "b"})
	b.remove("a") // import, then removal: removed
	b.remove("c") // removal, then import: imported
	b.put(store.ImportedObject{UID: "c", Link: store.Link{RemoteID: "2.ics"}})
	b.put(store.ImportedObject{UID: "b", Link: store.Link{RemoteID: "3.ics"}}) // the later import wins
	b.put(store.ImportedObject{UID: "a", Link: store.Link{RemoteID: "4.ics"}}) // and back again

	if b.size() != 3 || len(b.removals) != 0 {
		t.Fatalf("size %d, removals %v; want 3 imports and no removal", b.size(), b.removals)
	}
	var got []string
	for _, o := range b.objs {
		if o.UID != "" {
			got = append(got, o.UID+"="+o.Link.RemoteID)
		}
	}
	if want := []string{"b=3.ics", "c=2.ics", "a=4.ics"}; !slices.Equal(got, want) {
		t.Errorf("queued imports %v, want %v", got, want)
	}
	b.remove("b")
	if b.size() != 3 || !b.removals["b"] {
		t.Errorf("after removing b: size %d, removals %v", b.size(), b.removals)
	}
}
