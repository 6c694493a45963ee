package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// keyring returns a keyring whose current key is derived from seed, with
// the keys of the old seeds for reading.
func keyring(t *testing.T, seed string, old ...string) *secrets.Keyring {
	t.Helper()
	key := func(s string) []byte { k := sha256.Sum256([]byte(s)); return k[:] }
	var olds [][]byte
	for _, o := range old {
		olds = append(olds, key(o))
	}
	k, err := secrets.NewKeyring(key(seed), olds...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

// rebind turns '?' placeholders into $n on PostgreSQL, for raw test SQL.
func rebind(s *store.Store, q string) string {
	if s.Dialect() != store.DialectPostgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func execSQL(t *testing.T, s *store.Store, q string, args ...any) {
	t.Helper()
	if _, err := s.DB().ExecContext(testCtx(t), rebind(s, q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t *testing.T, s *store.Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(testCtx(t), rebind(s, q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// rawRows returns every row of a table with all columns printed, to look
// for values that must (not) be there.
func rawRows(t *testing.T, s *store.Store, table string) []string {
	t.Helper()
	rows, err := s.DB().QueryContext(testCtx(t), "SELECT * FROM "+table)
	if err != nil {
		t.Fatalf("select %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			fmt.Fprintf(&b, "%s=%v ", cols[i], v)
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// grant builds the consent decisions a connection is created with.
func grant(purposes ...string) []store.Consent {
	var out []store.Consent
	for _, p := range purposes {
		out = append(out, store.Consent{Purpose: p, Decision: store.DecisionGranted, PolicyVersion: "v1",
			Actor: "api_key:k1", SourceIP: "203.0.113.7", UserAgent: "browser"})
	}
	return out
}

func newConn(t *testing.T, s *store.Store, tenantID, subjectID, secret string, purposes ...string) store.Connection {
	t.Helper()
	c, err := s.CreateConnection(testCtx(t), store.Connection{
		TenantID: tenantID, SubjectID: subjectID, Provider: store.ProviderCalDAV,
		CalendarURL: "https://dav.example.org/cal/" + subjectID + "/", CalendarName: "Office",
		Privacy: store.PrivacyBusy, Direction: store.DirectionBoth,
	}, []byte(secret), grant(purposes...), store.AuditEntry{Actor: "api_key:k1", SourceIP: "203.0.113.7"})
	if err != nil {
		t.Fatalf("CreateConnection: %v", err)
	}
	return c
}

func addEvent(t *testing.T, s *store.Store, connID, uid string, start time.Time) {
	t.Helper()
	execSQL(t, s, `INSERT INTO external_events (connection_id, uid, recurrence_id, start_at, end_at, all_day, time_zone,
		transparent, title, location, description, updated_at) VALUES (?, ?, '', ?, ?, FALSE, 'Europe/Berlin', FALSE, ?, ?, '', ?)`,
		connID, uid, start.UnixMilli(), start.Add(time.Hour).UnixMilli(), "Dentist "+uid, "Praxis", start.UnixMilli())
}

func addLink(t *testing.T, s *store.Store, connID, itemID string) {
	t.Helper()
	execSQL(t, s, `INSERT INTO links (connection_id, item_kind, item_id, remote_id, remote_href, remote_etag, content_hash,
		synced_version, updated_at) VALUES (?, 'appointment', ?, ?, ?, '"e1"', 'h', 1, ?)`,
		connID, itemID, "r-"+itemID, "/cal/"+itemID+".ics", time.Now().UnixMilli())
}

func TestCreateGetListConnections(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)

		// No sealer yet: nothing is stored.
		_, err := s.CreateConnection(ctx, store.Connection{TenantID: tn.ID, SubjectID: "anna", Provider: store.ProviderGoogle,
			Privacy: store.PrivacyBusy, Direction: store.DirectionImport}, []byte("x"), nil, store.AuditEntry{})
		if !errors.Is(err, store.ErrNoSealer) {
			t.Fatalf("CreateConnection without sealer: %v, want ErrNoSealer", err)
		}
		if n := count(t, s, "SELECT count(*) FROM connections"); n != 0 {
			t.Fatalf("%d connections stored without a sealer", n)
		}
		s.UseSealer(keyring(t, "k1"))

		for _, bad := range []store.Connection{
			{TenantID: tn.ID, SubjectID: "anna", Provider: "outlook", Privacy: store.PrivacyBusy, Direction: store.DirectionBoth},
			{TenantID: tn.ID, SubjectID: "anna", Provider: store.ProviderCalDAV, Privacy: "everything", Direction: store.DirectionBoth},
			{TenantID: tn.ID, SubjectID: "anna", Provider: store.ProviderCalDAV, Privacy: store.PrivacyBusy, Direction: "sideways"},
			{TenantID: tn.ID, Provider: store.ProviderCalDAV, Privacy: store.PrivacyBusy, Direction: store.DirectionBoth},
		} {
			if _, err := s.CreateConnection(ctx, bad, []byte("x"), nil, store.AuditEntry{}); err == nil {
				t.Errorf("CreateConnection(%+v) accepted", bad)
			}
		}
		if n := count(t, s, "SELECT count(*) FROM connections"); n != 0 {
			t.Fatalf("%d invalid connections stored", n)
		}
		// A consent about someone else fails the whole call.
		_, err = s.CreateConnection(ctx, store.Connection{TenantID: tn.ID, SubjectID: "anna", Provider: store.ProviderCalDAV,
			Privacy: store.PrivacyBusy, Direction: store.DirectionBoth}, []byte("x"),
			[]store.Consent{{SubjectID: "ben", Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted}}, store.AuditEntry{})
		if err == nil {
			t.Error("CreateConnection with another subject's consent accepted")
		}

		before := time.Now().Add(-time.Millisecond)
		a := newConn(t, s, tn.ID, "anna", "pw-anna", store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)
		time.Sleep(2 * time.Millisecond)
		b := newConn(t, s, tn.ID, "ben", "pw-ben", store.ConsentCalendarReadBusy)
		time.Sleep(2 * time.Millisecond)
		a2 := newConn(t, s, tn.ID, "anna", "pw-anna-2", store.ConsentCalendarReadBusy)
		o := newConn(t, s, other.ID, "anna", "pw-other", store.ConsentCalendarReadBusy)

		if !strings.HasPrefix(a.ID, "con_") || a.State != store.ConnActive || a.CreatedAt.Before(before) || !a.UpdatedAt.Equal(a.CreatedAt) {
			t.Errorf("created connection = %+v", a)
		}
		got, err := s.GetConnection(ctx, tn.ID, a.ID)
		if err != nil || got != a {
			t.Errorf("GetConnection = %+v, %v; want %+v", got, err, a)
		}
		if got, err := s.GetConnectionByID(ctx, a.ID); err != nil || got != a {
			t.Errorf("GetConnectionByID = %+v, %v; want %+v", got, err, a)
		}
		if _, err := s.GetConnection(ctx, other.ID, a.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetConnection with another tenant: %v, want ErrNotFound", err)
		}
		if _, err := s.GetConnectionByID(ctx, "con_missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetConnectionByID(unknown): %v, want ErrNotFound", err)
		}

		ids := func(cs []store.Connection) []string {
			var out []string
			for _, c := range cs {
				out = append(out, c.ID)
			}
			return out
		}
		all, err := s.ListConnections(ctx, tn.ID, "")
		if err != nil || !slices.Equal(ids(all), []string{a.ID, b.ID, a2.ID}) {
			t.Errorf("ListConnections(tenant) = %v, %v", ids(all), err)
		}
		annas, err := s.ListConnections(ctx, tn.ID, "anna")
		if err != nil || !slices.Equal(ids(annas), []string{a.ID, a2.ID}) {
			t.Errorf("ListConnections(anna) = %v, %v", ids(annas), err)
		}
		if others, err := s.ListConnections(ctx, other.ID, ""); err != nil || !slices.Equal(ids(others), []string{o.ID}) {
			t.Errorf("ListConnections(other tenant) = %v, %v", ids(others), err)
		}

		// The consents and the audit entry were written with the connection.
		ledger, err := s.ListConsents(ctx, tn.ID, "anna")
		if err != nil {
			t.Fatal(err)
		}
		var onA []string
		for _, c := range ledger {
			if c.ConnectionID == a.ID {
				onA = append(onA, c.Purpose+"="+c.Decision)
				if c.Actor != "api_key:k1" || c.PolicyVersion != "v1" || c.SourceIP != "203.0.113.7" || c.TenantID != tn.ID {
					t.Errorf("consent = %+v", c)
				}
			}
		}
		slices.Sort(onA)
		if want := []string{"calendar.read.busy=granted", "calendar.write=granted"}; !slices.Equal(onA, want) {
			t.Errorf("consents on connection = %v, want %v", onA, want)
		}
		if _, err := s.GetSubject(ctx, tn.ID, "anna"); err != nil {
			t.Errorf("subject row not created: %v", err)
		}
		audit, err := s.ListAudit(ctx, tn.ID, "anna")
		if err != nil {
			t.Fatal(err)
		}
		if len(audit) != 2 || audit[0].Action != "connection.create" || audit[0].TargetKind != "connection" ||
			audit[0].TargetID != a.ID || audit[0].Actor != "api_key:k1" || audit[0].SourceIP != "203.0.113.7" {
			t.Errorf("audit = %+v", audit)
		}
	})
}

func TestCredentialsSealedAtRest(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		const secret = "refresh-token-PLAINTEXT-4711"
		const verifier = "pkce-verifier-PLAINTEXT-0815"
		c := newConn(t, s, tn.ID, "anna", secret, store.ConsentCalendarReadBusy)
		d := newConn(t, s, tn.ID, "ben", "other-secret", store.ConsentCalendarReadBusy)
		if err := s.SaveOAuthState(ctx, store.OAuthState{Nonce: "n1", TenantID: tn.ID, SubjectID: "anna",
			Verifier: verifier, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"connections", "oauth_states", "audit", "consents"} {
			for _, row := range rawRows(t, s, table) {
				if strings.Contains(row, "PLAINTEXT") {
					t.Errorf("%s holds a plaintext secret: %s", table, row)
				}
			}
		}
		got, err := s.ConnectionCredentials(ctx, c.ID)
		if err != nil || string(got) != secret {
			t.Errorf("ConnectionCredentials = %q, %v", got, err)
		}
		if _, err := s.ConnectionCredentials(ctx, "con_missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ConnectionCredentials(unknown): %v, want ErrNotFound", err)
		}

		// Replaced credentials are sealed too.
		if err := s.UpdateConnectionCredentials(ctx, c.ID, []byte("rotated-PLAINTEXT")); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ConnectionCredentials(ctx, c.ID); err != nil || string(got) != "rotated-PLAINTEXT" {
			t.Errorf("after update: %q, %v", got, err)
		}
		for _, row := range rawRows(t, s, "connections") {
			if strings.Contains(row, "PLAINTEXT") {
				t.Errorf("connections holds a plaintext secret: %s", row)
			}
		}
		if err := s.UpdateConnectionCredentials(ctx, "con_missing", []byte("x")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateConnectionCredentials(unknown): %v, want ErrNotFound", err)
		}

		// An envelope moved to another row does not open there.
		execSQL(t, s, "UPDATE connections SET credentials = (SELECT credentials FROM connections WHERE id = ?) WHERE id = ?", c.ID, d.ID)
		if got, err := s.ConnectionCredentials(ctx, d.ID); err == nil {
			t.Errorf("credentials copied to another connection decrypted: %q", got)
		}

		// Another key cannot read them, and the error does not leak them.
		s.UseSealer(keyring(t, "k2"))
		got, err = s.ConnectionCredentials(ctx, c.ID)
		if err == nil {
			t.Fatalf("decrypted with the wrong key: %q", got)
		}
		if strings.Contains(err.Error(), "PLAINTEXT") {
			t.Errorf("error leaks the secret: %v", err)
		}
		if _, err := s.ConsumeOAuthState(ctx, "n1", time.Now()); err == nil {
			t.Error("OAuth verifier decrypted with the wrong key")
		}
	})
}

func TestRotateSecrets(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "old"))
		var conns []store.Connection
		for i := range 3 {
			conns = append(conns, newConn(t, s, tn.ID, fmt.Sprintf("s%d", i), fmt.Sprintf("secret-%d", i), store.ConsentCalendarReadBusy))
		}
		for i := range 2 {
			if err := s.SaveOAuthState(ctx, store.OAuthState{Nonce: fmt.Sprintf("n%d", i), TenantID: tn.ID, SubjectID: "s0",
				Verifier: fmt.Sprintf("verifier-%d", i), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		// A revoked connection has no credentials left to rotate.
		gone := newConn(t, s, tn.ID, "s9", "secret-9", store.ConsentCalendarReadBusy)
		if _, err := s.BeginRevocation(ctx, tn.ID, gone.ID, store.Revocation{Actor: "cli"}); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRevocation(ctx, gone.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		before := rawRows(t, s, "connections")

		s.UseSealer(keyring(t, "new", "old"))
		var progress []int
		n, err := s.RotateSecrets(ctx, func(done int) { progress = append(progress, done) })
		if err != nil || n != 5 {
			t.Fatalf("RotateSecrets = %d, %v; want 5", n, err)
		}
		if len(progress) == 0 || progress[len(progress)-1] != 5 {
			t.Errorf("progress = %v, want it to end at 5", progress)
		}
		if after := rawRows(t, s, "connections"); slices.Equal(before, after) {
			t.Error("connections unchanged by rotation")
		}
		// Nothing left to do.
		if n, err := s.RotateSecrets(ctx, nil); err != nil || n != 0 {
			t.Errorf("second RotateSecrets = %d, %v; want 0", n, err)
		}

		// Only the new key is needed now.
		s.UseSealer(keyring(t, "new"))
		for i, c := range conns {
			if got, err := s.ConnectionCredentials(ctx, c.ID); err != nil || string(got) != fmt.Sprintf("secret-%d", i) {
				t.Errorf("credentials %d after rotation = %q, %v", i, got, err)
			}
		}
		for i := range 2 {
			st, err := s.ConsumeOAuthState(ctx, fmt.Sprintf("n%d", i), time.Now())
			if err != nil || st.Verifier != fmt.Sprintf("verifier-%d", i) {
				t.Errorf("verifier %d after rotation = %q, %v", i, st.Verifier, err)
			}
		}

		// Without the old key, a stale envelope is an error, not a skip.
		s.UseSealer(keyring(t, "old"))
		newConn(t, s, tn.ID, "s5", "secret-5", store.ConsentCalendarReadBusy)
		s.UseSealer(keyring(t, "newer", "new"))
		if _, err := s.RotateSecrets(ctx, nil); err == nil {
			t.Error("RotateSecrets with an unknown key succeeded")
		}
	})
}

func TestBeginRevocation(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		c := newConn(t, s, tn.ID, "anna", "pw", store.ConsentCalendarReadBusy, store.ConsentCalendarWrite, store.ConsentCalendarReadDetails)
		// Details were refused later on this connection; SMS consent is not
		// about the connection at all.
		time.Sleep(2 * time.Millisecond)
		for _, cn := range []store.Consent{
			{TenantID: tn.ID, SubjectID: "anna", Purpose: store.ConsentCalendarReadDetails, Decision: store.DecisionRefused, ConnectionID: c.ID},
			{TenantID: tn.ID, SubjectID: "anna", Purpose: store.ConsentNotifySMS, Decision: store.DecisionGranted},
		} {
			if _, err := s.RecordConsent(ctx, cn); err != nil {
				t.Fatal(err)
			}
		}
		ledgerBefore, _ := s.ListConsents(ctx, tn.ID, "anna")

		r := store.Revocation{Actor: "api_key:admin", Reason: "admin: user asked", PolicyVersion: "v2",
			SourceIP: "198.51.100.1", UserAgent: "admin-ui"}
		if _, err := s.BeginRevocation(ctx, other.ID, c.ID, r); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("BeginRevocation with another tenant: %v, want ErrNotFound", err)
		}
		start := time.Now().Add(-time.Millisecond)
		got, err := s.BeginRevocation(ctx, tn.ID, c.ID, r)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.ConnRevoking || got.StateReason != r.Reason || got.RevokeRequestedAt.Before(start) || got.EraseOnRevoke {
			t.Errorf("after BeginRevocation: %+v", got)
		}
		if stored, _ := s.GetConnection(ctx, tn.ID, c.ID); stored != got {
			t.Errorf("stored %+v, returned %+v", stored, got)
		}

		ledger, _ := s.ListConsents(ctx, tn.ID, "anna")
		added := ledger[len(ledgerBefore):]
		var purposes []string
		for _, cn := range added {
			purposes = append(purposes, cn.Purpose)
			if cn.Decision != store.DecisionRevoked || cn.ConnectionID != c.ID || cn.Actor != r.Actor ||
				cn.PolicyVersion != "v2" || cn.SourceIP != r.SourceIP || cn.UserAgent != r.UserAgent {
				t.Errorf("revocation ledger entry = %+v", cn)
			}
		}
		slices.Sort(purposes)
		if want := []string{store.ConsentCalendarReadBusy, store.ConsentCalendarWrite}; !slices.Equal(purposes, want) {
			t.Errorf("revoked purposes = %v, want %v", purposes, want)
		}
		for _, p := range []string{store.ConsentCalendarReadBusy, store.ConsentCalendarWrite} {
			if d, _ := s.ConsentDecision(ctx, tn.ID, "anna", p); d != store.DecisionRevoked {
				t.Errorf("ConsentDecision(%s) = %q, want revoked", p, d)
			}
		}
		if d, _ := s.ConsentDecision(ctx, tn.ID, "anna", store.ConsentNotifySMS); d != store.DecisionGranted {
			t.Errorf("SMS consent changed to %q", d)
		}
		audit, _ := s.ListAudit(ctx, tn.ID, "anna")
		last := audit[len(audit)-1]
		if last.Action != "connection.revoke" || last.TargetID != c.ID || last.Actor != r.Actor || last.SourceIP != r.SourceIP {
			t.Errorf("audit entry = %+v", last)
		}

		// Idempotent: nothing new in the ledger or the audit log.
		again, err := s.BeginRevocation(ctx, tn.ID, c.ID, store.Revocation{Actor: "other", Reason: "again"})
		if err != nil || again != got {
			t.Errorf("second BeginRevocation = %+v, %v; want %+v", again, err, got)
		}
		if l, _ := s.ListConsents(ctx, tn.ID, "anna"); len(l) != len(ledger) {
			t.Errorf("ledger grew on a second revocation: %d → %d", len(ledger), len(l))
		}
		if a, _ := s.ListAudit(ctx, tn.ID, "anna"); len(a) != len(audit) {
			t.Errorf("audit grew on a second revocation: %d → %d", len(audit), len(a))
		}

		// From now on nothing uses the connection.
		called := false
		if err := s.CalendarWrite(ctx, c.ID, func(context.Context) error { called = true; return nil }); !errors.Is(err, store.ErrNotActive) || called {
			t.Errorf("CalendarWrite on revoking: %v (fn called %v), want ErrNotActive", err, called)
		}
		if err := s.UpdateConnectionCredentials(ctx, c.ID, []byte("new")); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("UpdateConnectionCredentials on revoking: %v, want ErrNotActive", err)
		}
		if _, err := s.SetConnectionState(ctx, c.ID, store.ConnActive, "", "cli"); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("SetConnectionState on revoking: %v, want ErrNotActive", err)
		}
		ids, err := s.RevokingConnections(ctx, time.Now().Add(time.Second), 10)
		if err != nil || !slices.Equal(ids, []string{c.ID}) {
			t.Errorf("RevokingConnections = %v, %v", ids, err)
		}
		if ids, err := s.RevokingConnections(ctx, start, 10); err != nil || len(ids) != 0 {
			t.Errorf("RevokingConnections(before the revocation) = %v, %v", ids, err)
		}
	})
}

