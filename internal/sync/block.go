package sync

// Cross-calendar blocking. A connection with blocking set gets, for every
// busy occurrence imported from the subject's other connections, a
// blocker: termind's own object that says "Busy" and nothing else (no
// location, no description, opaque). Blockers are written through the
// connection's own Remote.Encode, as copies of a synthetic appointment
// whose id is blockerPrefix + a key of the source occurrence, so they
// carry the marker: a pull never imports them (no loops, no blocker of a
// blocker), and a revocation removes them with the other copies.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/termind/termind/internal/store"
)

// blockerPrefix starts the appointment id of every blocker; the API
// refuses appointment ids that start with it.
const blockerPrefix = "blocker:"

// BlockerTitle is all a blocker says.
const BlockerTitle = "Busy"

// blockerStamp is every blocker's DTSTAMP / updated time: fixed, so that
// the same busy period always encodes to the same bytes and hash.
var blockerStamp = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// IsBlocker reports whether an object's marker id (Item.AppointmentID)
// names a blocker rather than an appointment's copy.
func IsBlocker(markerID string) bool { return strings.HasPrefix(markerID, blockerPrefix) }

// BlockerKey is the stable key of the blocker of one source occurrence:
// the same source connection, UID and recurrence id always give the same
// key (and so the same object name).
func BlockerKey(sourceConnectionID, uid, recurrenceID string) string {
	h := sha256.Sum256([]byte(sourceConnectionID + "\x00" + uid + "\x00" + recurrenceID))
	return hex.EncodeToString(h[:16])
}

// BlockStore is what Block needs from the store beyond Store
// (*store.Store has it). An engine whose store lacks it cannot block.
type BlockStore interface {
	BusyElsewhere(ctx context.Context, connectionID string, from, to time.Time) ([]store.BusyElsewhere, error)
	BlockingAllowed(ctx context.Context, connectionID string) (bool, error)
}

// BlockResult counts what one Block did.
type BlockResult struct {
	Written   int // blockers created or rewritten
	Removed   int // blockers removed
	Unchanged int // blockers already as they should be
}

// Block reconciles the connection's blockers with the subject's busy time
// in their other connections inside the sync window: missing or changed
// blockers are written, those of busy time that went (or moved out of the
// window) are removed, unchanged ones are left alone. With blocking off,
// a direction without export or calendar.write not granted, every
// blocker goes. Writes are conditional, as for appointment copies.
//
// Like Push it refuses with ErrNotActive / ErrRestricted (and writes
// nothing) when the connection is not active or its subject restricted;
// remote failures are returned wrapping the engine's kinds.
func (e *Engine) Block(ctx context.Context, connectionID string) (BlockResult, error) {
	var res BlockResult
	conn, err := e.cfg.Store.GetConnectionByID(ctx, connectionID)
	if err != nil {
		return res, fmt.Errorf("sync: block %s: %w", connectionID, err)
	}
	if err := active(conn); err != nil {
		return res, err
	}
	err = e.cfg.Store.CalendarWrite(ctx, conn.ID, func(ctx context.Context) error {
		var err error
		res, err = e.blockLocked(ctx, conn, nil)
		return err
	})
	level := slog.LevelInfo
	if err == nil && res.Written+res.Removed == 0 {
		level = slog.LevelDebug // the daily check of a connection without changes
	}
	e.log.Log(ctx, level, "sync: block", "connection_id", conn.ID, "written", res.Written, "removed", res.Removed,
		"unchanged", res.Unchanged, "err", err)
	return res, err
}

