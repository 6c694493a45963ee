package store

// Bulk writes of imported calendar objects. A pull that imports a whole
// calendar would otherwise pay several transactions (and, on PostgreSQL,
// several network round trips) per object; here a chunk of objects costs
// one transaction with a handful of statements.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ImportChunk is how many objects ImportObjects and RemoveObjects write in
// one transaction. Larger batches are split into chunks of this size, each
// committed on its own, so that no transaction holds its locks for long.
const ImportChunk = 500

// Bound parameters one statement may carry: SQLite's default
// SQLITE_MAX_VARIABLE_NUMBER and PostgreSQL's wire-protocol limit (a
// 16-bit count). Multi-row statements are split to stay below them.
const (
	maxParamsSQLite   = 32766
	maxParamsPostgres = 65535
)

// ImportedObject is what one pull learned about one imported event (one
// UID of a remote object): its occurrences in the window and its link.
type ImportedObject struct {
	UID string
	// Events replace whatever was stored for UID; none removes the
	// stored occurrences but keeps the link (an object with nothing in the
	// window). Their ConnectionID and UID are ignored.
	Events []ExternalEvent
	// Link is upserted with ConnectionID, ItemKind and ItemID set by the
	// store (the connection, LinkEvent, UID); SyncedVersion is kept as
	// given (0 for imports).
	Link Link
}

// ImportObjects stores a batch of imports: for every object its events
// replace the stored ones (as ReplaceExternalEvents does, at the
// connection's privacy level only) and its link is upserted (as
// UpsertLink does). ErrNotActive once the connection is not active,
// ErrRestricted for a restricted subject, ErrNotFound for an unknown
// connection: then the refused chunk writes nothing.
//
// Each chunk of ImportChunk objects is one transaction that checks the
// connection once; an error stops at the chunk it happened in, earlier
// chunks stay. The same UID twice in objs: the later wins. It takes no
// write fence, so it may be called inside CalendarWrite's fn.
func (s *Store) ImportObjects(ctx context.Context, connectionID string, objs []ImportedObject) error {
	if connectionID == "" {
		return errors.New("import objects: connection is required")
	}
	for i, o := range objs {
		if o.UID == "" {
			return fmt.Errorf("import objects: object %d: uid is required", i)
		}
	}
	objs = lastPerUID(objs)
	for chunk := range slices.Chunk(objs, ImportChunk) {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			return s.importTx(ctx, tx, connectionID, chunk, true)
		})
		if err != nil {
			return fmt.Errorf("import objects: %w", err)
		}
	}
	return nil
}

