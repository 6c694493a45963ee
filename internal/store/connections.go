package store

// Connections: external calendars of a subject, their sealed credentials,
// revocation and the calendar write fence. The audit log is in audit.go,
// OAuth states in oauth.go, export and erasure in subjectrights.go, sealing
// and key rotation in seal.go.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrNotActive: a calendar read or write was refused because the connection
// is not active (revoking, revoked, paused or broken).
var ErrNotActive = errors.New("connection not active")

// ErrNotImporting: events were offered for a connection whose direction
// does not include import (export-only: consented for writing only).
var ErrNotImporting = errors.New("connection does not import")

// ErrRestricted: a calendar read or write was refused because the
// connection's subject has restricted processing (GDPR Art. 18).
var ErrRestricted = errors.New("subject restricted")

// Connection providers, states, privacy levels and directions.
const (
	ProviderGoogle = "google"
	ProviderCalDAV = "caldav"

	ConnActive   = "active"
	ConnPaused   = "paused"
	ConnBroken   = "broken"
	ConnRevoking = "revoking"
	ConnRevoked  = "revoked"

	PrivacyBusy    = "busy"
	PrivacyDetails = "details"
	PrivacyFull    = "full"

	DirectionImport = "import"
	DirectionExport = "export"
	DirectionBoth   = "both"
)

// ReasonErasure is the StateReason of a connection revoked by EraseSubject.
const ReasonErasure = "subject erased"

// Connection is one external calendar of a subject. Its credentials are
// never part of this struct: they are sealed at rest and read only through
// ConnectionCredentials.
type Connection struct {
	ID           string
	TenantID     string
	SubjectID    string
	Provider     string
	CalendarURL  string // CalDAV collection URL, or the Google calendar id
	CalendarName string
	Privacy      string
	Direction    string
	State        string
	StateReason  string // why broken/paused/revoking ("invalid_grant", "admin: <reason>", …)
	SyncCursor   string // provider sync token; cleared on revocation
	// KeepCopiesOnRevoke leaves our copies in the external calendar when the
	// connection is revoked (default false: they are removed).
	KeepCopiesOnRevoke bool
	// EraseOnRevoke is set by subject erasure: when the revocation finishes,
	// the connection row itself is deleted.
	EraseOnRevoke     bool
	LastSyncAt        time.Time
	LastError         string
	CreatedAt         time.Time
	UpdatedAt         time.Time
	RevokeRequestedAt time.Time
	RevokedAt         time.Time
	// PausedUntil is when a connection the system paused (Google quota
	// used up) resumes by itself; zero for other states and manual pauses.
	PausedUntil time.Time
	// Blocking writes a detail-free blocker into this calendar for the
	// subject's busy time in their other calendars (see blocking.go).
	Blocking bool
}

const connCols = `id, tenant_id, subject_id, provider, calendar_url, calendar_name, privacy, direction,
	state, state_reason, sync_cursor, keep_copies_on_revoke, erase_on_revoke, last_sync_at, last_error,
	created_at, updated_at, revoke_requested_at, revoked_at, paused_until, blocking`

// liveStates are the states a connection can still be used or revoked from.
const liveStates = "('active', 'paused', 'broken')"

func scanConnection(r rowScanner) (Connection, error) {
	var c Connection
	var lastSync, created, updated, revokeRequested, revoked, pausedUntil int64
	if err := r.Scan(&c.ID, &c.TenantID, &c.SubjectID, &c.Provider, &c.CalendarURL, &c.CalendarName, &c.Privacy,
		&c.Direction, &c.State, &c.StateReason, &c.SyncCursor, &c.KeepCopiesOnRevoke, &c.EraseOnRevoke,
		&lastSync, &c.LastError, &created, &updated, &revokeRequested, &revoked, &pausedUntil, &c.Blocking); err != nil {
		return Connection{}, err
	}
	c.LastSyncAt, c.CreatedAt, c.UpdatedAt = fromMS(lastSync), fromMS(created), fromMS(updated)
	c.RevokeRequestedAt, c.RevokedAt = fromMS(revokeRequested), fromMS(revoked)
	c.PausedUntil = fromMS(pausedUntil)
	return c, nil
}