// blockLocked is Block inside CalendarWrite. remote may be nil: it is
// built only when something is to be written or removed.
func (e *Engine) blockLocked(ctx context.Context, conn store.Connection, remote Remote) (BlockResult, error) {
	var res BlockResult
	bs, ok := e.cfg.Store.(BlockStore)
	if !ok {
		return res, fmt.Errorf("sync: block %s: the store cannot list busy time elsewhere", conn.ID)
	}
	allowed, err := bs.BlockingAllowed(ctx, conn.ID)
	if err != nil {
		return res, fmt.Errorf("sync: block %s: %w", conn.ID, err)
	}
	want := map[string]store.Appointment{}
	if allowed {
		w := e.Window(e.cfg.Now())
		busy, err := bs.BusyElsewhere(ctx, conn.ID, w.From, w.To)
		if err != nil {
			return res, fmt.Errorf("sync: block %s: %w", conn.ID, err)
		}
		for _, b := range busy {
			key := BlockerKey(b.ConnectionID, b.UID, b.RecurrenceID)
			want[key] = blockerAppointment(conn.TenantID, key, b)
		}
	}
	links, err := e.cfg.Store.ListLinks(ctx, conn.ID, store.LinkBlocker)
	if err != nil {
		return res, fmt.Errorf("sync: block %s: links: %w", conn.ID, err)
	}
	getRemote := func() (Remote, error) {
		if remote == nil {
			r, err := e.remote(ctx, conn)
			if err != nil {
				return nil, err
			}
			remote = r
		}
		return remote, nil
	}

	linked := make(map[string]store.Link, len(links))
	for _, l := range links {
		if _, keep := want[l.ItemID]; keep {
			linked[l.ItemID] = l
			continue
		}
		r, err := getRemote()
		if err != nil {
			return res, err
		}
		if err := e.removeCopy(ctx, r, l.RemoteID, l.RemoteETag, blockerPrefix+l.ItemID); err != nil {
			return res, fmt.Errorf("sync: block %s: remove blocker: %w", conn.ID, err)
		}
		if err := e.cfg.Store.DeleteLink(ctx, conn.ID, store.LinkBlocker, l.ItemID); err != nil {
			return res, fmt.Errorf("sync: block %s: delete link: %w", conn.ID, err)
		}
		res.Removed++
	}
	for key, a := range want {
		l, ok := linked[key]
		if ok && l.ContentHash != "" {
			// Encode only hashes; the hash tells whether the blocker on
			// the calendar (as last written or seen) says what it should.
			r, err := getRemote()
			if err != nil {
				return res, err
			}
			if _, _, hash, err := r.Encode(a); err == nil && hash == l.ContentHash {
				res.Unchanged++
				continue
			}
		}
		r, err := getRemote()
		if err != nil {
			return res, err
		}
		if _, err := e.writeCopy(ctx, r, conn.ID, store.LinkBlocker, a, l.RemoteETag); err != nil {
			return res, fmt.Errorf("sync: block %s: %w", conn.ID, err)
		}
		res.Written++
	}
	return res, nil
}

// blockerAppointment is the synthetic appointment a blocker is the copy
// of: the busy period's times and zone, and nothing about what it is.
func blockerAppointment(tenantID, key string, b store.BusyElsewhere) store.Appointment {
	a := store.Appointment{TenantID: tenantID, ID: blockerPrefix + key, Title: BlockerTitle,
		Status: store.AppointmentConfirmed, Version: 1, UpdatedAt: blockerStamp, CreatedAt: blockerStamp}
	if b.AllDay {
		a.AllDay = true
		a.Start, a.End = b.Start.UTC(), b.End.UTC()
		a.StartDate, a.EndDate = a.Start.Format(time.DateOnly), a.End.Format(time.DateOnly)
		if a.EndDate <= a.StartDate {
			a.EndDate = a.Start.AddDate(0, 0, 1).Format(time.DateOnly)
		}
		return a
	}
	a.Start, a.End = b.Start.UTC(), b.End.UTC()
	// A zone Go does not know (a server's own name for it) is written as
	// UTC: the instants are what matters.
	if _, err := time.LoadLocation(b.TimeZone); err == nil && b.TimeZone != "" && !strings.EqualFold(b.TimeZone, "Local") {
		a.TimeZone = b.TimeZone
	}
	return a
}

// blockState is a pull's view of the connection's blockers: their links
// by remote name, and whether the pull saw one edited, replaced or
// deleted (then the pull rewrites them before it ends).
type blockState struct {
	byName map[string]store.Link
	stale  bool
}

