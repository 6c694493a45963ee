package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/termind/termind/internal/store"
)

// Defaults of Config.
const (
	DefaultBack  = 30 * 24 * time.Hour
	DefaultAhead = 365 * 24 * time.Hour
	// DefaultMassDeleteMin: a pull that would remove this many linked
	// objects or more, leaving none, trips the mass-delete guard.
	DefaultMassDeleteMin = 2
	// DefaultMassDeleteShare: with at least massDeleteFloor linked
	// objects, a pull that would remove more than this share of them
	// trips the guard too.
	DefaultMassDeleteShare = 0.5
	massDeleteFloor        = 10
	// writeAttempts bounds how often a write is retried after 412.
	writeAttempts = 3
)

// What a pull reports on an appointment whose copy it put back, and what
// sets the connection's attention.
const (
	ReportCopyEdited  = "copy edited in the calendar; restored"
	ReportCopyDeleted = "copy deleted in the calendar; restored"
	AttentionEmptied  = "remote calendar looks empty; nothing deleted"
)

// Config configures an Engine. Store and Remotes are required.
type Config struct {
	Store Store
	// Remotes builds the Remote of a connection, by provider
	// (store.ProviderCalDAV …). A provider without one cannot sync.
	Remotes map[string]RemoteFactory
	// Back and Ahead span the window a pull imports around now
	// (DefaultBack, DefaultAhead).
	Back, Ahead time.Duration
	// MassDeleteMin and MassDeleteShare tune the mass-delete guard
	// (DefaultMassDeleteMin, DefaultMassDeleteShare).
	MassDeleteMin   int
	MassDeleteShare float64
	Now             func() time.Time
	Logger          *slog.Logger
	// Metrics records each pull's provider, duration and outcome
	// (*metrics.Metrics); nil: none.
	Metrics RunMetrics
}

// RunMetrics receives one record per pull of an active connection.
type RunMetrics interface {
	SyncRun(provider string, d time.Duration, err error)
}

// Engine runs pulls and pushes. It is safe for concurrent use; two runs
// of the same connection at once are harmless (conditional writes, link
// upserts) but wasteful, which the queue's task ids prevent.
type Engine struct {
	cfg Config
	log *slog.Logger
}

