package processing

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/config"
)

func TestRecordsFollowConfiguration(t *testing.T) {
	t.Parallel()
	tenant := Tenant{ID: "tnt_1", Name: "Praxis | Weber", NotificationRetention: 30 * 24 * time.Hour, AuditRetention: 365 * 24 * time.Hour}
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		cfg   config.Config
		conns []Connection
		// want: activity id → recipient names; absent ids must not be listed.
		want     map[string][]string
		transfer map[string]bool
	}{
		{name: "files only", cfg: config.Config{},
			want:     map[string][]string{"notify.email": nil, "notify.sms": nil, "accountability": nil},
			transfer: map[string]bool{"notify.sms": false}},
		{name: "adding SMS adds Twilio", cfg: config.Config{TwilioAccountSID: "AC1", TwilioAuthToken: "x", TwilioFrom: "+4930"},
			want:     map[string][]string{"notify.email": nil, "notify.sms": {"Twilio Inc."}, "accountability": nil},
			transfer: map[string]bool{"notify.sms": true, "notify.email": false}},
		{name: "SMTP relay", cfg: config.Config{SMTPURL: "smtp://u:p@mail.example.org:587?tls=starttls"},
			want:     map[string][]string{"notify.email": {"SMTP relay mail.example.org"}, "notify.sms": nil, "accountability": nil},
			transfer: map[string]bool{"notify.email": false}},
		{name: "CalDAV hosts in use", cfg: config.Config{},
			conns: []Connection{{Provider: "caldav", CalendarURL: "https://dav.example.org/a/"},
				{Provider: "caldav", CalendarURL: "https://DAV.example.org/b/"}, {Provider: "caldav", CalendarURL: "https://cal.example.net/x/"}},
			want: map[string][]string{"notify.email": nil, "notify.sms": nil, "accountability": nil,
				"calendar.caldav": {"CalDAV server cal.example.net", "CalDAV server dav.example.org"}},
			transfer: map[string]bool{"calendar.caldav": false}},
		{name: "Google configured", cfg: config.Config{GoogleClientID: "id"},
			want: map[string][]string{"notify.email": nil, "notify.sms": nil, "accountability": nil,
				"calendar.google": {"Google LLC"}},
			transfer: map[string]bool{"calendar.google": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Build(SetupFrom(tc.cfg), tenant, tc.conns, now)
			got := map[string][]string{}
			byID := map[string]Activity{}
			for _, a := range r.Activities {
				var names []string
				for _, rc := range a.Recipients {
					names = append(names, rc.Name)
				}
				got[a.ID] = names
				byID[a.ID] = a
			}
			if len(got) != len(tc.want) {
				t.Errorf("activities = %v, want %v", got, tc.want)
			}
			for id, names := range tc.want {
				if g, ok := got[id]; !ok || !slices.Equal(g, names) {
					t.Errorf("%s recipients = %v (listed %v), want %v", id, g, ok, names)
				}
			}
			for id, want := range tc.transfer {
				a := byID[id]
				if a.ThirdCountryTransfer != want || (want && !slices.Equal(a.TransferCountries, []string{"US"})) {
					t.Errorf("%s transfer = %v %v, want %v", id, a.ThirdCountryTransfer, a.TransferCountries, want)
				}
			}
			if a := byID["notify.email"]; !strings.Contains(a.Retention, "30 days") {
				t.Errorf("notification retention = %q, want the tenant's 30 days", a.Retention)
			}
			if a := byID["accountability"]; !strings.Contains(a.Retention, "365 days") {
				t.Errorf("audit retention = %q, want the tenant's 365 days", a.Retention)
			}
			md := r.Markdown()
			if !strings.HasPrefix(md, "# Records of processing activities") || !strings.Contains(md, `Praxis \| Weber`) {
				t.Errorf("markdown head:\n%s", md)
			}
			for _, a := range r.Activities {
				if !strings.Contains(md, "## "+a.Name) {
					t.Errorf("markdown lacks %q", a.Name)
				}
			}
			if tc.transfer["notify.sms"] && !strings.Contains(md, "Twilio Inc. (processor, US)") {
				t.Errorf("markdown lacks Twilio:\n%s", md)
			}
		})
	}
}

// The tenant's retention policy shows in the activities it governs.
func TestRecordsStateTheRetentionPolicy(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	tn := Tenant{ID: "tnt_1", NotificationRetention: 7 * day, AuditRetention: 400 * day, ImportedEventRetention: 14 * day,
		BrokenConnectionRetention: 60 * day, InactiveSubjects: 730 * day, InactivityAction: "anonymise"}
	rec := Build(Setup{Google: true}, tn, nil, time.Now())
	want := map[string][]string{
		"notify.email":    {"notifications 7 days"},
		"calendar.google": {"at most 14 days after they ended", "broken for 60 days is revoked"},
		"accountability":  {"audit entries 400 days", "without activity for 730 days is anonymised"},
	}
	for _, a := range rec.Activities {
		for _, w := range want[a.ID] {
			if !strings.Contains(a.Retention, w) {
				t.Errorf("%s retention %q lacks %q", a.ID, a.Retention, w)
			}
		}
		delete(want, a.ID)
	}
	if len(want) != 0 {
		t.Errorf("activities missing: %v", want)
	}
}
