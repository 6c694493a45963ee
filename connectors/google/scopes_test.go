package google_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/termind/termind/connectors/google"
)

func TestScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		purposes []string
		want     []string
		err      string // in the error; "" means none
	}{
		{"busy only", []string{"calendar.read.busy"}, []string{google.ScopeEventsReadOnly}, ""},
		{"details", []string{"calendar.read.busy", "calendar.read.details"}, []string{google.ScopeEventsReadOnly}, ""},
		{"write only", []string{"calendar.write"}, []string{google.ScopeEvents}, ""},
		{"write implies read", []string{"calendar.read.details", "calendar.write"}, []string{google.ScopeEvents}, ""},
		{"unknown purpose", []string{"calendar.read.busy", "calendar.delete"}, nil, `"calendar.delete"`},
		{"notification purpose", []string{"notify.sms"}, nil, `"notify.sms"`},
		{"none", nil, nil, "no calendar purpose"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := google.Scopes(tc.purposes)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || got != nil {
					t.Fatalf("Scopes = %q, %v; want an error naming %s", got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Scopes = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		granted  []string
		purposes []string
		want     bool
	}{
		{"read with read-only", []string{google.ScopeEventsReadOnly}, []string{google.PurposeReadBusy}, true},
		{"read with events", []string{google.ScopeEvents}, []string{google.PurposeReadDetails}, true},
		{"write with read-only", []string{google.ScopeEventsReadOnly}, []string{google.PurposeWrite}, false},
		{"write with events", []string{google.ScopeEvents}, []string{google.PurposeReadBusy, google.PurposeWrite}, true},
		{"scope unticked", nil, []string{google.PurposeReadBusy}, false},
		{"unknown purpose", []string{google.ScopeEvents}, []string{"calendar.delete"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := google.Covers(tc.granted, tc.purposes); got != tc.want {
				t.Errorf("Covers(%q, %q) = %t, want %t", tc.granted, tc.purposes, got, tc.want)
			}
		})
	}
}
