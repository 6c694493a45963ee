// Package caldavremote is the sync engine's Remote for CalDAV calendars:
// it turns the connector's reads (sync-collection, or CTag and ETag
// listing where the server lacks it) into sync.Changes, decodes objects
// into occurrences, and maps the connector's errors to the engine's kinds.
package caldavremote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/sync"
)

// Cursor prefixes: which way the calendar is followed.
const (
	cursorSync = "sync:" // RFC 6578 sync token
	cursorCTag = "ctag:" // CalendarServer ctag, with ETag listing
)

// Credentials is how a CalDAV connection's credentials are stored.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Factory returns the engine's RemoteFactory for CalDAV connections. hc
// must come from caldav.NewHTTPClient: the address rules for URLs typed
// in by users live there.
func Factory(hc *http.Client, log *slog.Logger) sync.RemoteFactory {
	if log == nil {
		log = slog.Default()
	}
	listings := &listingCache{m: map[string]listing{}}
	return func(conn store.Connection, credentials []byte) (sync.Remote, error) {
		var cr Credentials
		if err := json.Unmarshal(credentials, &cr); err != nil {
			// The error text could quote the credentials: leave it out.
			return nil, errors.New("caldav credentials are not valid JSON")
		}
		r := New(caldav.NewClient(hc, conn.CalendarURL, cr.Username, cr.Password), log)
		r.listings, r.key = listings, conn.ID+" "+conn.CalendarURL
		return r, nil
	}
}

// Remote is one CalDAV calendar as the engine sees it.
type Remote struct {
	c   *caldav.Client
	log *slog.Logger
	// listings (nil: none kept) holds the ETag listing of the last ctag
	// pull of each calendar, under key.
	listings *listingCache
	key      string
}

// listing is the ETags by name a ctag pull returned with its cursor.
type listing struct {
	ctag  string
	etags map[string]string
}

// listingCache keeps, per calendar, the listing of the last ctag pull, so
// that the next pull after a change fetches only the objects whose ETag
// changed and reports the ones gone. A listing is used only with the
// cursor it was returned with: a pull whose result was not recorded
// leaves the older cursor, which then lists and fetches everything.
type listingCache struct {
	mu gosync.Mutex
	m  map[string]listing
}

// previous returns the ETags listed with the cursor ctag, if kept.
func (r *Remote) previous(ctag string) (map[string]string, bool) {
	if r.listings == nil || ctag == "" {
		return nil, false
	}
	r.listings.mu.Lock()
	defer r.listings.mu.Unlock()
	l, ok := r.listings.m[r.key]
	if !ok || l.ctag != ctag {
		return nil, false
	}
	return l.etags, true
}

func (r *Remote) remember(ctag string, etags map[string]string) {
	if r.listings == nil {
		return
	}
	r.listings.mu.Lock()
	defer r.listings.mu.Unlock()
	if ctag == "" {
		delete(r.listings.m, r.key)
		return
	}
	r.listings.m[r.key] = listing{ctag: ctag, etags: etags}
}

// New wraps a connector client.
func New(c *caldav.Client, log *slog.Logger) *Remote {
	if log == nil {
		log = slog.Default()
	}
	return &Remote{c: c, log: log}
}

// Changes follows the calendar with sync-collection; when the server does
// not offer it, with its CTag and an ETag listing on every change, from
// which only the objects whose ETag changed are fetched (all of them
// when the previous listing is not at hand).
func (r *Remote) Changes(ctx context.Context, cursor string, w sync.Window) (sync.Changes, error) {
	switch {
	case cursor == "":
		ch, err := r.syncChanges(ctx, "", w)
		if errors.Is(err, caldav.ErrSyncUnsupported) {
			return r.ctagChanges(ctx, "", w)
		}
		return ch, mapErr(err)
	case strings.HasPrefix(cursor, cursorSync):
		ch, err := r.syncChanges(ctx, strings.TrimPrefix(cursor, cursorSync), w)
		if errors.Is(err, caldav.ErrSyncUnsupported) {
			return sync.Changes{}, fmt.Errorf("%w: %w", sync.ErrCursorInvalid, err)
		}
		return ch, mapErr(err)
	case strings.HasPrefix(cursor, cursorCTag):
		return r.ctagChanges(ctx, strings.TrimPrefix(cursor, cursorCTag), w)
	}
	return sync.Changes{}, fmt.Errorf("caldav: cursor %.20q: %w", cursor, sync.ErrCursorInvalid)
}

