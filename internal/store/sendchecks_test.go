package store_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestSendChecks(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		record := func(tenantID, subject, purpose, decision string) {
			t.Helper()
			if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tenantID, SubjectID: subject, Purpose: purpose,
				Decision: decision, PolicyVersion: "v1", Actor: "test"}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond) // distinct timestamps: latest wins
		}
		record(tn.ID, "anna", store.ConsentNotifySMS, store.DecisionGranted)
		record(tn.ID, "anna", store.ConsentNotifyEmail, store.DecisionRefused)
		record(tn.ID, "ben", store.ConsentNotifySMS, store.DecisionGranted)
		record(tn.ID, "ben", store.ConsentNotifySMS, store.DecisionRevoked)
		record(other.ID, "carl", store.ConsentNotifySMS, store.DecisionGranted)
		if err := s.SetSubjectRestricted(ctx, tn.ID, "dora", true); err != nil {
			t.Fatal(err)
		}
		if err := s.SetSMSOptedOut(ctx, tn.ID, "anna"); err != nil {
			t.Fatal(err)
		}

		cases := []struct {
			subject, purpose string
			want             store.SendChecks
		}{
			{"anna", store.ConsentNotifySMS, store.SendChecks{SMSOptedOut: true, Consent: store.DecisionGranted}},
			{"anna", store.ConsentNotifyEmail, store.SendChecks{SMSOptedOut: true, Consent: store.DecisionRefused}},
			{"anna", "", store.SendChecks{SMSOptedOut: true}},
			{"ben", store.ConsentNotifySMS, store.SendChecks{Consent: store.DecisionRevoked}},
			{"carl", store.ConsentNotifySMS, store.SendChecks{}}, // another tenant's consent does not count
			{"dora", store.ConsentNotifySMS, store.SendChecks{Restricted: true}},
			{"nobody", store.ConsentNotifySMS, store.SendChecks{}},
			{"", "", store.SendChecks{}},
		}
		for _, c := range cases {
			got, err := s.SendChecks(ctx, tn.ID, c.subject, c.purpose)
			if err != nil {
				t.Fatalf("%s/%s: %v", c.subject, c.purpose, err)
			}
			if got.Tenant.ID != tn.ID || got.Tenant.DefaultLocale != tn.DefaultLocale || got.Tenant.NotificationRetention != tn.NotificationRetention ||
				!slices.Equal(got.Tenant.ReminderRules, []time.Duration{24 * time.Hour}) {
				t.Errorf("%s/%s: tenant = %+v, want %+v", c.subject, c.purpose, got.Tenant, tn)
			}
			got.Tenant = store.Tenant{}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s/%s: got %+v, want %+v", c.subject, c.purpose, got, c.want)
			}
		}
		if _, err := s.SendChecks(ctx, "tnt_unknown", "anna", ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown tenant: err %v, want ErrNotFound", err)
		}
	})
}