// The fence: a revocation waits for a calendar write in flight, and no
// write starts after it commits.
func TestCalendarWriteFence(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		c := newConn(t, s, tn.ID, "anna", "pw", store.ConsentCalendarWrite)

		inside := make(chan struct{})
		release := make(chan struct{})
		writeDone := make(chan error, 1)
		go func() {
			writeDone <- s.CalendarWrite(ctx, c.ID, func(ctx context.Context) error {
				close(inside)
				<-release
				// fn may update its own connection while a revocation waits.
				return s.UpdateConnectionCredentials(ctx, c.ID, []byte("refreshed"))
			})
		}()
		<-inside

		type result struct {
			c   store.Connection
			err error
		}
		revoked := make(chan result, 1)
		go func() {
			c, err := s.BeginRevocation(ctx, tn.ID, c.ID, store.Revocation{Actor: "cli", Reason: "test"})
			revoked <- result{c, err}
		}()
		select {
		case r := <-revoked:
			t.Fatalf("BeginRevocation returned while a write was in flight: %+v, %v", r.c, r.err)
		case <-time.After(200 * time.Millisecond):
		}
		if got, _ := s.GetConnection(ctx, tn.ID, c.ID); got.State != store.ConnActive {
			t.Fatalf("state %s while the write is in flight", got.State)
		}

		close(release)
		if err := <-writeDone; err != nil {
			t.Fatalf("CalendarWrite: %v", err)
		}
		select {
		case r := <-revoked:
			if r.err != nil || r.c.State != store.ConnRevoking {
				t.Fatalf("BeginRevocation = %+v, %v", r.c, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("BeginRevocation still waiting after the write finished")
		}
		if got, err := s.ConnectionCredentials(ctx, c.ID); err != nil || string(got) != "refreshed" {
			t.Errorf("credentials written inside the fence = %q, %v", got, err)
		}
		called := false
		err := s.CalendarWrite(ctx, c.ID, func(context.Context) error { called = true; return nil })
		if !errors.Is(err, store.ErrNotActive) || called {
			t.Errorf("CalendarWrite after revocation: %v (fn called %v), want ErrNotActive", err, called)
		}
	})
}

