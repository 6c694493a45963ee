package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/termind/termind/internal/store"
)

// Push writes the copy of one appointment to one connection, as of the
// appointment's current state (version is the version that caused the
// task): created or moved with a conditional PUT, removed when the
// appointment is cancelled, gone, or no longer goes to this connection
// (subject, direction or calendar.write consent changed). A task whose
// version was pushed already (link SyncedVersion ≥ version) does nothing,
// so tasks may run twice and out of order.
//
// It refuses with ErrNotActive / ErrRestricted (and writes nothing) when
// the connection is not active or its subject is restricted. Failures
// the remote reports are returned (wrapping ErrCredentialsRejected,
// ErrUnavailable …) for the caller to retry or record.
func (e *Engine) Push(ctx context.Context, connectionID, tenantID, appointmentID string, version int) error {
	conn, err := e.cfg.Store.GetConnectionByID(ctx, connectionID)
	if err != nil {
		return fmt.Errorf("sync: push %s: %w", connectionID, err)
	}
	if conn.TenantID != tenantID {
		return fmt.Errorf("sync: push %s: connection of another tenant: %w", connectionID, store.ErrNotFound)
	}
	if err := active(conn); err != nil {
		return err
	}
	a, err := e.cfg.Store.GetAppointment(ctx, tenantID, appointmentID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Gone from the store: its copy goes too.
		a = store.Appointment{TenantID: tenantID, ID: appointmentID, Status: store.AppointmentCancelled}
	case err != nil:
		return fmt.Errorf("sync: push %s: appointment: %w", connectionID, err)
	}
	if a.Status != store.AppointmentCancelled {
		ok, err := e.eligible(ctx, conn, a)
		if err != nil {
			return err
		}
		if !ok {
			a.Status = store.AppointmentCancelled
		}
	}
	remote, err := e.remote(ctx, conn)
	if err != nil {
		return err
	}
	return e.cfg.Store.CalendarWrite(ctx, conn.ID, func(ctx context.Context) error {
		return e.pushLocked(ctx, remote, conn, a, version)
	})
}

// eligible reports whether the appointment's copy belongs on conn: the
// connection is one of the appointment's (its subject, export direction,
// calendar.write granted).
func (e *Engine) eligible(ctx context.Context, conn store.Connection, a store.Appointment) (bool, error) {
	if !exports(conn) || !slices.Contains(a.SubjectIDs, conn.SubjectID) {
		return false, nil
	}
	conns, err := e.cfg.Store.AppointmentConnections(ctx, a.TenantID, a.ID)
	if err != nil {
		return false, fmt.Errorf("sync: push %s: appointment connections: %w", conn.ID, err)
	}
	return slices.ContainsFunc(conns, func(c store.Connection) bool { return c.ID == conn.ID }), nil
}

// pushLocked writes or removes the copy; it runs inside CalendarWrite.
// An appointment with status cancelled is removed.
func (e *Engine) pushLocked(ctx context.Context, remote Remote, conn store.Connection, a store.Appointment, version int) error {
	l, err := e.cfg.Store.GetLink(ctx, conn.ID, store.LinkAppointment, a.ID)
	linked := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sync: push %s: link: %w", conn.ID, err)
	}
	if a.Status == store.AppointmentCancelled {
		if !linked {
			return nil
		}
		if err := e.removeCopy(ctx, remote, l.RemoteID, l.RemoteETag, a.ID); err != nil {
			return fmt.Errorf("sync: push %s: remove copy: %w", conn.ID, err)
		}
		if err := e.cfg.Store.DeleteLink(ctx, conn.ID, store.LinkAppointment, a.ID); err != nil {
			return fmt.Errorf("sync: push %s: delete link: %w", conn.ID, err)
		}
		return nil
	}
	if linked && l.SyncedVersion >= version && l.SyncedVersion >= a.Version {
		return nil // pushed already, by this task or a later one
	}
	etag := ""
	if linked {
		etag = l.RemoteETag
	}
	if _, err := e.writeCopy(ctx, remote, conn.ID, store.LinkAppointment, a, etag); err != nil {
		return fmt.Errorf("sync: push %s: %w", conn.ID, err)
	}
	return nil
}

// writeCopy writes the appointment's copy over the object that has etag
// ("" when there should be none) and links it as kind (LinkAppointment,
// or LinkBlocker for a blocker, whose link item is its key). On 412 the
// object changed (or appeared) between our read and our write: it is read
// again and the appointment written over it — the booking system is the
// single writer.
func (e *Engine) writeCopy(ctx context.Context, remote Remote, connID, kind string, a store.Appointment, etag string) (store.Link, error) {
	name, data, hash, err := remote.Encode(a)
	if err != nil {
		return store.Link{}, fmt.Errorf("encode: %w", err)
	}
	var newETag string
	for attempt := 0; ; attempt++ {
		cond := Condition{IfMatch: etag, IfNoneMatch: etag == ""}
		newETag, err = remote.Put(ctx, name, data, cond)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrPrecondition) || attempt+1 >= writeAttempts {
			return store.Link{}, fmt.Errorf("write copy: %w", err)
		}
		cur, gerr := remote.Get(ctx, name)
		switch {
		case errors.Is(gerr, ErrNotFound):
			etag = ""
		case gerr != nil:
			return store.Link{}, fmt.Errorf("write copy: re-read: %w", gerr)
		default:
			etag = cur.ETag
		}
		e.log.Info("sync: copy changed meanwhile, writing over it", "connection_id", connID, "appointment_id", a.ID)
	}
	itemID := a.ID
	if kind == store.LinkBlocker {
		itemID = strings.TrimPrefix(a.ID, blockerPrefix)
	}
	l := store.Link{ConnectionID: connID, ItemKind: kind, ItemID: itemID,
		RemoteID: name, RemoteETag: newETag, ContentHash: hash, SyncedVersion: a.Version}
	if err := e.upsertLink(ctx, connID, l); err != nil {
		return store.Link{}, err
	}
	return l, nil
}

// removeCopy deletes our copy while it has etag. If it changed meanwhile
// it is read again: still ours, it is deleted at its new ETag; replaced
// by someone's own event, that event is left alone.
func (e *Engine) removeCopy(ctx context.Context, remote Remote, name, etag, appointmentID string) error {
	for attempt := 0; ; attempt++ {
		err := remote.Delete(ctx, name, etag)
		if err == nil || errors.Is(err, ErrNotFound) {
			return nil
		}
		if !errors.Is(err, ErrPrecondition) || attempt+1 >= writeAttempts {
			return err
		}
		cur, gerr := remote.Get(ctx, name)
		switch {
		case errors.Is(gerr, ErrNotFound):
			return nil
		case gerr != nil:
			return gerr
		case !cur.Ours || cur.AppointmentID != appointmentID:
			return nil
		}
		etag = cur.ETag
	}
}