// queryConnections lists the connections matching where, oldest first;
// lock appends FOR UPDATE on PostgreSQL.
func (s *Store) queryConnections(ctx context.Context, q querier, where string, lock bool, args ...any) ([]Connection, error) {
	query := "SELECT " + connCols + " FROM connections WHERE " + where + " ORDER BY created_at, id"
	if lock {
		query += s.forUpdate()
	}
	return queryAll(ctx, q, scanConnection, s.rebind(query), args...)
}

func checkConnection(c Connection) error {
	switch {
	case c.TenantID == "" || c.SubjectID == "":
		return errors.New("tenant and subject are required")
	case c.Provider != ProviderGoogle && c.Provider != ProviderCalDAV:
		return fmt.Errorf("unknown provider %q", c.Provider)
	case c.Privacy != PrivacyBusy && c.Privacy != PrivacyDetails && c.Privacy != PrivacyFull:
		return fmt.Errorf("unknown privacy level %q", c.Privacy)
	case c.Direction != DirectionImport && c.Direction != DirectionExport && c.Direction != DirectionBoth:
		return fmt.Errorf("unknown direction %q", c.Direction)
	}
	return nil
}

// CreateConnection stores a new active connection, its sealed credentials
// (associated data: the connection id), the consent decisions that allow it
// (their ConnectionID is set) and an audit entry — in one transaction.
// Returns the stored connection with ID and times set.
//
// Consents without TenantID or SubjectID get the connection's; other values
// are an error. The audit entry's target is the connection; its Action
// defaults to "connection.create".
func (s *Store) CreateConnection(ctx context.Context, c Connection, credentials []byte, consents []Consent, audit AuditEntry) (Connection, error) {
	if err := checkConnection(c); err != nil {
		return Connection{}, fmt.Errorf("create connection: %w", err)
	}
	sealer, err := s.currentSealer()
	if err != nil {
		return Connection{}, fmt.Errorf("create connection: %w", err)
	}
	now := truncMS(time.Now())
	c.ID = newID("con_")
	c.State, c.StateReason, c.SyncCursor, c.LastError = ConnActive, "", "", ""
	c.EraseOnRevoke = false
	c.LastSyncAt, c.RevokeRequestedAt, c.RevokedAt = time.Time{}, time.Time{}, time.Time{}
	c.CreatedAt, c.UpdatedAt = now, now
	sealed, err := sealer.Encrypt(credentials, connectionAAD(c.ID))
	if err != nil {
		return Connection{}, fmt.Errorf("create connection: seal credentials: %w", err)
	}
	ledger := slices.Clone(consents)
	for i := range ledger {
		cn := &ledger[i]
		if cn.TenantID == "" {
			cn.TenantID = c.TenantID
		}
		if cn.SubjectID == "" {
			cn.SubjectID = c.SubjectID
		}
		if cn.TenantID != c.TenantID || cn.SubjectID != c.SubjectID {
			return Connection{}, fmt.Errorf("create connection: consent %d is not about the connection's subject", i)
		}
		if err := checkConsent(*cn); err != nil {
			return Connection{}, fmt.Errorf("create connection: consent %d: %w", i, err)
		}
		cn.ConnectionID = c.ID
		if cn.CreatedAt.IsZero() {
			cn.CreatedAt = now
		}
	}
	audit.TenantID, audit.TargetKind, audit.TargetID, audit.SubjectID = c.TenantID, "connection", c.ID, c.SubjectID
	if audit.Action == "" {
		audit.Action = "connection.create"
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.ensureSubject(ctx, tx, c.TenantID, c.SubjectID, ms(now)); err != nil {
			return fmt.Errorf("subject: %w", err)
		}
		_, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO connections (id, tenant_id, subject_id, provider,
			calendar_url, calendar_name, privacy, direction, credentials, state, keep_copies_on_revoke,
			created_at, updated_at, blocking) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			c.ID, c.TenantID, c.SubjectID, c.Provider, c.CalendarURL, c.CalendarName, c.Privacy, c.Direction,
			sealed, c.State, c.KeepCopiesOnRevoke, ms(now), ms(now), c.Blocking)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		for i := range ledger {
			if err := s.insertConsent(ctx, tx, &ledger[i]); err != nil {
				return fmt.Errorf("consent %d: %w", i, err)
			}
		}
		if err := s.insertAudit(ctx, tx, &audit, now); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	})
	if err != nil {
		return Connection{}, fmt.Errorf("create connection: %w", err)
	}
	return c, nil
}