// loadBlockers reads the connection's blocker links for a pull.
func (e *Engine) loadBlockers(ctx context.Context, st *pullState) error {
	links, err := e.cfg.Store.ListLinks(ctx, st.conn.ID, store.LinkBlocker)
	if err != nil {
		return fmt.Errorf("sync: pull %s: blocker links: %w", st.conn.ID, err)
	}
	st.blocks.byName = make(map[string]store.Link, len(links))
	for _, l := range links {
		st.blocks.byName[l.RemoteID] = l
	}
	return nil
}

// isBlockerItem reports whether a pulled object is (or stands where there
// was) one of our blockers: it is never imported nor restored as an
// appointment's copy.
func (st *pullState) isBlockerItem(it Item) bool {
	if it.Ours && IsBlocker(it.AppointmentID) {
		return true
	}
	_, ok := st.blocks.byName[it.Name]
	return ok
}

// pullBlocker looks at a blocker the pull found: unchanged, rewritten by
// the server with the same content, or edited or replaced by someone
// (its link is marked stale and the blocker rewritten at the end of the
// pull). An unlinked blocker (its link lost) is left alone.
func (e *Engine) pullBlocker(ctx context.Context, st *pullState, it Item) error {
	// Whatever was imported from this object before it became ours goes.
	for _, l := range st.events[it.Name] {
		st.pending.remove(l.ItemID)
	}
	delete(st.events, it.Name)

	l, ok := st.blocks.byName[it.Name]
	if !ok {
		return nil
	}
	// A remote that does not report a blocker's id (marker without it)
	// still says it is ours.
	ours := it.Ours && (it.AppointmentID == "" || it.AppointmentID == blockerPrefix+l.ItemID)
	if ours && it.ETag != "" && it.ETag == l.RemoteETag {
		return nil
	}
	if ours && it.Hash != "" && it.Hash == l.ContentHash {
		l.RemoteETag = it.ETag
		return e.upsertLink(ctx, st.conn.ID, l)
	}
	// Edited: the next write goes over what is there now.
	l.RemoteETag, l.ContentHash = it.ETag, ""
	st.blocks.byName[it.Name] = l
	st.blocks.stale = true
	e.log.Info("sync: blocker changed in the calendar", "connection_id", st.conn.ID)
	return e.upsertLink(ctx, st.conn.ID, l)
}

// pullBlockersGone forgets the links of blockers the remote no longer
// has (deleted by someone), so that they are written again.
func (e *Engine) pullBlockersGone(ctx context.Context, st *pullState, ch Changes) error {
	gone := map[string]bool{}
	if ch.Full {
		present := map[string]bool{}
		for _, n := range ch.Present {
			present[n] = true
		}
		for _, it := range ch.Items {
			present[it.Name] = true
		}
		for n := range st.blocks.byName {
			if !present[n] {
				gone[n] = true
			}
		}
	} else {
		for _, n := range ch.Deleted {
			if _, ok := st.blocks.byName[n]; ok {
				gone[n] = true
			}
		}
	}
	for n := range gone {
		l := st.blocks.byName[n]
		if err := e.cfg.Store.DeleteLink(ctx, st.conn.ID, store.LinkBlocker, l.ItemID); err != nil {
			return fmt.Errorf("sync: pull %s: delete blocker link: %w", st.conn.ID, err)
		}
		delete(st.blocks.byName, n)
		st.blocks.stale = true
	}
	if len(gone) > 0 {
		e.log.Info("sync: blockers deleted in the calendar", "connection_id", st.conn.ID, "count", len(gone))
	}
	return nil
}

// repairBlockers rewrites, at the end of a pull, the blockers the pull
// found edited or deleted.
func (e *Engine) repairBlockers(ctx context.Context, st *pullState) error {
	if !st.blocks.stale {
		return nil
	}
	res, err := e.blockLocked(ctx, st.conn, st.remote)
	if err != nil && !errors.Is(err, ErrUnavailable) {
		return err
	}
	// The remote is down: the next pull or block tries again.
	e.log.Info("sync: blockers repaired", "connection_id", st.conn.ID, "written", res.Written, "removed", res.Removed, "err", err)
	return nil
}