func TestCalendarWriteStates(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		c := newConn(t, s, tn.ID, "anna", "pw", store.ConsentCalendarWrite)

		calls := 0
		write := func() error {
			return s.CalendarWrite(ctx, c.ID, func(context.Context) error { calls++; return nil })
		}
		if err := write(); err != nil || calls != 1 {
			t.Fatalf("CalendarWrite on active: %v, calls %d", err, calls)
		}
		boom := errors.New("provider said no")
		if err := s.CalendarWrite(ctx, c.ID, func(context.Context) error { return boom }); err != boom {
			t.Errorf("CalendarWrite returned %v, want fn's error as is", err)
		}
		for _, state := range []string{store.ConnPaused, store.ConnBroken} {
			got, err := s.SetConnectionState(ctx, c.ID, state, "invalid_grant", "system")
			if err != nil || got.State != state || got.StateReason != "invalid_grant" {
				t.Fatalf("SetConnectionState(%s) = %+v, %v", state, got, err)
			}
			if err := write(); !errors.Is(err, store.ErrNotActive) || calls != 1 {
				t.Errorf("CalendarWrite on %s: %v, calls %d; want ErrNotActive", state, err, calls)
			}
		}
		// Credentials can still be replaced on a broken connection (re-authorisation).
		if err := s.UpdateConnectionCredentials(ctx, c.ID, []byte("new")); err != nil {
			t.Errorf("UpdateConnectionCredentials on broken: %v", err)
		}
		if _, err := s.SetConnectionState(ctx, c.ID, store.ConnActive, "", "cli"); err != nil {
			t.Fatal(err)
		}
		if err := write(); err != nil || calls != 2 {
			t.Errorf("CalendarWrite after reactivation: %v, calls %d", err, calls)
		}
		// A restricted subject's calendar is not synced (Art. 18), and is
		// again once the restriction is lifted.
		if err := s.SetSubjectRestricted(ctx, tn.ID, "anna", true); err != nil {
			t.Fatal(err)
		}
		if err := write(); !errors.Is(err, store.ErrRestricted) || calls != 2 {
			t.Errorf("CalendarWrite for a restricted subject: %v, calls %d; want ErrRestricted", err, calls)
		}
		if err := s.SetSubjectRestricted(ctx, tn.ID, "anna", false); err != nil {
			t.Fatal(err)
		}
		if err := write(); err != nil || calls != 3 {
			t.Errorf("CalendarWrite after unrestrict: %v, calls %d", err, calls)
		}
		if _, err := s.SetConnectionState(ctx, c.ID, store.ConnRevoked, "", "cli"); err == nil {
			t.Error("SetConnectionState(revoked) accepted")
		}
		if _, err := s.SetConnectionState(ctx, "con_missing", store.ConnPaused, "", "cli"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetConnectionState(unknown): %v, want ErrNotFound", err)
		}
		if err := s.CalendarWrite(ctx, "con_missing", func(context.Context) error { calls++; return nil }); !errors.Is(err, store.ErrNotFound) || calls != 3 {
			t.Errorf("CalendarWrite(unknown): %v, want ErrNotFound", err)
		}
		audit, _ := s.ListAudit(ctx, tn.ID, "anna")
		var states []string
		for _, e := range audit {
			if e.Action == "connection.state" {
				states = append(states, e.Detail)
			}
		}
		if want := []string{"state=paused", "state=broken", "state=active"}; !slices.Equal(states, want) {
			t.Errorf("state changes audited = %v, want %v", states, want)
		}
	})
}

