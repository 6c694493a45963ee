package sync

import "testing"

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