func (r *Remote) syncChanges(ctx context.Context, token string, w sync.Window) (sync.Changes, error) {
	res, err := r.c.SyncCollection(ctx, token)
	if err != nil {
		return sync.Changes{}, err
	}
	out := sync.Changes{Full: token == "", Deleted: res.Deleted, Cursor: cursorSync + res.Token}
	var missing []string
	var objs []caldav.Object
	for _, ch := range res.Changed {
		if out.Full {
			out.Present = append(out.Present, ch.Name)
		}
		if ch.Data == nil {
			missing = append(missing, ch.Name)
			continue
		}
		objs = append(objs, caldav.Object(ch))
	}
	if len(missing) > 0 {
		more, err := r.c.Multiget(ctx, missing)
		if err != nil {
			return sync.Changes{}, err
		}
		objs = append(objs, more...)
	}
	out.Items = r.decodeAll(objs, w)
	return out, nil
}

func (r *Remote) ctagChanges(ctx context.Context, last string, w sync.Window) (sync.Changes, error) {
	tag, err := r.c.CTag(ctx)
	if err != nil {
		return sync.Changes{}, mapErr(err)
	}
	if last != "" && tag != "" && tag == last {
		return sync.Changes{Cursor: cursorCTag + tag}, nil
	}
	listed, err := r.c.List(ctx)
	if err != nil {
		return sync.Changes{}, mapErr(err)
	}
	prev, incremental := r.previous(last)
	out := sync.Changes{Full: !incremental, Cursor: cursorCTag + tag}
	names := make([]string, 0, len(listed))
	etags := make(map[string]string, len(listed))
	var fetch []string
	for _, l := range listed {
		names = append(names, l.Name)
		etags[l.Name] = l.ETag
		if !incremental || prev[l.Name] != l.ETag {
			fetch = append(fetch, l.Name)
		}
	}
	if incremental {
		for name := range prev {
			if _, ok := etags[name]; !ok {
				out.Deleted = append(out.Deleted, name)
			}
		}
		slices.Sort(out.Deleted)
	} else {
		out.Present = names
	}
	objs, err := r.c.Multiget(ctx, fetch)
	if err != nil {
		return sync.Changes{}, mapErr(err)
	}
	for _, o := range objs {
		if o.ETag != "" {
			etags[o.Name] = o.ETag // what was imported, if it changed since the listing
		}
	}
	out.Items = r.decodeAll(objs, w)
	if tag == "" {
		// Without a ctag every pull lists everything.
		out.Cursor = cursorCTag
	}
	r.remember(tag, etags)
	return out, nil
}

func (r *Remote) decodeAll(objs []caldav.Object, w sync.Window) []sync.Item {
	out := make([]sync.Item, 0, len(objs))
	for _, o := range objs {
		it, err := decode(o, w)
		if err != nil {
			// One broken object must not stop the calendar's sync; it
			// stays present (nothing imported from it is removed).
			r.log.Warn("caldav sync: object skipped", "name", o.Name, "err", err)
			continue
		}
		out = append(out, it)
	}
	return out
}

