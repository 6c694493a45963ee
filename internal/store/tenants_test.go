package store_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
)

func TestTenants(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		a, err := s.CreateTenant(ctx, "Praxis A")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.ID, "tnt_") || a.DefaultLocale != "en" || a.NotificationRetention != 30*24*time.Hour {
			t.Errorf("new tenant %+v: want tnt_ id, locale en, 30 days retention", a)
		}
		b, err := s.CreateTenant(ctx, "Praxis B")
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetTenant(ctx, a.ID)
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("GetTenant = %+v, %v; want %+v", got, err, a)
		}
		if _, err := s.GetTenant(ctx, "tnt_missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown tenant: err %v, want ErrNotFound", err)
		}
		list, err := s.ListTenants(ctx)
		if err != nil || len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
			t.Errorf("ListTenants = %+v, %v; want A then B", list, err)
		}
		if _, err := s.CreateTenant(ctx, " "); err == nil {
			t.Errorf("blank tenant name accepted")
		}
	})
}

func TestTenantReminderRules(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, err := s.CreateTenant(ctx, "Praxis R")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tn.ReminderRules, []time.Duration{24 * time.Hour}) {
			t.Errorf("new tenant's reminder rules = %v, want [24h]", tn.ReminderRules)
		}
		cases := []struct {
			name string
			in   []time.Duration
			want []time.Duration
			bad  bool
		}{
			{"sorted and unique", []time.Duration{24 * time.Hour, time.Hour, time.Hour}, []time.Duration{time.Hour, 24 * time.Hour}, false},
			{"none", []time.Duration{}, []time.Duration{}, false},
			{"nil means none", nil, []time.Duration{}, false},
			{"not whole minutes", []time.Duration{90 * time.Second}, nil, true},
			{"not before the start", []time.Duration{0}, nil, true},
		}
		for _, c := range cases {
			got, err := s.SetTenantReminderRules(ctx, tn.ID, c.in)
			if c.bad {
				if err == nil {
					t.Errorf("%s: accepted %v", c.name, c.in)
				}
				continue
			}
			if err != nil || !reflect.DeepEqual(got.ReminderRules, c.want) {
				t.Errorf("%s: SetTenantReminderRules = %v, %v; want %v", c.name, got.ReminderRules, err, c.want)
			}
			read, err := s.GetTenant(ctx, tn.ID)
			if err != nil || !reflect.DeepEqual(read.ReminderRules, c.want) {
				t.Errorf("%s: GetTenant rules = %v, %v; want %v", c.name, read.ReminderRules, err, c.want)
			}
			checks, err := s.SendChecks(ctx, tn.ID, "", "")
			if err != nil || !reflect.DeepEqual(checks.Tenant.ReminderRules, c.want) {
				t.Errorf("%s: SendChecks rules = %v, %v; want %v", c.name, checks.Tenant.ReminderRules, err, c.want)
			}
		}
		// A refused change keeps the rules stored before.
		if got, _ := s.GetTenant(ctx, tn.ID); len(got.ReminderRules) != 0 {
			t.Errorf("rules after refused changes = %v, want the last accepted (none)", got.ReminderRules)
		}
		if _, err := s.SetTenantReminderRules(ctx, "tnt_missing", nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown tenant: %v, want ErrNotFound", err)
		}
	})
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, err := s.CreateTenant(ctx, "T")
		if err != nil {
			t.Fatal(err)
		}
		token, key, err := s.CreateAPIKey(ctx, tn.ID, store.RoleIngest)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(token, "tmd_"+key.ID+"_") || !strings.HasPrefix(key.ID, "key_") {
			t.Fatalf("token %q does not carry key id %q", token, key.ID)
		}
		otherToken, other, err := s.CreateAPIKey(ctx, tn.ID, store.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := s.DB().QueryRowContext(ctx, "SELECT secret_hash FROM api_keys WHERE id = '"+key.ID+"'").Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(token, stored) {
			t.Errorf("the secret itself is stored")
		}

		secret := token[strings.LastIndexByte(token, '_')+1:]
		otherSecret := otherToken[strings.LastIndexByte(otherToken, '_')+1:]
		tests := []struct {
			name  string
			token string
			want  string // key id, or "" for ErrNotFound
		}{
			{"valid", token, key.ID},
			{"valid admin", otherToken, other.ID},
			{"wrong secret", "tmd_" + key.ID + "_" + strings.Repeat("0", 64), ""},
			{"secret of another key", "tmd_" + key.ID + "_" + otherSecret, ""},
			{"other key id", "tmd_" + other.ID + "_" + secret, ""},
			{"unknown key id", "tmd_key_00000000000000000000000000000000_" + secret, ""},
			{"no prefix", strings.TrimPrefix(token, "tmd_"), ""},
			{"truncated", token[:len(token)-1], ""},
			{"empty", "", ""},
			{"garbage", "Bearer xyz", ""},
		}
		for _, tc := range tests {
			got, err := s.LookupAPIKey(ctx, tc.token)
			if tc.want == "" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s: err %v, want ErrNotFound", tc.name, err)
				}
				continue
			}
			if err != nil || got.ID != tc.want || got.TenantID != tn.ID {
				t.Errorf("%s: got %+v, %v; want key %s of %s", tc.name, got, err, tc.want, tn.ID)
			}
		}
		if got, _ := s.LookupAPIKey(ctx, token); got.Role != store.RoleIngest || got.CreatedAt.IsZero() {
			t.Errorf("looked-up key %+v: want role ingest and a creation time", got)
		}

		if err := s.DisableAPIKey(ctx, tn.ID, key.ID, time.Now()); err != nil {
			t.Fatalf("DisableAPIKey: %v", err)
		}
		if _, err := s.LookupAPIKey(ctx, token); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("disabled key: err %v, want ErrNotFound", err)
		}
		if err := s.DisableAPIKey(ctx, tn.ID, key.ID, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("disable twice: err %v, want ErrNotFound", err)
		}

		if _, _, err := s.CreateAPIKey(ctx, tn.ID, "root"); err == nil {
			t.Errorf("unknown role accepted")
		}
		if _, _, err := s.CreateAPIKey(ctx, "tnt_missing", store.RoleAdmin); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key for unknown tenant: err %v, want ErrNotFound", err)
		}
	})
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, err := s.CreateTenant(ctx, "T")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSubject(ctx, tn.ID, "p1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unnamed subject: err %v, want ErrNotFound", err)
		}
		steps := []struct {
			name           string
			do             func() error
			restricted, so bool
		}{
			{"restrict creates", func() error { return s.SetSubjectRestricted(ctx, tn.ID, "p1", true) }, true, false},
			{"opt out", func() error { return s.SetSMSOptedOut(ctx, tn.ID, "p1") }, true, true},
			{"unrestrict", func() error { return s.SetSubjectRestricted(ctx, tn.ID, "p1", false) }, false, true},
		}
		for _, st := range steps {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			got, err := s.GetSubject(ctx, tn.ID, "p1")
			if err != nil || got.Restricted != st.restricted || got.SMSOptedOut != st.so || got.CreatedAt.IsZero() {
				t.Errorf("%s: got %+v, %v; want restricted %v opted out %v", st.name, got, err, st.restricted, st.so)
			}
		}
		if err := s.SetSMSOptedOut(ctx, tn.ID, "p2"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetSubject(ctx, tn.ID, "p2"); err != nil || !got.SMSOptedOut || got.Restricted {
			t.Errorf("opt out creates: %+v, %v", got, err)
		}
		other, err := s.CreateTenant(ctx, "U")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSubject(ctx, other.ID, "p1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("subject seen from another tenant: err %v", err)
		}
	})
}