func TestFinishRevocation(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		c := newConn(t, s, tn.ID, "anna", "pw", store.ConsentCalendarReadBusy)
		keep := newConn(t, s, tn.ID, "anna", "pw2", store.ConsentCalendarReadBusy)
		now := time.Now()
		for _, id := range []string{c.ID, keep.ID} {
			addEvent(t, s, id, "ev1", now)
			addEvent(t, s, id, "ev2", now.Add(time.Hour))
			addLink(t, s, id, "apt1")
		}
		execSQL(t, s, "UPDATE connections SET sync_cursor = 'cursor-1'")

		if err := s.FinishRevocation(ctx, c.ID, now); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("FinishRevocation on active: %v, want ErrConflict", err)
		}
		if _, err := s.BeginRevocation(ctx, tn.ID, c.ID, store.Revocation{Actor: "cli"}); err != nil {
			t.Fatal(err)
		}
		// Cleanup still needs the credentials while revoking.
		if got, err := s.ConnectionCredentials(ctx, c.ID); err != nil || string(got) != "pw" {
			t.Fatalf("credentials while revoking = %q, %v", got, err)
		}
		done := now.Add(time.Minute)
		if err := s.FinishRevocation(ctx, c.ID, done); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetConnection(ctx, tn.ID, c.ID)
		if err != nil || got.State != store.ConnRevoked || !got.RevokedAt.Equal(done.Truncate(time.Millisecond)) || got.SyncCursor != "" {
			t.Errorf("after FinishRevocation: %+v, %v", got, err)
		}
		if _, err := s.ConnectionCredentials(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("credentials after revocation: %v, want ErrNotFound", err)
		}
		if n := count(t, s, "SELECT count(*) FROM connections WHERE id = ? AND credentials = ''", c.ID); n != 1 {
			t.Error("sealed credentials still stored")
		}
		for _, table := range []string{"external_events", "links"} {
			if n := count(t, s, "SELECT count(*) FROM "+table+" WHERE connection_id = ?", c.ID); n != 0 {
				t.Errorf("%s: %d rows of the revoked connection left", table, n)
			}
			if n := count(t, s, "SELECT count(*) FROM "+table+" WHERE connection_id = ?", keep.ID); n == 0 {
				t.Errorf("%s: rows of another connection deleted", table)
			}
		}
		if n := count(t, s, "SELECT count(*) FROM connections WHERE id = ? AND sync_cursor = 'cursor-1'", keep.ID); n != 1 {
			t.Error("another connection's cursor cleared")
		}
		audit, _ := s.ListAudit(ctx, tn.ID, "anna")
		if last := audit[len(audit)-1]; last.Action != "connection.revoked" || last.TargetID != c.ID {
			t.Errorf("last audit entry = %+v", last)
		}
		// The ledger is kept.
		var onC []string
		ledger, _ := s.ListConsents(ctx, tn.ID, "anna")
		for _, cn := range ledger {
			if cn.ConnectionID == c.ID {
				onC = append(onC, cn.Decision)
			}
		}
		if want := []string{store.DecisionGranted, store.DecisionRevoked}; !slices.Equal(onC, want) {
			t.Errorf("ledger of the revoked connection = %v, want %v", onC, want)
		}
		// Idempotent, and revoked stays revoked.
		if err := s.FinishRevocation(ctx, c.ID, done.Add(time.Hour)); err != nil {
			t.Errorf("second FinishRevocation: %v", err)
		}
		if again, _ := s.GetConnection(ctx, tn.ID, c.ID); again != got {
			t.Errorf("second FinishRevocation changed the row: %+v", again)
		}
		if again, err := s.BeginRevocation(ctx, tn.ID, c.ID, store.Revocation{Actor: "cli"}); err != nil || again.State != store.ConnRevoked {
			t.Errorf("BeginRevocation on revoked = %+v, %v", again, err)
		}
		if err := s.FinishRevocation(ctx, "con_missing", done); err != nil {
			t.Errorf("FinishRevocation(unknown): %v, want nil", err)
		}
	})
}