// RemoveObjects deletes the stored occurrences and the event links of
// uids (what a pull does when a remote object is gone). Like
// DeleteExternalEvents it is allowed in every state of the connection: a
// revocation deletes these rows anyway. One transaction per chunk of
// ImportChunk uids.
func (s *Store) RemoveObjects(ctx context.Context, connectionID string, uids []string) error {
	if connectionID == "" {
		return errors.New("remove objects: connection is required")
	}
	uids = slices.Compact(slices.Sorted(slices.Values(uids)))
	for chunk := range slices.Chunk(uids, ImportChunk) {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if err := s.deleteEventsTx(ctx, tx, connectionID, chunk); err != nil {
				return err
			}
			args := append([]any{connectionID, LinkEvent}, anys(chunk)...)
			if _, err := tx.ExecContext(ctx, s.rebind("DELETE FROM links WHERE connection_id = ? AND item_kind = ? AND item_id IN ("+
				placeholders(len(chunk))+")"), args...); err != nil {
				return fmt.Errorf("delete links: %w", err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("remove objects: %w", err)
		}
	}
	return nil
}

// lastPerUID keeps the last object of each UID, in the order of their
// first appearance: one multi-row upsert must not touch the same row
// twice (PostgreSQL refuses that).
func lastPerUID(objs []ImportedObject) []ImportedObject {
	at := make(map[string]int, len(objs))
	out := make([]ImportedObject, 0, len(objs))
	for _, o := range objs {
		if i, ok := at[o.UID]; ok {
			out[i] = o
			continue
		}
		at[o.UID] = len(out)
		out = append(out, o)
	}
	return out
}

// importTx writes one chunk inside tx: the connection is checked and held
// (lockActive), the objects' stored events are deleted with one statement
// and their new events inserted with multi-row statements, and with
// withLinks their links are upserted.
func (s *Store) importTx(ctx context.Context, tx *sql.Tx, connectionID string, objs []ImportedObject, withLinks bool) error {
	if err := s.lockActive(ctx, tx, connectionID); err != nil {
		return err
	}
	var privacy, direction string
	if err := tx.QueryRowContext(ctx, s.rebind("SELECT privacy, direction FROM connections WHERE id = ?"), connectionID).Scan(&privacy, &direction); err != nil {
		return notFound(err)
	}
	// An export-only connection has consent to write our copies, not to
	// read the person's calendar.
	if direction == DirectionExport && len(objs) > 0 {
		return fmt.Errorf("connection %s is export-only: %w", connectionID, ErrNotImporting)
	}
	uids := make([]string, len(objs))
	for i, o := range objs {
		uids[i] = o.UID
	}
	if err := s.deleteEventsTx(ctx, tx, connectionID, uids); err != nil {
		return err
	}
	if err := s.insertEventsTx(ctx, tx, connectionID, privacy, objs); err != nil {
		return err
	}
	if !withLinks {
		return nil
	}
	now := time.Now()
	links := make([]Link, len(objs))
	for i, o := range objs {
		l := o.Link
		l.ConnectionID, l.ItemKind, l.ItemID, l.UpdatedAt = connectionID, LinkEvent, o.UID, now
		links[i] = l
	}
	return s.upsertLinksTx(ctx, tx, links)
}

// deleteEventsTx deletes the stored occurrences of uids (at most
// ImportChunk of them: one statement).
func (s *Store) deleteEventsTx(ctx context.Context, tx *sql.Tx, connectionID string, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	args := append([]any{connectionID}, anys(uids)...)
	if _, err := tx.ExecContext(ctx, s.rebind("DELETE FROM external_events WHERE connection_id = ? AND uid IN ("+
		placeholders(len(uids))+")"), args...); err != nil {
		return fmt.Errorf("delete events: %w", err)
	}
	return nil
}

// eventCols are the columns insertEventsTx writes, in order.
const eventCols = `connection_id, uid, recurrence_id, start_at, end_at, all_day, time_zone, transparent,
	title, location, description, updated_at`

const eventColCount = 12

// insertEventsTx inserts the objects' events at the privacy level. Two
// events of one object with the same RecurrenceID: the later wins. The
// rows go in as few statements as the parameter limit allows.
//
// The upsert, rather than a plain insert after the delete, keeps two pulls
// of the same connection at once harmless: on PostgreSQL the other pull's
// rows committed after our delete started are updated, not a key
// violation.
func (s *Store) insertEventsTx(ctx context.Context, tx *sql.Tx, connectionID, privacy string, objs []ImportedObject) error {
	type key struct{ uid, rid string }
	now := time.Now().UnixMilli()
	var rows [][]any
	at := map[key]int{}
	for _, o := range objs {
		for _, e := range o.Events {
			e = atPrivacy(e, privacy)
			row := []any{connectionID, o.UID, e.RecurrenceID, ms(e.Start), ms(e.End), e.AllDay,
				e.TimeZone, e.Transparent, e.Title, e.Location, e.Description, now}
			k := key{o.UID, e.RecurrenceID}
			if i, dup := at[k]; dup {
				rows[i] = row
				continue
			}
			at[k] = len(rows)
			rows = append(rows, row)
		}
	}
	return s.insertRows(ctx, tx, "INSERT INTO external_events ("+eventCols+") VALUES ", eventColCount, rows,
		` ON CONFLICT (connection_id, uid, recurrence_id) DO UPDATE SET start_at = excluded.start_at,
			end_at = excluded.end_at, all_day = excluded.all_day, time_zone = excluded.time_zone,
			transparent = excluded.transparent, title = excluded.title, location = excluded.location,
			description = excluded.description, updated_at = excluded.updated_at`)
}

// linkColCount is the number of columns in linkCols.
const linkColCount = 9

// upsertLinksTx upserts links (whose kinds are valid and whose keys are
// distinct) with multi-row statements.
func (s *Store) upsertLinksTx(ctx context.Context, tx *sql.Tx, links []Link) error {
	rows := make([][]any, len(links))
	for i, l := range links {
		rows[i] = []any{l.ConnectionID, l.ItemKind, l.ItemID, l.RemoteID, l.RemoteHref, l.RemoteETag, l.ContentHash,
			l.SyncedVersion, ms(l.UpdatedAt)}
	}
	return s.insertRows(ctx, tx, "INSERT INTO links ("+linkCols+") VALUES ", linkColCount, rows,
		` ON CONFLICT (connection_id, item_kind, item_id) DO UPDATE SET remote_id = excluded.remote_id,
			remote_href = excluded.remote_href, remote_etag = excluded.remote_etag,
			content_hash = excluded.content_hash, synced_version = excluded.synced_version,
			updated_at = excluded.updated_at`)
}

// insertRows runs head + "(?, …), (?, …)" + tail for rows of cols values
// each, split into as few statements as the dialect's parameter limit
// allows. Full statements share their text, so PostgreSQL's statement
// cache prepares each shape once.
func (s *Store) insertRows(ctx context.Context, tx *sql.Tx, head string, cols int, rows [][]any, tail string) error {
	limit := maxParamsSQLite
	if s.dialect == DialectPostgres {
		limit = maxParamsPostgres
	}
	per := limit / cols
	tuple := "(" + placeholders(cols) + ")"
	for chunk := range slices.Chunk(rows, per) {
		var q strings.Builder
		q.Grow(len(head) + len(tail) + len(chunk)*(len(tuple)+2))
		q.WriteString(head)
		args := make([]any, 0, len(chunk)*cols)
		for i, r := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(tuple)
			args = append(args, r...)
		}
		q.WriteString(tail)
		if _, err := tx.ExecContext(ctx, s.rebind(q.String()), args...); err != nil {
			return fmt.Errorf("insert %d rows: %w", len(chunk), err)
		}
	}
	return nil
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return "?" + strings.Repeat(", ?", n-1)
}

// anys converts strings to statement arguments.
func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