func TestConsentLedger(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, err := s.CreateTenant(ctx, "T")
		if err != nil {
			t.Fatal(err)
		}
		if d, err := s.ConsentDecision(ctx, tn.ID, "p1", store.ConsentNotifySMS); err != nil || d != "" {
			t.Errorf("no decision yet: %q, %v", d, err)
		}
		at := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Millisecond)
		entries := []store.Consent{
			{Purpose: store.ConsentNotifySMS, Decision: store.DecisionGranted, CreatedAt: at},
			{Purpose: store.ConsentNotifyEmail, Decision: store.DecisionRefused, CreatedAt: at},
			{Purpose: store.ConsentNotifySMS, Decision: store.DecisionRevoked, CreatedAt: at.Add(time.Hour)},
			// Same instant as the revocation: recorded later, so it wins.
			{Purpose: store.ConsentNotifySMS, Decision: store.DecisionGranted, CreatedAt: at.Add(time.Hour)},
			{Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted},
		}
		var recorded []store.Consent
		for _, c := range entries {
			c.TenantID, c.SubjectID = tn.ID, "p1"
			c.PolicyVersion, c.Actor, c.SourceIP, c.UserAgent = "v3", "key_x", "203.0.113.7", "Mozilla/5.0"
			got, err := s.RecordConsent(ctx, c)
			if err != nil {
				t.Fatalf("RecordConsent: %v", err)
			}
			if !strings.HasPrefix(got.ID, "cns_") || got.CreatedAt.IsZero() {
				t.Errorf("recorded %+v: want cns_ id and a time", got)
			}
			recorded = append(recorded, got)
		}
		if _, err := s.GetSubject(ctx, tn.ID, "p1"); err != nil {
			t.Errorf("subject row not created: %v", err)
		}

		list, err := s.ListConsents(ctx, tn.ID, "p1")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(recorded) {
			t.Fatalf("ledger has %d entries, want %d", len(list), len(recorded))
		}
		for i := range list {
			if list[i] != recorded[i] {
				t.Errorf("ledger[%d] = %+v, want %+v", i, list[i], recorded[i])
			}
		}

		tests := []struct{ purpose, want string }{
			{store.ConsentNotifySMS, store.DecisionGranted},
			{store.ConsentNotifyEmail, store.DecisionRefused},
			{store.ConsentCalendarWrite, store.DecisionGranted},
			{store.ConsentCalendarReadBusy, ""},
		}
		for _, tc := range tests {
			if d, err := s.ConsentDecision(ctx, tn.ID, "p1", tc.purpose); err != nil || d != tc.want {
				t.Errorf("ConsentDecision(%s) = %q, %v; want %q", tc.purpose, d, err, tc.want)
			}
		}
		if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "p1", Purpose: store.ConsentNotifySMS,
			Decision: store.DecisionRevoked}); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.ConsentDecision(ctx, tn.ID, "p1", store.ConsentNotifySMS); d != store.DecisionRevoked {
			t.Errorf("after revocation: %q, want revoked", d)
		}
		if list, _ := s.ListConsents(ctx, tn.ID, "p1"); len(list) != len(recorded)+1 || list[0] != recorded[0] {
			t.Errorf("ledger not append-only: %d entries", len(list))
		}
		if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "p1"}); err == nil {
			t.Errorf("consent without purpose and decision accepted")
		}
	})
}
