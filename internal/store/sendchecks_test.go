package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// sendChecksCase is one key of the send-checks fixture and what it gives.
type sendChecksCase struct {
	subject, purpose string
	want             store.SendChecks
}

// sendChecksFixture records consents and subject flags in a new tenant (and
// a consent in another) and returns the tenant with the expected answers.
func sendChecksFixture(t *testing.T, ctx context.Context, s *store.Store) (store.Tenant, []sendChecksCase) {
	t.Helper()
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
	return tn, []sendChecksCase{
		{"anna", store.ConsentNotifySMS, store.SendChecks{SMSOptedOut: true, Consent: store.DecisionGranted}},
		{"anna", store.ConsentNotifyEmail, store.SendChecks{SMSOptedOut: true, Consent: store.DecisionRefused}},
		{"anna", "", store.SendChecks{SMSOptedOut: true}},
		{"ben", store.ConsentNotifySMS, store.SendChecks{Consent: store.DecisionRevoked}},
		{"carl", store.ConsentNotifySMS, store.SendChecks{}}, // another tenant's consent does not count
		{"dora", store.ConsentNotifySMS, store.SendChecks{Restricted: true}},
		{"nobody", store.ConsentNotifySMS, store.SendChecks{}},
		{"", "", store.SendChecks{}},
	}
}

// checkTenant reports whether got carries tn as the fixture created it.
func checkTenant(got, tn store.Tenant) bool {
	return got.ID == tn.ID && got.DefaultLocale == tn.DefaultLocale && got.NotificationRetention == tn.NotificationRetention &&
		slices.Equal(got.ReminderRules, []time.Duration{24 * time.Hour})
}

func TestSendChecks(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, cases := sendChecksFixture(t, ctx, s)
		for _, c := range cases {
			got, err := s.SendChecks(ctx, tn.ID, c.subject, c.purpose)
			if err != nil {
				t.Fatalf("%s/%s: %v", c.subject, c.purpose, err)
			}
			if !checkTenant(got.Tenant, tn) {
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

// TestSendChecksBatch checks that the batch form answers every key as
// SendChecks does, across more keys than one query takes.
func TestSendChecksBatch(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, cases := sendChecksFixture(t, ctx, s)
		var keys []store.CheckKey
		for _, c := range cases {
			keys = append(keys, store.CheckKey{SubjectID: c.subject, Purpose: c.purpose})
		}
		// Enough unknown subjects for more than one chunk, and every fixture
		// key twice: duplicates are answered once.
		for i := range 230 {
			keys = append(keys, store.CheckKey{SubjectID: fmt.Sprintf("s-%03d", i), Purpose: store.ConsentNotifySMS})
		}
		keys = append(keys, keys[:len(cases)]...)

		got, err := s.SendChecksBatch(ctx, tn.ID, keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(keys)-len(cases) {
			t.Errorf("%d answers, want %d", len(got), len(keys)-len(cases))
		}
		for _, c := range cases {
			g := got[store.CheckKey{SubjectID: c.subject, Purpose: c.purpose}]
			if !checkTenant(g.Tenant, tn) {
				t.Errorf("%s/%s: tenant = %+v, want %+v", c.subject, c.purpose, g.Tenant, tn)
			}
			g.Tenant = store.Tenant{}
			if !reflect.DeepEqual(g, c.want) {
				t.Errorf("%s/%s: got %+v, want %+v", c.subject, c.purpose, g, c.want)
			}
		}
		for _, k := range keys {
			want, err := s.SendChecks(ctx, tn.ID, k.SubjectID, k.Purpose)
			if err != nil {
				t.Fatal(err)
			}
			if g, ok := got[k]; !ok || !reflect.DeepEqual(g, want) {
				t.Errorf("%+v: batch %+v (present %v), single %+v", k, g, ok, want)
			}
		}

		if got, err := s.SendChecksBatch(ctx, tn.ID, nil); err != nil || len(got) != 0 {
			t.Errorf("no keys: %v, %v; want an empty answer", got, err)
		}
		if _, err := s.SendChecksBatch(ctx, "tnt_unknown", keys[:2]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown tenant: err %v, want ErrNotFound", err)
		}
	})
}