// GetConnection returns ErrNotFound for an unknown id or another tenant's.
func (s *Store) GetConnection(ctx context.Context, tenantID, id string) (Connection, error) {
	c, err := scanConnection(s.read.QueryRowContext(ctx,
		s.rebind("SELECT "+connCols+" FROM connections WHERE tenant_id = ? AND id = ?"), tenantID, id))
	if err != nil {
		return Connection{}, fmt.Errorf("get connection: %w", notFound(err))
	}
	return c, nil
}

// GetConnectionByID loads a connection for a worker (no tenant scope).
func (s *Store) GetConnectionByID(ctx context.Context, id string) (Connection, error) {
	c, err := scanConnection(s.read.QueryRowContext(ctx,
		s.rebind("SELECT "+connCols+" FROM connections WHERE id = ?"), id))
	if err != nil {
		return Connection{}, fmt.Errorf("get connection: %w", notFound(err))
	}
	return c, nil
}

// ListConnections lists a tenant's connections, of one subject when
// subjectID is not "", oldest first.
func (s *Store) ListConnections(ctx context.Context, tenantID, subjectID string) ([]Connection, error) {
	where, args := "tenant_id = ?", []any{tenantID}
	if subjectID != "" {
		where, args = where+" AND subject_id = ?", append(args, subjectID)
	}
	out, err := s.queryConnections(ctx, s.read, where, false, args...)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return out, nil
}

// ConnectionCredentials decrypts a connection's credentials. A revoked
// connection has none: ErrNotFound.
func (s *Store) ConnectionCredentials(ctx context.Context, id string) ([]byte, error) {
	var sealed string
	err := s.read.QueryRowContext(ctx, s.rebind("SELECT credentials FROM connections WHERE id = ?"), id).Scan(&sealed)
	if err != nil {
		return nil, fmt.Errorf("connection credentials: %w", notFound(err))
	}
	if sealed == "" {
		return nil, fmt.Errorf("connection credentials: %w", ErrNotFound)
	}
	sealer, err := s.currentSealer()
	if err != nil {
		return nil, fmt.Errorf("connection credentials: %w", err)
	}
	plain, err := sealer.Decrypt(sealed, connectionAAD(id))
	if err != nil {
		return nil, fmt.Errorf("connection credentials: %w", err)
	}
	return plain, nil
}

