// Package googleremote is the sync engine's Remote for Google calendars:
// it turns the Calendar API (connectors/google) into sync.Changes, maps
// events to occurrences and appointments to events, keeps the OAuth
// tokens fresh (persisting refreshed ones, encrypted, through the store),
// and maps the API's errors to the engine's kinds.
//
// Objects are Google events listed with singleEvents, so every instance
// of a recurring series is an object of its own (named by its instance
// id, "<series>_<start>"); a cancelled instance is a deletion of that
// object. termind's copies carry private extended properties (PropKind,
// PropAppointment) and deterministic ids (EventID), so an insert repeated
// after a lost answer finds the first one instead of adding a second.
package googleremote

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"google.golang.org/api/calendar/v3"

	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/sync"
)

// The private extended properties that mark termind's events.
const (
	// PropKind is KindCopy on appointment copies, KindBlocker on busy
	// blockers.
	PropKind = "termind"
	// PropAppointment holds the appointment id (for blockers the
	// "blocker:" key the engine gave).
	PropAppointment = "termind_appointment"
	KindCopy        = "copy"
	KindBlocker     = "blocker"
	blockerPrefix   = "blocker:"
)

// Credentials is how a Google connection's token is stored (sealed).
type Credentials struct {
	RefreshToken string    `json:"refresh_token"`
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry"`
	Scopes       []string  `json:"scopes,omitempty"`
}

// CredentialsStore persists refreshed tokens (*store.Store).
type CredentialsStore interface {
	UpdateConnectionCredentials(ctx context.Context, id string, credentials []byte) error
}

// Config configures Factory. OAuth and Store are required.
type Config struct {
	OAuth      *google.OAuth
	Store      CredentialsStore
	APIURL     string       // "" is Google's
	HTTPClient *http.Client // nil: default transport
	Pacer      *google.Pacer
	Retry      google.Retry // zero: google.DefaultRetry
	PageSize   int          // 0: the most Google allows
	Logger     *slog.Logger
}

// Factory returns the engine's RemoteFactory for Google connections.
func Factory(cfg Config) sync.RemoteFactory {
	return func(conn store.Connection, credentials []byte) (sync.Remote, error) {
		return New(cfg, conn, credentials)
	}
}

// Remote is one Google calendar as the engine sees it.
type Remote struct {
	cal *google.Calendar
	log *slog.Logger
}