func TestOAuthState(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now()
		st := store.OAuthState{Nonce: "nonce-1", TenantID: tn.ID, SubjectID: "anna", Verifier: "verifier-1",
			Purposes: []string{store.ConsentCalendarReadBusy, store.ConsentCalendarWrite}, Privacy: store.PrivacyDetails,
			Direction: store.DirectionBoth, PolicyVersion: "v3", SourceIP: "203.0.113.9", UserAgent: "ua",
			RedirectAfter: "https://app.example.org/done", Actor: "api_key:k", ExpiresAt: now.Add(10 * time.Minute).Truncate(time.Millisecond)}
		if err := s.SaveOAuthState(ctx, st); !errors.Is(err, store.ErrNoSealer) {
			t.Fatalf("SaveOAuthState without sealer: %v, want ErrNoSealer", err)
		}
		s.UseSealer(keyring(t, "k1"))
		if err := s.SaveOAuthState(ctx, st); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveOAuthState(ctx, st); !errors.Is(err, store.ErrConflict) {
			t.Errorf("SaveOAuthState with a taken nonce: %v, want ErrConflict", err)
		}
		got, err := s.ConsumeOAuthState(ctx, "nonce-1", now)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(st) || !got.ExpiresAt.Equal(st.ExpiresAt) {
			t.Errorf("ConsumeOAuthState = %+v, want %+v", got, st)
		}
		if _, err := s.ConsumeOAuthState(ctx, "nonce-1", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second ConsumeOAuthState: %v, want ErrNotFound", err)
		}
		if _, err := s.ConsumeOAuthState(ctx, "never-saved", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ConsumeOAuthState(unknown): %v, want ErrNotFound", err)
		}

		// Expired: refused and gone.
		old := st
		old.Nonce = "nonce-old"
		old.ExpiresAt = now
		if err := s.SaveOAuthState(ctx, old); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsumeOAuthState(ctx, "nonce-old", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ConsumeOAuthState(expired): %v, want ErrNotFound", err)
		}
		if n := count(t, s, "SELECT count(*) FROM oauth_states WHERE nonce = 'nonce-old'"); n != 0 {
			t.Error("expired state not deleted")
		}

		// Concurrent callbacks with the same state: exactly one wins.
		race := st
		race.Nonce = "nonce-race"
		if err := s.SaveOAuthState(ctx, race); err != nil {
			t.Fatal(err)
		}
		const callers = 8
		var wg sync.WaitGroup
		errs := make([]error, callers)
		start := make(chan struct{})
		for i := range callers {
			wg.Go(func() {
				<-start
				_, errs[i] = s.ConsumeOAuthState(ctx, "nonce-race", now)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("concurrent consume: %v", err)
			}
		}
		if wins != 1 {
			t.Errorf("%d concurrent consumers won, want exactly 1", wins)
		}
	})
}