// UpdateConnectionCredentials replaces the sealed credentials (a rotated
// OAuth refresh token). ErrNotActive unless active/paused/broken.
// It may be called inside CalendarWrite's fn.
func (s *Store) UpdateConnectionCredentials(ctx context.Context, id string, credentials []byte) error {
	sealer, err := s.currentSealer()
	if err != nil {
		return fmt.Errorf("update connection credentials: %w", err)
	}
	sealed, err := sealer.Encrypt(credentials, connectionAAD(id))
	if err != nil {
		return fmt.Errorf("update connection credentials: seal: %w", err)
	}
	res, err := s.db.ExecContext(ctx, s.rebind("UPDATE connections SET credentials = ?, updated_at = ? WHERE id = ? AND state IN "+liveStates),
		sealed, time.Now().UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("update connection credentials: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("update connection credentials: %w", s.whyNotLive(ctx, s.db, id))
	}
	return nil
}

// whyNotLive tells ErrNotFound from ErrNotActive after a conditional
// update of a connection matched no row.
func (s *Store) whyNotLive(ctx context.Context, q querier, id string) error {
	var state string
	err := q.QueryRowContext(ctx, s.rebind("SELECT state FROM connections WHERE id = ?"), id).Scan(&state)
	if err != nil {
		return notFound(err)
	}
	return ErrNotActive
}

// SetConnectionState moves an active/paused/broken connection to state
// (active, paused or broken) with a reason, audited as actor. A revoking or
// revoked connection is never moved back: ErrNotActive.
// It may be called inside CalendarWrite's fn.
func (s *Store) SetConnectionState(ctx context.Context, id, state, reason, actor string) (Connection, error) {
	if state != ConnActive && state != ConnPaused && state != ConnBroken {
		return Connection{}, fmt.Errorf("set connection state: %q is not active, paused or broken", state)
	}
	if actor == "" {
		actor = "system"
	}
	now := time.Now()
	var c Connection
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// A conditional update rather than SELECT … FOR UPDATE: it must not
		// wait for a CalendarWrite of the same connection (see there).
		var err error
		// broken_since keeps the start of a broken spell: the retention
		// purge revokes connections broken for too long.
		c, err = scanConnection(tx.QueryRowContext(ctx, s.rebind(`UPDATE connections
			SET state = ?, state_reason = ?, updated_at = ?, paused_until = 0,
				broken_since = CASE WHEN ? <> 'broken' THEN 0 WHEN state = 'broken' AND broken_since > 0 THEN broken_since ELSE ? END
			WHERE id = ? AND state IN `+liveStates+`
			RETURNING `+connCols), state, reason, ms(now), state, ms(now), id))
		if errors.Is(err, sql.ErrNoRows) {
			return s.whyNotLive(ctx, tx, id)
		}
		if err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, &AuditEntry{TenantID: c.TenantID, Actor: actor, Action: "connection.state",
			TargetKind: "connection", TargetID: c.ID, SubjectID: c.SubjectID, Detail: "state=" + state}, now)
	})
	if err != nil {
		return Connection{}, fmt.Errorf("set connection state: %w", err)
	}
	return c, nil
}

// Revocation says who revokes a connection and why.
type Revocation struct {
	Actor         string
	Reason        string
	PolicyVersion string
	SourceIP      string
	UserAgent     string
}

// BeginRevocation is the commit after which no worker reads or writes the
// calendar: in one transaction the connection becomes revoking, the ledger
// gets a "revoked" decision for every purpose granted on it, and the audit
// log an entry. It waits for calendar writes in flight (CalendarWrite) to
// finish first. Revoking a revoking or revoked connection returns it
// unchanged (idempotent).
func (s *Store) BeginRevocation(ctx context.Context, tenantID, id string, r Revocation) (Connection, error) {
	release := s.fenceExclusive([]string{id})
	defer release()
	var c Connection
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.pgFence(ctx, tx, id, true); err != nil {
			return err
		}
		var err error
		c, err = scanConnection(tx.QueryRowContext(ctx, s.rebind(
			"SELECT "+connCols+" FROM connections WHERE tenant_id = ? AND id = ?"+s.forUpdate()), tenantID, id))
		if err != nil {
			return notFound(err)
		}
		if c.State == ConnRevoking || c.State == ConnRevoked {
			return nil
		}
		c, err = s.revokeTx(ctx, tx, c.ID, r, truncMS(time.Now()))
		return err
	})
	if err != nil {
		return Connection{}, fmt.Errorf("begin revocation: %w", err)
	}
	return c, nil
}