// New builds the Remote of a Google connection from its decrypted
// credentials.
func New(cfg Config, conn store.Connection, credentials []byte) (*Remote, error) {
	if cfg.OAuth == nil || cfg.Store == nil {
		return nil, errors.New("googleremote: OAuth and Store are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var cr Credentials
	if err := json.Unmarshal(credentials, &cr); err != nil {
		// The error text could quote the token: leave it out.
		return nil, errors.New("google credentials are not valid JSON")
	}
	tok := google.Token{AccessToken: cr.AccessToken, RefreshToken: cr.RefreshToken, TokenType: cr.TokenType,
		Expiry: cr.Expiry, Scopes: cr.Scopes}
	connID := conn.ID
	// Refreshes run inside API calls; the token they bring must be kept
	// even if that call's context ends, so they get their own.
	tokens := cfg.OAuth.TokenSource(context.Background(), tok, func(t google.Token) {
		b, err := json.Marshal(Credentials{RefreshToken: t.RefreshToken, AccessToken: t.AccessToken,
			TokenType: t.TokenType, Expiry: t.Expiry.UTC(), Scopes: t.Scopes})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = cfg.Store.UpdateConnectionCredentials(ctx, connID, b)
		}
		if err != nil {
			// The old refresh token still works unless Google rotated
			// it; the next refresh tries again.
			log.Warn("google: refreshed token not stored", "connection_id", connID, "err", err)
		}
	})
	cal, err := google.NewCalendar(context.Background(), google.CalendarConfig{
		APIURL: cfg.APIURL, HTTPClient: cfg.HTTPClient, Tokens: tokens, CalendarID: conn.CalendarURL,
		Pacer: cfg.Pacer, PaceKey: conn.ID, Retry: cfg.Retry, PageSize: cfg.PageSize,
	})
	if err != nil {
		return nil, err
	}
	return &Remote{cal: cal, log: log}, nil
}

// Calendar is the API client underneath, for push channels.
func (r *Remote) Calendar() *google.Calendar { return r.cal }

// Changes lists the calendar: with cursor (a sync token) what changed
// since, else every event in the window.
func (r *Remote) Changes(ctx context.Context, cursor string, w sync.Window) (sync.Changes, error) {
	l, err := r.cal.List(ctx, cursor, w.From, w.To)
	if err != nil {
		if errors.Is(err, google.ErrNotFound) {
			return sync.Changes{}, fmt.Errorf("googleremote: calendar not found: %w: %w", err, sync.ErrRefused)
		}
		return sync.Changes{}, fmt.Errorf("googleremote: %w", mapErr(err))
	}
	ch := sync.Changes{Full: cursor == "", Cursor: l.NextSyncToken}
	for _, ev := range l.Items {
		if ev.Status == "cancelled" {
			if ch.Full {
				continue // a full listing leaves deleted events out; nothing to do
			}
			ch.Deleted = append(ch.Deleted, ev.Id)
			if ev.RecurringEventId == "" {
				// Possibly a whole series: its instances go with it.
				ch.DeletedSeries = append(ch.DeletedSeries, ev.Id)
			}
			continue
		}
		ch.Items = append(ch.Items, decode(ev, &w))
		if ch.Full {
			ch.Present = append(ch.Present, ev.Id)
		}
	}
	return ch, nil
}

// Get reads one event. A deleted one is ErrNotFound: for the engine it
// is not there.
func (r *Remote) Get(ctx context.Context, name string) (sync.Item, error) {
	ev, err := r.cal.Get(ctx, name)
	if err != nil {
		return sync.Item{}, fmt.Errorf("googleremote: %w", mapErr(err))
	}
	if ev.Status == "cancelled" {
		return sync.Item{}, fmt.Errorf("googleremote: event deleted: %w", sync.ErrNotFound)
	}
	return decode(ev, nil), nil
}

// Put writes an event (data is Encode's JSON). With IfNoneMatch it is
// inserted under its id; if the id is taken — by our own insert whose
// answer was lost, or by a deleted event, whose id Google never frees —
// a deleted event is brought back with the new content and a live one
// is reported as ErrPrecondition, so the engine reads it and writes over
// it. With IfMatch it is updated while it has that etag.
func (r *Remote) Put(ctx context.Context, name string, data []byte, cond sync.Condition) (string, error) {
	var ev calendar.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return "", fmt.Errorf("googleremote: put %s: %w: %w", name, err, sync.ErrRefused)
	}
	ev.Id = name
	if cond.IfNoneMatch {
		out, err := r.cal.Insert(ctx, &ev)
		if err == nil {
			return out.Etag, nil
		}
		if !errors.Is(err, google.ErrDuplicate) {
			return "", fmt.Errorf("googleremote: insert: %w", mapErr(err))
		}
		cur, gerr := r.cal.Get(ctx, name)
		if gerr != nil {
			return "", fmt.Errorf("googleremote: insert: read existing: %w", mapErr(gerr))
		}
		if cur.Status != "cancelled" {
			return "", fmt.Errorf("googleremote: insert: event exists: %w", sync.ErrPrecondition)
		}
		cond = sync.Condition{IfMatch: cur.Etag}
	}
	out, err := r.cal.Update(ctx, name, &ev, cond.IfMatch)
	if err != nil {
		if errors.Is(err, google.ErrNotFound) || errors.Is(err, google.ErrDeleted) {
			return "", fmt.Errorf("googleremote: update: %w: %w", err, sync.ErrPrecondition)
		}
		return "", fmt.Errorf("googleremote: update: %w", mapErr(err))
	}
	return out.Etag, nil
}