// decode parses an object; with a window, it expands its occurrences.
func decode(o caldav.Object, w sync.Window) (sync.Item, error) {
	cal, err := caldav.ParseObject(o.Data)
	if err != nil {
		return sync.Item{}, err
	}
	hash, err := caldav.ContentHash(o.Data)
	if err != nil {
		return sync.Item{}, err
	}
	it := sync.Item{Name: o.Name, Href: o.Href, ETag: o.ETag, Hash: hash, UIDs: caldav.ObjectUIDs(cal)}
	if id := caldav.ObjectMarker(cal); id != "" {
		it.Ours, it.AppointmentID = true, id
		return it, nil // never imported: no occurrences needed
	}
	if w.From.IsZero() || !w.To.After(w.From) {
		return it, nil
	}
	occs, err := caldav.Occurrences(cal, w.From, w.To, nil)
	var skipped *caldav.SkippedError
	if err != nil && !errors.As(err, &skipped) {
		return sync.Item{}, err
	}
	for _, oc := range occs {
		if oc.Ours {
			continue
		}
		it.Occurrences = append(it.Occurrences, sync.Occurrence{
			UID: oc.UID, RecurrenceID: oc.RecurrenceID, Start: oc.Start, End: oc.End, AllDay: oc.AllDay,
			TimeZone: oc.TimeZone, Transparent: oc.Transparent, Cancelled: oc.Cancelled,
			Title: oc.Title, Location: oc.Location, Description: oc.Description,
		})
	}
	return it, nil
}

// Get reads one object, without occurrences.
func (r *Remote) Get(ctx context.Context, name string) (sync.Item, error) {
	o, err := r.c.GetEvent(ctx, name)
	if err != nil {
		return sync.Item{}, mapErr(err)
	}
	it, err := decode(o, sync.Window{})
	if err != nil {
		// Unreadable, but there: the ETag is what a writer needs.
		return sync.Item{Name: name, ETag: o.ETag}, nil
	}
	return it, nil
}

// Put writes an object; when the server does not say the new ETag, it is
// read back.
func (r *Remote) Put(ctx context.Context, name string, data []byte, cond sync.Condition) (string, error) {
	etag, err := r.c.PutEvent(ctx, name, data, caldav.Condition{IfMatch: cond.IfMatch, IfNoneMatch: cond.IfNoneMatch})
	if err != nil {
		return "", mapErr(err)
	}
	if etag == "" {
		o, err := r.c.GetEvent(ctx, name)
		if err != nil {
			return "", mapErr(err)
		}
		etag = o.ETag
	}
	return etag, nil
}

// Delete removes an object while it has etag.
func (r *Remote) Delete(ctx context.Context, name, etag string) error {
	return mapErr(r.c.DeleteEvent(ctx, name, etag))
}

// Encode returns our copy of the appointment.
func (r *Remote) Encode(a store.Appointment) (string, []byte, string, error) {
	ca := caldav.Appointment{
		ID: a.ID, Title: a.Title, Location: a.Location, Description: a.Description,
		TimeZone: a.TimeZone, Start: a.Start, End: a.End,
		AllDay: a.AllDay, StartDate: a.StartDate, EndDate: a.EndDate,
		Status: a.Status, Sequence: a.Version, Updated: a.UpdatedAt,
	}
	if ca.Updated.IsZero() {
		ca.Updated = time.Unix(0, 0).UTC()
	}
	data, err := caldav.EncodeAppointment(ca)
	if err != nil {
		return "", nil, "", err
	}
	hash, err := caldav.ContentHash(data)
	if err != nil {
		return "", nil, "", err
	}
	return caldav.EventName(a.ID), data, hash, nil
}

// mapErr adds the engine's kind to a connector error.
func mapErr(err error) error {
	var kind error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, caldav.ErrSyncTokenInvalid):
		kind = sync.ErrCursorInvalid
	case errors.Is(err, caldav.ErrPreconditionFailed):
		kind = sync.ErrPrecondition
	case errors.Is(err, caldav.ErrEventNotFound):
		kind = sync.ErrNotFound
	case errors.Is(err, caldav.ErrCredentialsRejected):
		kind = sync.ErrCredentialsRejected
	case errors.Is(err, caldav.ErrUnreachable):
		kind = sync.ErrUnavailable
	case errors.Is(err, caldav.ErrRefused), errors.Is(err, caldav.ErrCalendarNotFound),
		errors.Is(err, caldav.ErrForbiddenAddress), errors.Is(err, caldav.ErrInvalidURL),
		errors.Is(err, caldav.ErrNotCalDAV), errors.Is(err, caldav.ErrSyncUnsupported):
		kind = sync.ErrRefused
	default:
		return err // the context's end, mostly
	}
	return fmt.Errorf("%w: %w", kind, err)
}