// revokeTx is the commit of a revocation inside tx, for a live connection
// whose write fence the caller holds: state revoking, a "revoked" ledger
// entry for every purpose granted on it, an audit entry. Tenant
// offboarding revokes through it too, so both leave the same records.
func (s *Store) revokeTx(ctx context.Context, tx *sql.Tx, id string, r Revocation, now time.Time) (Connection, error) {
	c, err := scanConnection(tx.QueryRowContext(ctx, s.rebind(`UPDATE connections
		SET state = 'revoking', state_reason = ?, revoke_requested_at = ?, updated_at = ?
		WHERE id = ? RETURNING `+connCols), r.Reason, ms(now), ms(now), id))
	if err != nil {
		return Connection{}, err
	}
	granted, err := s.grantedOnConnection(ctx, tx, c)
	if err != nil {
		return Connection{}, fmt.Errorf("ledger: %w", err)
	}
	for _, purpose := range granted {
		cn := Consent{TenantID: c.TenantID, SubjectID: c.SubjectID, Purpose: purpose, Decision: DecisionRevoked,
			PolicyVersion: r.PolicyVersion, Actor: r.Actor, SourceIP: r.SourceIP, UserAgent: r.UserAgent,
			ConnectionID: c.ID, CreatedAt: now}
		if err := s.insertConsent(ctx, tx, &cn); err != nil {
			return Connection{}, fmt.Errorf("ledger: %w", err)
		}
	}
	err = s.insertAudit(ctx, tx, &AuditEntry{TenantID: c.TenantID, Actor: r.Actor, Action: "connection.revoke",
		TargetKind: "connection", TargetID: c.ID, SubjectID: c.SubjectID, SourceIP: r.SourceIP,
		Detail: "purposes=" + strings.Join(granted, ",")}, now)
	return c, err
}