// New returns an engine with defaults filled in.
func New(cfg Config) *Engine {
	if cfg.Back <= 0 {
		cfg.Back = DefaultBack
	}
	if cfg.Ahead <= 0 {
		cfg.Ahead = DefaultAhead
	}
	if cfg.MassDeleteMin <= 0 {
		cfg.MassDeleteMin = DefaultMassDeleteMin
	}
	if cfg.MassDeleteShare <= 0 || cfg.MassDeleteShare >= 1 {
		cfg.MassDeleteShare = DefaultMassDeleteShare
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Engine{cfg: cfg, log: cfg.Logger}
}

// Window is the window a pull at now imports.
func (e *Engine) Window(now time.Time) Window {
	return Window{From: now.Add(-e.cfg.Back), To: now.Add(e.cfg.Ahead)}
}

// remote loads the connection's credentials and builds its Remote.
func (e *Engine) remote(ctx context.Context, conn store.Connection) (Remote, error) {
	f := e.cfg.Remotes[conn.Provider]
	if f == nil {
		return nil, fmt.Errorf("sync: no remote for provider %q", conn.Provider)
	}
	creds, err := e.cfg.Store.ConnectionCredentials(ctx, conn.ID)
	if err != nil {
		return nil, fmt.Errorf("sync: credentials: %w", err)
	}
	r, err := f(conn, creds)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	return r, nil
}

// active refuses a connection that is not active before anything else
// happens; CalendarWrite checks again (and the subject's restriction)
// under the fence.
func active(conn store.Connection) error {
	if conn.State != store.ConnActive {
		return fmt.Errorf("sync: connection is %s: %w", conn.State, store.ErrNotActive)
	}
	return nil
}

// refused reports whether err is the store refusing the connection
// (revoked, paused, broken, restricted): nothing was written, nothing is
// recorded.
func refused(err error) bool {
	return errors.Is(err, store.ErrNotActive) || errors.Is(err, store.ErrRestricted) || errors.Is(err, store.ErrNotFound)
}

// Pull imports the connection's calendar: incrementally from its cursor,
// or in full when full is set, the connection has no cursor or the
// remote refuses it. See the package comment. The outcome is recorded
// with store.RecordSync (also on failure, with the error) unless the
// connection is not active or its subject is restricted: then Pull
// returns ErrNotActive or ErrRestricted and writes nothing.
//
// The whole pull runs inside store.CalendarWrite: restoring copies writes
// to the calendar, and a revocation waits for the pull rather than race
// it.
func (e *Engine) Pull(ctx context.Context, connectionID string, full bool) (store.SyncResult, error) {
	conn, err := e.cfg.Store.GetConnectionByID(ctx, connectionID)
	if err != nil {
		return store.SyncResult{}, fmt.Errorf("sync: pull %s: %w", connectionID, err)
	}
	if err := active(conn); err != nil {
		return store.SyncResult{}, err
	}
	res := store.SyncResult{At: e.cfg.Now()}
	if e.cfg.Metrics != nil {
		start := time.Now()
		defer func() { e.cfg.Metrics.SyncRun(conn.Provider, time.Since(start), err) }()
	}
	remote, err := e.remote(ctx, conn)
	if err == nil {
		err = e.cfg.Store.CalendarWrite(ctx, conn.ID, func(ctx context.Context) error {
			return e.pull(ctx, conn, remote, full, &res)
		})
	}
	if err != nil && refused(err) {
		return res, err
	}
	if err != nil {
		res.Error = err.Error()
		res.Cursor = ""
	}
	if rerr := e.cfg.Store.RecordSync(ctx, conn.ID, res); rerr != nil {
		if err == nil && !refused(rerr) {
			err = fmt.Errorf("sync: pull %s: record: %w", conn.ID, rerr)
		}
	}
	e.log.Info("sync: pull", "connection_id", conn.ID, "full", res.Full, "imported", res.Imported,
		"removed", res.Removed, "restored", res.Restored, "pushed", res.Pushed, "attention", res.Attention, "err", err)
	return res, err
}

// pullState is one pull's view of the link table.
type pullState struct {
	conn   store.Connection
	remote Remote
	res    *store.SyncResult
	w      Window
	full   bool
	// appts: appointment links by appointment id; apptByName: by
	// remote name. events: imported links by remote name.
	appts      map[string]store.Link
	apptByName map[string]store.Link
	events     map[string][]store.Link
	// pending holds the imports and removals not yet written (see
	// importBatch); importedBy names the object each UID imported in
	// this pull came from.
	pending    importBatch
	importedBy map[string]string
	// blocks: our blockers (block.go).
	blocks blockState
}

func (e *Engine) pull(ctx context.Context, conn store.Connection, remote Remote, full bool, res *store.SyncResult) error {
	now := e.cfg.Now()
	st := &pullState{conn: conn, remote: remote, res: res, w: e.Window(now), importedBy: map[string]string{}}

	cursor := conn.SyncCursor
	if full {
		cursor = ""
	}
	ch, err := remote.Changes(ctx, cursor, st.w)
	if errors.Is(err, ErrCursorInvalid) && cursor != "" {
		e.log.Info("sync: cursor refused, full resync", "connection_id", conn.ID)
		ch, err = remote.Changes(ctx, "", st.w)
	}
	if err != nil {
		return fmt.Errorf("sync: pull %s: changes: %w", conn.ID, err)
	}
	st.full = ch.Full
	res.Full = ch.Full

	if err := e.loadLinks(ctx, st); err != nil {
		return err
	}
	if err := e.loadBlockers(ctx, st); err != nil {
		return err
	}

	// Which linked objects the remote no longer has.
	var gone []string
	if ch.Full {
		present := map[string]bool{}
		for _, n := range ch.Present {
			present[n] = true
		}
		for _, it := range ch.Items {
			present[it.Name] = true
		}
		for _, n := range st.linkedNames() {
			if !present[n] {
				gone = append(gone, n)
			}
		}
	} else {
		for _, n := range ch.Deleted {
			if st.linked(n) {
				gone = append(gone, n)
			}
		}
		for _, series := range ch.DeletedSeries {
			for _, n := range st.linkedNames() {
				if strings.HasPrefix(n, series+"_") && !slices.Contains(gone, n) {
					gone = append(gone, n)
				}
			}
		}
	}
	known := len(st.linkedNames())
	guard := e.massDelete(known, len(gone))
	if guard {
		res.Attention = AttentionEmptied
		e.log.Warn("sync: mass-delete guard tripped", "connection_id", conn.ID, "linked", known, "gone", len(gone))
	} else {
		if err := e.pullBlockersGone(ctx, st, ch); err != nil {
			return err
		}
		// Deletions first: a UID that moved to another object is then
		// imported again below, not deleted after.
		for _, name := range gone {
			if err := e.pullGone(ctx, st, name); err != nil {
				if ferr := e.flush(ctx, st); ferr != nil && !refused(ferr) {
					e.log.Warn("sync: removals before a failure not written", "connection_id", conn.ID, "err", ferr)
				}
				return err
			}
		}
	}

	for _, it := range ch.Items {
		var err error
		if st.isBlockerItem(it) {
			// A blocker is neither imported nor an appointment's copy.
			err = e.pullBlocker(ctx, st, it)
		} else if it.Ours {
			err = e.pullOurs(ctx, st, it)
		} else if l, ok := st.apptByName[it.Name]; ok {
			// Our copy's object now holds an event without our marker:
			// someone replaced it. The appointment wins.
			err = e.restore(ctx, st, l, it.ETag, ReportCopyEdited)
		} else if imports(st.conn) {
			err = e.pullImport(ctx, st, it)
		}
		// An export-only connection was consented for writing our copies,
		// not for reading the person's calendar: their events are skipped.
		if err == nil && st.pending.size() >= store.ImportChunk {
			err = e.flush(ctx, st)
		}
		if err != nil {
			// What was imported before the failure is kept, as if each
			// object had been written on its own; the cursor does not
			// move, so the next pull looks at everything again.
			if ferr := e.flush(ctx, st); ferr != nil && !refused(ferr) {
				e.log.Warn("sync: imports before a failure not written", "connection_id", conn.ID, "err", ferr)
			}
			return err
		}
	}
	// Written before the mass-delete guard's error below: the guard
	// holds back deletions, not the imports of the same pull.
	if err := e.flush(ctx, st); err != nil {
		return err
	}

	if guard {
		return fmt.Errorf("sync: pull %s: %d of %d linked objects gone: %w", conn.ID, len(gone), known, ErrMassDelete)
	}
	if ch.Full && exports(conn) {
		if err := e.reconcileCopies(ctx, st); err != nil {
			return err
		}
	}
	if err := e.repairBlockers(ctx, st); err != nil {
		return err
	}
	res.Cursor = ch.Cursor
	return nil
}

func (e *Engine) loadLinks(ctx context.Context, st *pullState) error {
	appts, err := e.cfg.Store.ListLinks(ctx, st.conn.ID, store.LinkAppointment)
	if err != nil {
		return fmt.Errorf("sync: pull %s: links: %w", st.conn.ID, err)
	}
	events, err := e.cfg.Store.ListLinks(ctx, st.conn.ID, store.LinkEvent)
	if err != nil {
		return fmt.Errorf("sync: pull %s: links: %w", st.conn.ID, err)
	}
	st.appts = map[string]store.Link{}
	st.apptByName = map[string]store.Link{}
	for _, l := range appts {
		st.appts[l.ItemID] = l
		st.apptByName[l.RemoteID] = l
	}
	st.events = map[string][]store.Link{}
	for _, l := range events {
		st.events[l.RemoteID] = append(st.events[l.RemoteID], l)
	}
	return nil
}

func (st *pullState) linked(name string) bool {
	_, a := st.apptByName[name]
	return a || len(st.events[name]) > 0
}

func (st *pullState) linkedNames() []string {
	var out []string
	for n := range st.apptByName {
		out = append(out, n)
	}
	for n := range st.events {
		if _, dup := st.apptByName[n]; !dup {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// massDelete decides whether removing gone of known linked objects looks
// like a calendar that was emptied (or a server answering with nothing)
// rather than a person deleting events.
func (e *Engine) massDelete(known, gone int) bool {
	if gone == 0 {
		return false
	}
	if gone >= known && gone >= e.cfg.MassDeleteMin {
		return true
	}
	return known >= massDeleteFloor && float64(gone) > e.cfg.MassDeleteShare*float64(known)
}

// pullGone handles an object the remote no longer has.
func (e *Engine) pullGone(ctx context.Context, st *pullState, name string) error {
	if l, ok := st.apptByName[name]; ok {
		if err := e.restore(ctx, st, l, "", ReportCopyDeleted); err != nil {
			return err
		}
	}
	for _, l := range st.events[name] {
		st.pending.remove(l.ItemID)
	}
	if len(st.events[name]) > 0 {
		st.res.Removed++
	}
	delete(st.events, name)
	return nil
}

// pullOurs looks at one of our copies: unchanged, rewritten by the server
// (same content), or edited by someone (restored).
func (e *Engine) pullOurs(ctx context.Context, st *pullState, it Item) error {
	// Whatever was imported from this object before it became ours goes.
	for _, l := range st.events[it.Name] {
		st.pending.remove(l.ItemID)
	}
	delete(st.events, it.Name)

	l, ok := st.appts[it.AppointmentID]
	if !ok || l.RemoteID != it.Name {
		// A copy we hold no link for (written before a link was lost,
		// or duplicated by a calendar app): never imported, left alone;
		// the next push or full reconciliation of its appointment
		// writes the linked copy.
		return nil
	}
	if it.ETag != "" && it.ETag == l.RemoteETag {
		return nil
	}
	if it.Hash != "" && it.Hash == l.ContentHash {
		// The server rewrote it without changing what it says.
		l.RemoteETag = it.ETag
		return e.upsertLink(ctx, st.conn.ID, l)
	}
	return e.restore(ctx, st, l, it.ETag, ReportCopyEdited)
}

// restore writes the appointment's copy back over what the remote holds
// now (etag; "" when it was deleted) and reports it on the appointment.
// A cancelled or vanished appointment's copy is removed instead.
func (e *Engine) restore(ctx context.Context, st *pullState, l store.Link, etag, report string) error {
	a, err := e.cfg.Store.GetAppointment(ctx, st.conn.TenantID, l.ItemID)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && a.Status == store.AppointmentCancelled:
		if etag != "" {
			if err := e.removeCopy(ctx, st.remote, l.RemoteID, etag, l.ItemID); err != nil {
				return fmt.Errorf("sync: pull %s: remove copy: %w", st.conn.ID, err)
			}
		}
		if err := e.cfg.Store.DeleteLink(ctx, st.conn.ID, store.LinkAppointment, l.ItemID); err != nil {
			return fmt.Errorf("sync: pull %s: delete link: %w", st.conn.ID, err)
		}
		delete(st.apptByName, l.RemoteID)
		delete(st.appts, l.ItemID)
		return nil
	case err != nil:
		return fmt.Errorf("sync: pull %s: appointment: %w", st.conn.ID, err)
	}
	nl, err := e.writeCopy(ctx, st.remote, st.conn.ID, store.LinkAppointment, a, etag)
	if err != nil {
		return fmt.Errorf("sync: pull %s: restore copy: %w", st.conn.ID, err)
	}
	st.appts[a.ID], st.apptByName[nl.RemoteID] = nl, nl
	st.res.Restored++
	e.log.Info("sync: copy restored", "connection_id", st.conn.ID, "appointment_id", a.ID, "why", report)
	if err := e.cfg.Store.SetAppointmentSyncError(ctx, st.conn.TenantID, a.ID, report); err != nil {
		return fmt.Errorf("sync: pull %s: report: %w", st.conn.ID, err)
	}
	return nil
}

// pullImport queues the occurrences of a user's object, to be stored at
// the connection's privacy level (the store blanks what the level does
// not allow), and the link of each UID to the object.
func (e *Engine) pullImport(ctx context.Context, st *pullState, it Item) error {
	old := st.events[it.Name]
	if !st.full && len(old) > 0 && it.ETag != "" && !slices.ContainsFunc(old, func(l store.Link) bool { return l.RemoteETag != it.ETag }) {
		return nil // already imported at this ETag
	}
	uids := slices.Clone(it.UIDs)
	byUID := map[string][]store.ExternalEvent{}
	now := e.cfg.Now()
	for _, o := range it.Occurrences {
		uid := o.UID
		if uid == "" {
			uid = noUID(it.Name)
		}
		if !slices.Contains(uids, uid) {
			uids = append(uids, uid)
		}
		if o.Cancelled {
			continue
		}
		byUID[uid] = append(byUID[uid], store.ExternalEvent{
			ConnectionID: st.conn.ID, UID: uid, RecurrenceID: o.RecurrenceID,
			Start: o.Start.UTC(), End: o.End.UTC(), AllDay: o.AllDay, TimeZone: o.TimeZone,
			Transparent: o.Transparent, Title: o.Title, Location: o.Location, Description: o.Description,
			UpdatedAt: now,
		})
	}
	if len(uids) == 0 {
		uids = []string{noUID(it.Name)}
	}
	links := make([]store.Link, 0, len(uids))
	for _, uid := range uids {
		l := store.Link{ConnectionID: st.conn.ID, ItemKind: store.LinkEvent, ItemID: uid,
			RemoteID: it.Name, RemoteHref: it.Href, RemoteETag: it.ETag, ContentHash: it.Hash}
		st.pending.put(store.ImportedObject{UID: uid, Events: byUID[uid], Link: l})
		links = append(links, l)
	}
	for _, uid := range uids {
		st.importedBy[uid] = it.Name
	}
	for _, l := range old {
		// A UID the object no longer holds goes, unless another object
		// of this pull took it over (moved between objects): then
		// removing it would drop what that object just imported.
		if !slices.Contains(uids, l.ItemID) && st.importedBy[l.ItemID] == "" {
			st.pending.remove(l.ItemID)
		}
	}
	st.events[it.Name] = links
	st.res.Imported++
	return nil
}

// importBatch collects a pull's imports and removals so that they reach
// the store a chunk at a time (store.ImportObjects, store.RemoveObjects)
// instead of in several transactions per object. Every entry replaces a
// UID's whole stored state, so for each UID only the last one queued
// matters: an import after a removal is that import, a removal after an
// import is that removal. Writing the batch therefore ends in the same
// rows as writing each step when it happened.
type importBatch struct {
	upserts  map[string]int // uid → index in objs
	objs     []store.ImportedObject
	removals map[string]bool
}

// put queues the import of one UID.
func (b *importBatch) put(o store.ImportedObject) {
	delete(b.removals, o.UID)
	if i, ok := b.upserts[o.UID]; ok {
		b.objs[i] = o
		return
	}
	if b.upserts == nil {
		b.upserts = map[string]int{}
	}
	b.upserts[o.UID] = len(b.objs)
	b.objs = append(b.objs, o)
}

// remove queues the removal of one UID's events and link.
func (b *importBatch) remove(uid string) {
	if i, ok := b.upserts[uid]; ok {
		// Dropped from objs by marking: the slice keeps its order.
		b.objs[i].UID = ""
		delete(b.upserts, uid)
	}
	if b.removals == nil {
		b.removals = map[string]bool{}
	}
	b.removals[uid] = true
}

func (b *importBatch) size() int { return len(b.upserts) + len(b.removals) }

// flush writes the queued imports and removals. The two sets are
// disjoint (see importBatch), so their order does not matter.
func (e *Engine) flush(ctx context.Context, st *pullState) error {
	b := &st.pending
	if b.size() == 0 {
		return nil
	}
	if len(b.removals) > 0 {
		uids := slices.Sorted(maps.Keys(b.removals))
		if err := e.cfg.Store.RemoveObjects(ctx, st.conn.ID, uids); err != nil {
			return fmt.Errorf("sync: pull %s: remove imports: %w", st.conn.ID, err)
		}
	}
	objs := slices.DeleteFunc(b.objs, func(o store.ImportedObject) bool { return o.UID == "" })
	if len(objs) > 0 {
		if err := e.cfg.Store.ImportObjects(ctx, st.conn.ID, objs); err != nil {
			return fmt.Errorf("sync: pull %s: import: %w", st.conn.ID, err)
		}
	}
	*b = importBatch{}
	return nil
}

// noUID is the key of an object whose events have no UID (servers refuse
// them; some do not).
func noUID(name string) string { return "nouid:" + name }

func (e *Engine) upsertLink(ctx context.Context, connID string, l store.Link) error {
	if err := e.cfg.Store.UpsertLink(ctx, l); err != nil {
		return fmt.Errorf("sync: %s: link: %w", connID, err)
	}
	return nil
}

// imports reports whether the connection's events may be read into the
// store (direction import or both).
func imports(conn store.Connection) bool {
	return conn.Direction == store.DirectionImport || conn.Direction == store.DirectionBoth
}

// exports reports whether the connection gets copies of appointments.
func exports(conn store.Connection) bool {
	return conn.Direction == store.DirectionExport || conn.Direction == store.DirectionBoth
}

// reconcileCopies, in a full pull, writes the copies that pushes should
// have written and did not (a lost task): appointments in the window
// without a link, or linked at an older version; and removes copies of
// cancelled ones.
func (e *Engine) reconcileCopies(ctx context.Context, st *pullState) error {
	appts, err := e.cfg.Store.ConnectionAppointments(ctx, st.conn.ID, st.w.From, st.w.To)
	if err != nil {
		return fmt.Errorf("sync: pull %s: appointments: %w", st.conn.ID, err)
	}
	for _, a := range appts {
		l, linked := st.appts[a.ID]
		if linked && l.SyncedVersion >= a.Version {
			continue
		}
		if !linked && a.Status == store.AppointmentCancelled {
			continue
		}
		ok, err := e.eligible(ctx, st.conn, a)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := e.pushLocked(ctx, st.remote, st.conn, a, a.Version); err != nil {
			return err
		}
		st.res.Pushed++
	}
	return nil
}