// Delete deletes the event while it has etag; a missing or deleted one
// is not an error.
func (r *Remote) Delete(ctx context.Context, name, etag string) error {
	err := r.cal.Delete(ctx, name, etag)
	if err == nil || errors.Is(err, google.ErrNotFound) || errors.Is(err, google.ErrDeleted) {
		return nil
	}
	return fmt.Errorf("googleremote: delete: %w", mapErr(err))
}

// RemoveOurCopies deletes every event marked as termind's (copies and
// blockers) and returns how many went: the cleanup of a revocation.
func (r *Remote) RemoveOurCopies(ctx context.Context) (int, error) {
	n := 0
	for _, kind := range []string{KindCopy, KindBlocker} {
		evs, err := r.cal.ListMarked(ctx, PropKind, kind)
		if err != nil {
			return n, fmt.Errorf("googleremote: list our copies: %w", mapErr(err))
		}
		for _, ev := range evs {
			if err := r.Delete(ctx, ev.Id, ""); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// EventID is the Google event id of termind's copy of an appointment:
// base32hex (Google's allowed alphabet, a–v and 0–9) of a SHA-256 of
// tenant and appointment id. Deterministic, so a repeated insert is a
// 409 instead of a duplicate; the tenant is part of it so that two
// platforms writing into one person's calendar never share an id.
func EventID(tenantID, appointmentID string) string {
	sum := sha256.Sum256([]byte(tenantID + "\x00" + appointmentID))
	return strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}

// Encode returns termind's copy of an appointment: event id, the event
// as JSON, and its content hash. No attendees, ever: Google would send
// invitations.
func (r *Remote) Encode(a store.Appointment) (string, []byte, string, error) {
	ev, err := Event(a)
	if err != nil {
		return "", nil, "", err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return "", nil, "", fmt.Errorf("googleremote: encode: %w", err)
	}
	return ev.Id, data, contentHash(ev), nil
}

// Event is the Google event of an appointment's copy.
func Event(a store.Appointment) (*calendar.Event, error) {
	kind := KindCopy
	if strings.HasPrefix(a.ID, blockerPrefix) {
		kind = KindBlocker
	}
	ev := &calendar.Event{
		Id:           EventID(a.TenantID, a.ID),
		Summary:      a.Title,
		Location:     a.Location,
		Description:  a.Description,
		Status:       "confirmed",
		Transparency: "opaque",
		ExtendedProperties: &calendar.EventExtendedProperties{
			Private: map[string]string{PropKind: kind, PropAppointment: a.ID},
		},
		GuestsCanInviteOthers: googleFalse(),
	}
	if a.AllDay {
		if a.StartDate == "" || a.EndDate == "" {
			return nil, fmt.Errorf("googleremote: encode %s: all-day without dates", a.ID)
		}
		ev.Start = &calendar.EventDateTime{Date: a.StartDate}
		ev.End = &calendar.EventDateTime{Date: a.EndDate}
		return ev, nil
	}
	zone := a.TimeZone
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("googleremote: encode %s: zone %q: %w", a.ID, zone, err)
	}
	ev.Start = &calendar.EventDateTime{DateTime: a.Start.In(loc).Format(time.RFC3339), TimeZone: zone}
	ev.End = &calendar.EventDateTime{DateTime: a.End.In(loc).Format(time.RFC3339), TimeZone: zone}
	return ev, nil
}

// googleFalse is a *bool false that the JSON encoder keeps.
func googleFalse() *bool { f := false; return &f }

// decode maps an event to an Item; with w, the occurrence in the window.
func decode(ev *calendar.Event, w *sync.Window) sync.Item {
	it := sync.Item{Name: ev.Id, ETag: ev.Etag, UIDs: []string{ev.Id}, Hash: contentHash(ev)}
	if p := ev.ExtendedProperties; p != nil && p.Private[PropKind] != "" {
		it.Ours = true
		// For blockers "blocker:<key>", as the engine named them.
		it.AppointmentID = p.Private[PropAppointment]
		return it
	}
	if w == nil {
		return it
	}
	o, ok := occurrence(ev)
	if ok && o.Start.Before(w.To) && o.End.After(w.From) {
		it.Occurrences = []sync.Occurrence{o}
	}
	return it
}

// occurrence is the instance an event (singleEvents) stands for.
func occurrence(ev *calendar.Event) (sync.Occurrence, bool) {
	start, allDay, ok := instant(ev.Start)
	if !ok {
		return sync.Occurrence{}, false
	}
	end, _, ok := instant(ev.End)
	if !ok || end.Before(start) {
		end = start
	}
	o := sync.Occurrence{
		UID: ev.Id, Start: start, End: end, AllDay: allDay,
		Transparent: ev.Transparency == "transparent",
		Title:       ev.Summary, Location: ev.Location, Description: ev.Description,
	}
	if ev.Start.TimeZone != "" {
		o.TimeZone = ev.Start.TimeZone
	}
	if ev.RecurringEventId != "" && ev.OriginalStartTime != nil {
		if t, _, ok := instant(ev.OriginalStartTime); ok {
			o.RecurrenceID = t.UTC().Format("20060102T150405Z")
		}
	}
	return o, true
}

// instant reads a start or end: a date (all-day, midnight UTC) or an
// RFC 3339 date-time.
func instant(d *calendar.EventDateTime) (time.Time, bool, bool) {
	if d == nil {
		return time.Time{}, false, false
	}
	if d.Date != "" {
		t, err := time.Parse(time.DateOnly, d.Date)
		return t, true, err == nil
	}
	t, err := time.Parse(time.RFC3339, d.DateTime)
	return t.UTC(), false, err == nil
}

// contentHash covers what termind writes, normalised the way Google
// hands it back (an instant in whatever offset, the default
// transparency left out), so that a copy Google merely reformatted
// hashes the same and one somebody edited does not.
func contentHash(ev *calendar.Event) string {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s;", len(s), s) }
	when := func(d *calendar.EventDateTime) {
		if d == nil {
			field("")
			return
		}
		if d.Date != "" {
			field("date " + d.Date)
			return
		}
		t, _, _ := instant(d)
		field(fmt.Sprint(t.Unix()) + " " + d.TimeZone)
	}
	kind, appt := "", ""
	if p := ev.ExtendedProperties; p != nil {
		kind, appt = p.Private[PropKind], p.Private[PropAppointment]
	}
	transparency := ev.Transparency
	if transparency == "" {
		transparency = "opaque"
	}
	status := ev.Status
	if status == "" {
		status = "confirmed"
	}
	for _, s := range []string{kind, appt, ev.Summary, ev.Location, ev.Description, transparency, status} {
		field(s)
	}
	when(ev.Start)
	when(ev.End)
	field(fmt.Sprint(len(ev.Attendees)))
	return hex.EncodeToString(h.Sum(nil))
}

// mapErr adds the engine's kind to a connector error.
func mapErr(err error) error {
	var kind error
	switch {
	case errors.Is(err, google.ErrSyncTokenExpired):
		kind = sync.ErrCursorInvalid
	case errors.Is(err, google.ErrConditionNotMet), errors.Is(err, google.ErrDuplicate):
		kind = sync.ErrPrecondition
	case errors.Is(err, google.ErrNotFound), errors.Is(err, google.ErrDeleted):
		kind = sync.ErrNotFound
	case errors.Is(err, google.ErrInvalidGrant), errors.Is(err, google.ErrUnauthorized):
		kind = sync.ErrCredentialsRejected
	case errors.Is(err, google.ErrQuotaExceeded):
		kind = sync.ErrQuotaExceeded
	case temporary(err):
		kind = sync.ErrUnavailable
	default:
		kind = sync.ErrRefused
	}
	return fmt.Errorf("%w: %w", err, kind)
}

// temporary: a rate limit, a 5xx, no answer — or an OAuth failure other
// than invalid_grant (a misconfigured client is for the operator to fix;
// the sync resumes once it is).
func temporary(err error) bool {
	var oe *google.OAuthError
	if errors.As(err, &oe) {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