// grantedOnConnection lists the purposes whose latest decision recorded on
// the connection is granted, sorted.
func (s *Store) grantedOnConnection(ctx context.Context, q querier, c Connection) ([]string, error) {
	rows, err := q.QueryContext(ctx, s.rebind(`SELECT purpose, decision FROM consents
		WHERE tenant_id = ? AND subject_id = ? AND connection_id = ? ORDER BY created_at, id`), c.TenantID, c.SubjectID, c.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	latest := map[string]string{}
	for rows.Next() {
		var purpose, decision string
		if err := rows.Scan(&purpose, &decision); err != nil {
			return nil, err
		}
		latest[purpose] = decision
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var granted []string
	for purpose, decision := range latest {
		if decision == DecisionGranted {
			granted = append(granted, purpose)
		}
	}
	slices.Sort(granted)
	return granted, nil
}

// FinishRevocation ends a revoking connection: credentials, imported
// events, links and the sync cursor are deleted and the state becomes
// revoked (or the row is deleted when EraseOnRevoke is set). Idempotent:
// a revoked connection, or one already deleted, gives nil; an active,
// paused or broken one ErrConflict.
func (s *Store) FinishRevocation(ctx context.Context, id string, now time.Time) error {
	now = truncMS(now)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var tenantID, subjectID, state string
		var erase bool
		err := tx.QueryRowContext(ctx, s.rebind("SELECT tenant_id, subject_id, state, erase_on_revoke FROM connections WHERE id = ?"+s.forUpdate()), id).
			Scan(&tenantID, &subjectID, &state, &erase)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && state == ConnRevoked) {
			return nil
		}
		if err != nil {
			return err
		}
		if state != ConnRevoking {
			return fmt.Errorf("connection is %s: %w", state, ErrConflict)
		}
		for _, table := range []string{"external_events", "links"} {
			if _, err := tx.ExecContext(ctx, s.rebind("DELETE FROM "+table+" WHERE connection_id = ?"), id); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		if erase {
			// The subject was erased: whatever was written about this
			// connection since then goes with it, and the trace left is
			// not linked to the person.
			for _, del := range []struct{ what, sql string }{
				{"consents", "DELETE FROM consents WHERE tenant_id = ? AND subject_id = ? AND connection_id = ?"},
				{"audit", "DELETE FROM audit WHERE tenant_id = ? AND subject_id = ? AND target_kind = 'connection' AND target_id = ?"},
				{"connection", "DELETE FROM connections WHERE tenant_id = ? AND subject_id = ? AND id = ?"},
			} {
				if _, err := tx.ExecContext(ctx, s.rebind(del.sql), tenantID, subjectID, id); err != nil {
					return fmt.Errorf("%s: %w", del.what, err)
				}
			}
			return s.insertAudit(ctx, tx, &AuditEntry{TenantID: tenantID, Actor: "system", Action: "connection.revoked",
				TargetKind: "connection", TargetID: id, Detail: "erased"}, now)
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE connections SET credentials = '', sync_cursor = '',
			state = 'revoked', revoked_at = ?, updated_at = ? WHERE id = ?`), ms(now), ms(now), id); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, &AuditEntry{TenantID: tenantID, Actor: "system", Action: "connection.revoked",
			TargetKind: "connection", TargetID: id, SubjectID: subjectID}, now)
	})
	if err != nil {
		return fmt.Errorf("finish revocation: %w", err)
	}
	return nil
}

// DefaultRevokingLimit is the page size RevokingConnections uses when given 0 or less.
const DefaultRevokingLimit = 1000

// RevokingConnections lists connections still revoking since before the
// given time, so a sweeper can re-enqueue their cleanup. Oldest first.
func (s *Store) RevokingConnections(ctx context.Context, before time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		limit = DefaultRevokingLimit
	}
	ids, err := queryStrings(ctx, s.read, s.rebind(`SELECT id FROM connections
		WHERE state = 'revoking' AND revoke_requested_at < ? ORDER BY revoke_requested_at, id LIMIT ?`), ms(before), limit)
	if err != nil {
		return nil, fmt.Errorf("revoking connections: %w", err)
	}
	return ids, nil
}

// CalendarWrite runs fn while holding the connection's write fence: fn runs
// only if the connection is active (else ErrNotActive) and its subject is
// not restricted (else ErrRestricted), and BeginRevocation
// cannot commit while fn runs — so no write reaches a calendar after the
// revocation commits. fn must be bounded in time (it holds a database lock
// on PostgreSQL; on SQLite the fence is in-process, which matches its
// single-node use).
//
// The fence is a lock of its own, not a lock on the connection row, so fn
// may update the connection (UpdateConnectionCredentials,
// SetConnectionState, …). fn must not call CalendarWrite or begin a
// revocation itself: with a revocation waiting, that waits forever. An
// unknown connection gives ErrNotFound; fn's own error is returned as is.
func (s *Store) CalendarWrite(ctx context.Context, connectionID string, fn func(ctx context.Context) error) error {
	if s.dialect == DialectPostgres {
		tx, err := s.fenceDB.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("calendar write: begin: %w", err)
		}
		defer tx.Rollback() //nolint:errcheck // no-op after Commit
		if err := s.pgFence(ctx, tx, connectionID, false); err != nil {
			return fmt.Errorf("calendar write: %w", err)
		}
		if err := s.checkActive(ctx, tx, connectionID); err != nil {
			return fmt.Errorf("calendar write: %w", err)
		}
		if err := fn(ctx); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("calendar write: release fence: %w", err)
		}
		return nil
	}
	f := s.acquireFence(connectionID)
	defer s.releaseFence(connectionID, f)
	f.RLock()
	defer f.RUnlock()
	unlock, err := s.lockFenceFile(connectionID, false)
	if err != nil {
		return fmt.Errorf("calendar write: %w", err)
	}
	defer unlock()
	if err := s.checkActive(ctx, s.read, connectionID); err != nil {
		return fmt.Errorf("calendar write: %w", err)
	}
	return fn(ctx)
}

// checkActive is the side-effect check of a calendar read or write: the
// connection is active and its subject is not restricted (Art. 18: data
// kept, nothing synced).
func (s *Store) checkActive(ctx context.Context, q querier, id string) error {
	var state string
	var restricted bool
	err := q.QueryRowContext(ctx, s.rebind(`SELECT c.state, COALESCE(sub.restricted, FALSE)
		FROM connections c LEFT JOIN subjects sub ON sub.tenant_id = c.tenant_id AND sub.id = c.subject_id
		WHERE c.id = ?`), id).Scan(&state, &restricted)
	if err != nil {
		return notFound(err)
	}
	if state != ConnActive {
		return fmt.Errorf("connection is %s: %w", state, ErrNotActive)
	}
	if restricted {
		return fmt.Errorf("subject is restricted: %w", ErrRestricted)
	}
	return nil
}

// fenceLockClass is the first key of the PostgreSQL advisory locks that
// fence calendar writes ("tmdc"); the second is hashtext(connection id).
// Two-key advisory locks live apart from the one-key lock of Migrate.
const fenceLockClass = 0x746d6463

// pgFence takes the connection's write fence for the rest of tx on
// PostgreSQL: shared for a calendar write, exclusive for a revocation. An
// advisory lock rather than a row lock (SELECT … FOR SHARE): a row lock
// would make any update of the connection row inside fn wait for fn's own
// transaction, and queued exclusive requests would not stop new shared
// ones from overtaking them. Advisory lock requests queue fairly, so a
// waiting revocation holds back writes that start after it. A hash
// collision between two ids only makes one wait for the other.
func (s *Store) pgFence(ctx context.Context, tx *sql.Tx, id string, exclusive bool) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	fn := "pg_advisory_xact_lock_shared"
	if exclusive {
		fn = "pg_advisory_xact_lock"
	}
	if _, err := tx.ExecContext(ctx, "SELECT "+fn+"($1, hashtext($2))", int32(fenceLockClass), id); err != nil {
		return fmt.Errorf("fence: %w", err)
	}
	return nil
}

// fence is SQLite's in-process write fence of one connection. refs counts
// the goroutines holding or waiting for it, so the map entry goes away
// when nobody does.
type fence struct {
	sync.RWMutex
	refs int
}

func (s *Store) acquireFence(id string) *fence {
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	if s.fences == nil {
		s.fences = map[string]*fence{}
	}
	f := s.fences[id]
	if f == nil {
		f = &fence{}
		s.fences[id] = f
	}
	f.refs++
	return f
}

func (s *Store) releaseFence(id string, f *fence) {
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	f.refs--
	if f.refs == 0 {
		delete(s.fences, id)
	}
}

// fenceExclusive takes the SQLite write fences of the connections (in id
// order, so two callers cannot deadlock) and returns their release. It
// must be called before the transaction starts: a CalendarWrite's fn may
// need the single SQLite writer connection to finish. A no-op on
// PostgreSQL, where pgFence takes the fence inside the transaction.
func (s *Store) fenceExclusive(ids []string) (release func()) {
	if s.dialect == DialectPostgres || len(ids) == 0 {
		return func() {}
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	held := make([]*fence, len(ids))
	files := make([]func(), len(ids))
	for i, id := range ids {
		held[i] = s.acquireFence(id)
		held[i].Lock()
		unlock, err := s.lockFenceFile(id, true)
		if err != nil {
			// A calendar write that cannot take its side of the file lock
			// refuses to run, so the revocation may go on without it.
			unlock = func() {}
		}
		files[i] = unlock
	}
	return func() {
		for i := len(ids) - 1; i >= 0; i-- {
			files[i]()
			held[i].Unlock()
			s.releaseFence(ids[i], held[i])
		}
	}
}