func TestAuditLogAndPurge(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		if tn.AuditRetention != store.DefaultAuditRetention {
			t.Errorf("new tenant AuditRetention = %v", tn.AuditRetention)
		}
		if got, err := s.GetTenant(ctx, tn.ID); err != nil || got.AuditRetention != 365*24*time.Hour {
			t.Errorf("GetTenant AuditRetention = %v, %v", got.AuditRetention, err)
		}
		if sc, err := s.SendChecks(ctx, tn.ID, "", ""); err != nil || sc.Tenant.AuditRetention != 365*24*time.Hour {
			t.Errorf("SendChecks tenant AuditRetention = %v, %v", sc.Tenant.AuditRetention, err)
		}
		if _, err := s.Audit(ctx, store.AuditEntry{TenantID: "tnt_missing", Action: "x"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Audit for an unknown tenant: %v, want ErrNotFound", err)
		}
		if _, err := s.Audit(ctx, store.AuditEntry{TenantID: tn.ID}); err == nil {
			t.Error("Audit without action accepted")
		}

		before := time.Now().Add(-time.Millisecond)
		var entries []store.AuditEntry
		for i := range 12 {
			tenant, subject := tn.ID, "anna"
			if i%4 == 3 {
				subject = "ben"
			}
			if i == 11 {
				tenant = other.ID
			}
			e, err := s.Audit(ctx, store.AuditEntry{TenantID: tenant, Actor: "cli", Action: "subject.export",
				TargetKind: "subject", TargetID: subject, SubjectID: subject, SourceIP: "192.0.2.1", Detail: fmt.Sprint(i)})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(e.ID, "aud_") || e.CreatedAt.Before(before) || !e.ExpiresAt.Equal(e.CreatedAt.Add(store.DefaultAuditRetention)) {
				t.Fatalf("Audit = %+v", e)
			}
			entries = append(entries, e)
		}
		annas, err := s.ListAudit(ctx, tn.ID, "anna")
		if err != nil || len(annas) != 9 || annas[0] != entries[0] {
			t.Errorf("ListAudit(anna) = %d entries, %v; first %+v", len(annas), err, annas)
		}
		if all, _ := s.ListAudit(ctx, tn.ID, ""); len(all) != 11 {
			t.Errorf("ListAudit(tenant) = %d entries, want 11", len(all))
		}

		// Expire the first seven; they go in batches of 3, the rest stays.
		now := time.Now()
		for _, e := range entries[:7] {
			execSQL(t, s, "UPDATE audit SET expires_at = ? WHERE id = ?", now.Add(-time.Minute).UnixMilli(), e.ID)
		}
		execSQL(t, s, "UPDATE audit SET expires_at = ? WHERE id = ?", now.Add(time.Millisecond).UnixMilli(), entries[7].ID)
		s.UseSealer(keyring(t, "k1"))
		for i, exp := range []time.Time{now.Add(-time.Second), now, now.Add(time.Hour)} {
			if err := s.SaveOAuthState(ctx, store.OAuthState{Nonce: fmt.Sprint("n", i), TenantID: tn.ID, SubjectID: "anna",
				Verifier: "v", ExpiresAt: exp}); err != nil {
				t.Fatal(err)
			}
		}
		dry, err := s.PurgeExpired(ctx, now, 3, true)
		if err != nil || dry.Audit != 7 || dry.OAuthStates != 2 || count(t, s, "SELECT count(*) FROM audit") != 12 {
			t.Errorf("dry run = %+v, %v", dry, err)
		}
		rep, err := s.PurgeExpired(ctx, now, 3, false)
		if err != nil || rep.Audit != 7 || rep.OAuthStates != 2 {
			t.Fatalf("PurgeExpired = %+v, %v; want 7 audit entries and 2 OAuth states", rep, err)
		}
		var left []string
		for _, e := range append(mustAudit(t, s, tn.ID), mustAudit(t, s, other.ID)...) {
			left = append(left, e.ID)
		}
		var want []string
		for _, e := range entries[7:] {
			want = append(want, e.ID)
		}
		slices.Sort(left)
		slices.Sort(want)
		if !slices.Equal(left, want) {
			t.Errorf("audit left after purge = %v, want %v", left, want)
		}
		if n := count(t, s, "SELECT count(*) FROM oauth_states"); n != 1 {
			t.Errorf("%d OAuth states left, want 1", n)
		}
		if rep, err := s.PurgeExpired(ctx, now, 3, false); err != nil || rep.Audit != 0 || rep.OAuthStates != 0 {
			t.Errorf("second purge = %+v, %v", rep, err)
		}
	})
}

func mustAudit(t *testing.T, s *store.Store, tenantID string) []store.AuditEntry {
	t.Helper()
	out, err := s.ListAudit(testCtx(t), tenantID, "")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setUpPerson stores one of everything about a subject: consents, a
// restriction, notifications, an appointment of their own with a
// notification planned for it (addressed without a subject id), an active
// connection with imported events and links, a revoked and a revoking
// connection, audit entries and a pending OAuth state.
func setUpPerson(t *testing.T, s *store.Store, tenantID, subject, recipient string) (active, revoked, revoking store.Connection) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tenantID, SubjectID: subject, Purpose: store.ConsentNotifySMS,
		Decision: store.DecisionGranted, Actor: "api_key:k1", SourceIP: "203.0.113.7"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubjectRestricted(ctx, tenantID, subject, true); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		n := item(tenantID, fmt.Sprintf("%s-%d", subject, i), time.Now())
		n.SubjectID, n.Recipient = subject, recipient
		create(t, s, n)
	}
	start := time.Now().Add(72 * time.Hour)
	if _, err := s.UpsertAppointment(ctx, store.Appointment{TenantID: tenantID, ID: "apt-" + subject, SubjectIDs: []string{subject},
		Start: start, End: start.Add(time.Hour), TimeZone: "Europe/Berlin", Title: "Termin " + subject,
		Location: "Praxis", Description: "for " + recipient}); err != nil {
		t.Fatal(err)
	}
	planned := item(tenantID, "reminder-"+subject, start.Add(-24*time.Hour))
	planned.SubjectID, planned.AppointmentID, planned.Recipient, planned.Purpose = "", "apt-"+subject, recipient, store.PurposeReminder
	create(t, s, planned)
	active = newConn(t, s, tenantID, subject, "pw-"+subject, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)
	addEvent(t, s, active.ID, "ev-"+subject, time.Now())
	addLink(t, s, active.ID, "apt-"+subject)
	revoked = newConn(t, s, tenantID, subject, "pw2-"+subject, store.ConsentCalendarReadBusy)
	revoking = newConn(t, s, tenantID, subject, "pw3-"+subject, store.ConsentCalendarReadBusy)
	addEvent(t, s, revoking.ID, "ev3-"+subject, time.Now())
	for _, c := range []store.Connection{revoked, revoking} {
		if _, err := s.BeginRevocation(ctx, tenantID, c.ID, store.Revocation{Actor: "cli", Reason: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FinishRevocation(ctx, revoked.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Audit(ctx, store.AuditEntry{TenantID: tenantID, Actor: "cli", Action: "subject.export",
		TargetKind: "subject", TargetID: subject, SubjectID: subject}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveOAuthState(ctx, store.OAuthState{Nonce: "nonce-" + subject, TenantID: tenantID, SubjectID: subject,
		Verifier: "v", SourceIP: "203.0.113.7", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return active, revoked, revoking
}

var personalTables = []string{"subjects", "consents", "notifications", "connections", "external_events", "links", "audit",
	"oauth_states", "appointments", "appointment_subjects"}

// shareAppointment stores an appointment that two subjects take part in.
func shareAppointment(t *testing.T, s *store.Store, tenantID, id string, subjects ...string) {
	t.Helper()
	start := time.Now().Add(96 * time.Hour)
	if _, err := s.UpsertAppointment(testCtx(t), store.Appointment{TenantID: tenantID, ID: id, SubjectIDs: subjects,
		Start: start, End: start.Add(time.Hour), TimeZone: "Europe/Berlin", Title: "Couples session"}); err != nil {
		t.Fatal(err)
	}
}

func TestExportSubject(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		active, revoked, revoking := setUpPerson(t, s, tn.ID, "subj-anna", "anna@example.org")
		setUpPerson(t, s, tn.ID, "subj-ben", "ben@example.org")
		shareAppointment(t, s, tn.ID, "apt-shared", "subj-anna", "subj-ben")

		x, err := s.ExportSubject(ctx, tn.ID, "subj-anna")
		if err != nil {
			t.Fatal(err)
		}
		if x.Subject.ID != "subj-anna" || x.Subject.TenantID != tn.ID || !x.Subject.Restricted || x.Subject.CreatedAt.IsZero() {
			t.Errorf("Subject = %+v", x.Subject)
		}
		ledger, _ := s.ListConsents(ctx, tn.ID, "subj-anna")
		if len(x.Consents) != len(ledger) || len(ledger) < 4 {
			t.Errorf("Consents: %d exported, %d in the ledger", len(x.Consents), len(ledger))
		}
		var conns []string
		for _, c := range x.Connections {
			conns = append(conns, c.ID)
		}
		if want := []string{active.ID, revoked.ID, revoking.ID}; !slices.Equal(conns, want) {
			t.Errorf("Connections = %v, want %v", conns, want)
		}
		if len(x.Notifications) != 2 {
			t.Errorf("%d notifications exported, want 2", len(x.Notifications))
		}
		for _, n := range x.Notifications {
			if n.SubjectID != "subj-anna" || n.Recipient != "anna@example.org" || n.Template != "confirmation" || len(n.Data) == 0 {
				t.Errorf("exported notification = %+v", n)
			}
		}
		var appts []string
		for _, a := range x.Appointments {
			appts = append(appts, a.ID)
			// Who else takes part is not the requester's data.
			if !slices.Equal(a.SubjectIDs, []string{"subj-anna"}) || a.Title == "" || a.Version != 1 || !a.End.After(a.Start) {
				t.Errorf("exported appointment = %+v", a)
			}
		}
		if want := []string{"apt-subj-anna", "apt-shared"}; !slices.Equal(appts, want) {
			t.Errorf("Appointments = %v, want %v", appts, want)
		}
		var uids []string
		for _, e := range x.ExternalEvents {
			uids = append(uids, e.UID)
			if e.Title == "" || e.TimeZone != "Europe/Berlin" || !e.End.After(e.Start) {
				t.Errorf("exported event = %+v", e)
			}
		}
		slices.Sort(uids)
		if want := []string{"ev-subj-anna", "ev3-subj-anna"}; !slices.Equal(uids, want) {
			t.Errorf("ExternalEvents = %v, want %v", uids, want)
		}
		audit, _ := s.ListAudit(ctx, tn.ID, "subj-anna")
		if len(x.Audit) != len(audit) || len(audit) < 5 {
			t.Errorf("Audit: %d exported, %d stored", len(x.Audit), len(audit))
		}
		for _, e := range x.Audit {
			if e.SubjectID != "subj-anna" {
				t.Errorf("exported someone else's audit entry: %+v", e)
			}
		}

		if _, err := s.ExportSubject(ctx, tn.ID, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ExportSubject(unknown): %v, want ErrNotFound", err)
		}
		if _, err := s.ExportSubject(ctx, other.ID, "subj-anna"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ExportSubject(another tenant): %v, want ErrNotFound", err)
		}
		// A subject known only from an appointment is exported too.
		shareAppointment(t, s, tn.ID, "apt-dora", "subj-dora")
		execSQL(t, s, "DELETE FROM subjects WHERE id = 'subj-dora'")
		if x, err := s.ExportSubject(ctx, tn.ID, "subj-dora"); err != nil || len(x.Appointments) != 1 {
			t.Errorf("ExportSubject(appointment only) = %d appointments, %v", len(x.Appointments), err)
		}
		// A subject known only from a notification is exported too.
		n := item(tn.ID, "only-mail", time.Now())
		n.SubjectID = "subj-carl"
		create(t, s, n)
		execSQL(t, s, "DELETE FROM subjects WHERE id = 'subj-carl'")
		if x, err := s.ExportSubject(ctx, tn.ID, "subj-carl"); err != nil || len(x.Notifications) != 1 {
			t.Errorf("ExportSubject(notification only) = %d notifications, %v", len(x.Notifications), err)
		}
	})
}

func TestEraseSubject(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		const subject, recipient = "subj-7f3a-anna", "anna.erase@example.org"
		active, revoked, revoking := setUpPerson(t, s, tn.ID, subject, recipient)
		benActive, _, _ := setUpPerson(t, s, tn.ID, "subj-ben", "ben@example.org")
		shareAppointment(t, s, tn.ID, "apt-shared", subject, "subj-ben")
		benBefore := map[string]int{}
		for _, table := range personalTables {
			for _, row := range rawRows(t, s, table) {
				if strings.Contains(row, "subj-ben") || strings.Contains(row, benActive.ID) {
					benBefore[table]++
				}
			}
		}

		rep, err := s.EraseSubject(ctx, tn.ID, subject, "api_key:admin", "198.51.100.1")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(rep.Revoking)
		want := []string{active.ID, revoking.ID}
		slices.Sort(want)
		if !slices.Equal(rep.Revoking, want) {
			t.Errorf("Revoking = %v, want %v", rep.Revoking, want)
		}
		if rep.Rows < 10 {
			t.Errorf("Rows = %d, want every personal row counted", rep.Rows)
		}
		// The connections are being revoked and will go with their revocation.
		for _, id := range rep.Revoking {
			c, err := s.GetConnectionByID(ctx, id)
			if err != nil || c.State != store.ConnRevoking || !c.EraseOnRevoke {
				t.Errorf("connection after erasure: %+v, %v", c, err)
			}
			called := false
			if err := s.CalendarWrite(ctx, id, func(context.Context) error { called = true; return nil }); !errors.Is(err, store.ErrNotActive) || called {
				t.Errorf("CalendarWrite after erasure: %v", err)
			}
		}
		if _, err := s.GetConnectionByID(ctx, revoked.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoked connection still stored: %v", err)
		}
		if n := count(t, s, "SELECT count(*) FROM external_events WHERE connection_id IN (?, ?)", active.ID, revoking.ID); n != 0 {
			t.Errorf("%d imported events left after erasure", n)
		}
		// Links stay until the revocation has removed our copies.
		if n := count(t, s, "SELECT count(*) FROM links WHERE connection_id = ?", active.ID); n != 1 {
			t.Errorf("%d links of a revoking connection, want 1 until the revocation finishes", n)
		}
		if _, err := s.GetSubject(ctx, tn.ID, subject); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("subject row after erasure: %v", err)
		}
		// Their own appointment is gone with what was planned for it; the
		// shared one stays for the other subject.
		if _, err := s.GetAppointment(ctx, tn.ID, "apt-"+subject); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("appointment of the erased subject: %v", err)
		}
		if n := count(t, s, "SELECT count(*) FROM notifications WHERE appointment_id = ?", "apt-"+subject); n != 0 {
			t.Errorf("%d notifications planned for the erased appointment left", n)
		}
		if a, err := s.GetAppointment(ctx, tn.ID, "apt-shared"); err != nil || !slices.Equal(a.SubjectIDs, []string{"subj-ben"}) {
			t.Errorf("shared appointment after erasure = %+v, %v", a, err)
		}
		if a, err := s.GetAppointment(ctx, tn.ID, "apt-subj-ben"); err != nil || len(a.SubjectIDs) != 1 {
			t.Errorf("another subject's appointment after erasure = %+v, %v", a, err)
		}
		if n := count(t, s, "SELECT count(*) FROM notifications WHERE appointment_id = 'apt-subj-ben'"); n != 1 {
			t.Errorf("another subject's planned notifications: %d, want 1", n)
		}

		for _, id := range rep.Revoking {
			if err := s.FinishRevocation(ctx, id, time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishRevocation(ctx, id, time.Now()); err != nil {
				t.Errorf("FinishRevocation after the row is gone: %v", err)
			}
		}

		// Table by table: nothing about the person is left.
		for _, table := range personalTables {
			benAfter := 0
			for _, row := range rawRows(t, s, table) {
				for _, needle := range []string{subject, recipient, active.ID + " ", revoked.ID + " ", revoking.ID + " "} {
					// The one trace of a finished revocation names the
					// connection, which nothing else refers to any more.
					if strings.Contains(row+" ", needle) && !strings.Contains(row, "action=connection.revoked ") {
						t.Errorf("%s still holds %q: %s", table, needle, row)
					}
				}
				if strings.Contains(row, subject) || strings.Contains(row, recipient) {
					t.Errorf("%s still holds the person: %s", table, row)
				}
				if strings.Contains(row, "subj-ben") || strings.Contains(row, benActive.ID) {
					benAfter++
				}
			}
			if benAfter != benBefore[table] {
				t.Errorf("%s: another subject's rows changed from %d to %d", table, benBefore[table], benAfter)
			}
		}
		var traces []store.AuditEntry
		for _, e := range mustAudit(t, s, tn.ID) {
			if e.Action == "subject.erase" {
				traces = append(traces, e)
			}
		}
		if len(traces) != 1 {
			t.Fatalf("%d subject.erase entries, want 1", len(traces))
		}
		tr := traces[0]
		if tr.SubjectID != "" || tr.TargetID != "" || tr.TargetKind != "subject" || tr.Actor != "api_key:admin" ||
			tr.Detail != fmt.Sprintf("rows=%d connections=3", rep.Rows) {
			t.Errorf("erasure trace = %+v", tr)
		}
		if _, err := s.ExportSubject(ctx, tn.ID, subject); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ExportSubject after erasure: %v, want ErrNotFound", err)
		}
		if x, err := s.ExportSubject(ctx, tn.ID, "subj-ben"); err != nil || len(x.Connections) != 3 || len(x.Notifications) != 2 ||
			len(x.Appointments) != 2 {
			t.Errorf("another subject's export after erasure: %v", err)
		}

		// Erasing again finds nothing and says so, without failing.
		again, err := s.EraseSubject(ctx, tn.ID, subject, "api_key:admin", "")
		if err != nil || again.Rows != 0 || len(again.Revoking) != 0 {
			t.Errorf("second EraseSubject = %+v, %v", again, err)
		}
		if _, err := s.EraseSubject(ctx, "tnt_missing", subject, "cli", ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("EraseSubject for an unknown tenant: %v, want ErrNotFound", err)
		}
	})
}

// Erasure fences the subject's connections like BeginRevocation does.
func TestEraseSubjectWaitsForCalendarWrite(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		c := newConn(t, s, tn.ID, "anna", "pw", store.ConsentCalendarWrite)
		inside, release := make(chan struct{}), make(chan struct{})
		writeDone := make(chan error, 1)
		go func() {
			writeDone <- s.CalendarWrite(ctx, c.ID, func(context.Context) error { close(inside); <-release; return nil })
		}()
		<-inside
		erased := make(chan error, 1)
		go func() {
			_, err := s.EraseSubject(ctx, tn.ID, "anna", "cli", "")
			erased <- err
		}()
		select {
		case err := <-erased:
			t.Fatalf("EraseSubject returned while a write was in flight: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := s.GetSubject(ctx, tn.ID, "anna"); err != nil {
			t.Fatalf("subject erased while a write was in flight: %v", err)
		}
		close(release)
		if err := <-writeDone; err != nil {
			t.Fatal(err)
		}
		if err := <-erased; err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetConnectionByID(ctx, c.ID); err != nil || got.State != store.ConnRevoking {
			t.Errorf("after erasure: %+v, %v", got, err)
		}
	})
}

// TestManyConcurrentCalendarWrites: more syncs at once than the pool has
// connections, each reading the store inside its fence (as a pull does),
// all finish — none waits forever for a connection held by another fence.
func TestManyConcurrentCalendarWrites(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Second)
		defer cancel()
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		var conns []store.Connection
		for i := range 8 {
			conns = append(conns, newConn(t, s, tn.ID, fmt.Sprintf("subject-%d", i), "pw", store.ConsentCalendarWrite))
		}
		const writers = 40
		errs := make(chan error, writers)
		for i := range writers {
			c := conns[i%len(conns)]
			go func() {
				errs <- s.CalendarWrite(ctx, c.ID, func(ctx context.Context) error {
					time.Sleep(20 * time.Millisecond) // a remote round trip
					_, err := s.GetConnectionByID(ctx, c.ID)
					if err == nil {
						_, err = s.ListLinks(ctx, c.ID, store.LinkEvent)
					}
					return err
				})
			}()
		}
		for range writers {
			if err := <-errs; err != nil {
				t.Fatalf("calendar write: %v", err)
			}
		}
	})
}

// TestCalendarWriteFenceAcrossHandles: two stores on one SQLite file
// behave like the daemon and a CLI command in another process — a
// revocation through one waits for a calendar write in flight through the
// other.
func TestCalendarWriteFenceAcrossHandles(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	url := storetest.URL(t, "sqlite")
	daemon := storetest.Open(t, url)
	if err := daemon.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cli := storetest.Open(t, url)
	daemon.UseSealer(keyring(t, "k1"))
	cli.UseSealer(keyring(t, "k1"))
	tn, _ := storetest.NewTenant(t, daemon)
	c := newConn(t, daemon, tn.ID, "anna", "pw", store.ConsentCalendarWrite)

	inside, release := make(chan struct{}), make(chan struct{})
	writeDone := make(chan error, 1)
	go func() {
		writeDone <- daemon.CalendarWrite(ctx, c.ID, func(context.Context) error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	revoked := make(chan error, 1)
	go func() {
		_, err := cli.BeginRevocation(ctx, tn.ID, c.ID, store.Revocation{Actor: "cli", Reason: "test"})
		revoked <- err
	}()
	select {
	case err := <-revoked:
		t.Fatalf("revocation through the other handle returned while a write was in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-revoked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("revocation still waiting after the write finished")
	}
	if err := daemon.CalendarWrite(ctx, c.ID, func(context.Context) error { return nil }); !errors.Is(err, store.ErrNotActive) {
		t.Errorf("write after the revocation: %v, want ErrNotActive", err)
	}
}
