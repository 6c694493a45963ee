package caldav

// Reading a calendar for pull sync: RFC 6578 sync-collection (with the
// calendar data in the same REPORT where the server returns it),
// calendar-multiget, a PROPFIND listing of ETags for servers without
// sync-collection, the collection's CTag, and GET of one event.

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/emersion/go-ical"
)

// ErrSyncTokenInvalid: the server no longer accepts the sync token
// (RFC 6578 3.2: 403 or 409 with DAV:valid-sync-token, or 410 Gone).
// Start again with an empty token, which lists the whole calendar.
var ErrSyncTokenInvalid = errors.New("caldav: sync token no longer valid")

// ErrSyncUnsupported: the server does not offer the sync-collection
// report on this calendar. Use CTag and List instead.
var ErrSyncUnsupported = errors.New("caldav: sync-collection not supported")

// ErrEventNotFound: the event resource does not exist (GetEvent).
var ErrEventNotFound = errors.New("caldav: event not found")

// Limits of the sync reads.
const (
	// MultigetChunk is how many resources one calendar-multiget asks for.
	MultigetChunk = 200
	// MaxSyncRounds bounds how often SyncCollection follows a truncated
	// answer (507 on the collection) with the token it got.
	MaxSyncRounds = 1000
)

// Object is one calendar object resource as the server holds it.
type Object struct {
	Name string // resource name in the collection
	Href string // path as the server reported it
	ETag string // as the server gave it, quotes included
	Data []byte // the iCalendar object
}

// Change is one resource that SyncCollection reports as new or changed
// (or, with an empty token, present). Data is set when the server sent
// the calendar data along; otherwise fetch it with Multiget.
type Change struct {
	Name string
	Href string
	ETag string
	Data []byte
}

// SyncResult is what changed in the calendar since a sync token.
type SyncResult struct {
	// Changed lists new and changed resources; with an empty token,
	// every resource in the calendar.
	Changed []Change
	// Deleted lists the names of resources removed since the token
	// (always empty for an empty token).
	Deleted []string
	// Token is the token to ask with next time.
	Token string
}

// SyncCollection asks the server what changed since token ("" for
// everything) with the RFC 6578 sync-collection REPORT, sync-level 1,
// asking for each resource's ETag and calendar data. A truncated answer
// (507 on the collection itself) is followed with the token it carries
// until the server has reported everything; a resource reported several
// times counts as its last report says.
//
// Failures: ErrSyncTokenInvalid (start again with ""), ErrSyncUnsupported
// (use CTag and List), and those of PutEvent.
func (c *Client) SyncCollection(ctx context.Context, token string) (SyncResult, error) {
	const step = "reading changes"
	if c.err != nil {
		return SyncResult{}, c.err
	}
	changed := map[string]Change{}
	deleted := map[string]bool{}
	var order []string
	for range MaxSyncRounds {
		ms, err := c.syncRound(ctx, step, token)
		if err != nil {
			return SyncResult{}, err
		}
		truncated := false
		for _, r := range ms.Responses {
			if samePath(hrefPath(r.Href), c.cal.Path) {
				// The collection itself: 507 says more is to come.
				if statusCode(r.Status) == http.StatusInsufficientStorage {
					truncated = true
				}
				continue
			}
			name, ok := c.nameOf(r.Href)
			if !ok {
				continue
			}
			if _, seen := changed[name]; !seen && !deleted[name] {
				order = append(order, name)
			}
			if code := statusCode(r.Status); code == http.StatusNotFound || code == http.StatusGone {
				delete(changed, name)
				deleted[name] = true
				continue
			}
			p := r.props()
			delete(deleted, name)
			ch := Change{Name: name, Href: r.Href, ETag: p.GetETag}
			if p.CalendarData != "" {
				ch.Data = []byte(p.CalendarData)
			}
			changed[name] = ch
		}
		if ms.SyncToken == "" {
			return SyncResult{}, newError(ErrNotCalDAV, step+": the server's answer has no sync token", nil)
		}
		next := ms.SyncToken
		if !truncated || next == token {
			var res SyncResult
			for _, name := range order {
				if ch, ok := changed[name]; ok {
					res.Changed = append(res.Changed, ch)
				} else if deleted[name] && token != "" {
					res.Deleted = append(res.Deleted, name)
				}
			}
			res.Token = next
			return res, nil
		}
		token = next
	}
	return SyncResult{}, newError(ErrUnreachable, step+": the server kept truncating its answer", nil)
}

type syncMultistatus struct {
	XMLName   xml.Name       `xml:"DAV: multistatus"`
	Responses []syncResponse `xml:"DAV: response"`
	SyncToken string         `xml:"DAV: sync-token"`
}

type syncResponse struct {
	davResponse
	Status string `xml:"DAV: status"`
}

// syncRound sends one sync-collection REPORT.
func (c *Client) syncRound(ctx context.Context, step, token string) (*syncMultistatus, error) {
	var tok bytes.Buffer
	_ = xml.EscapeText(&tok, []byte(token)) // writes to memory, cannot fail
	body := `<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">` +
		`<D:sync-token>` + tok.String() + `</D:sync-token><D:sync-level>1</D:sync-level>` +
		`<D:prop><D:getetag/><C:calendar-data/></D:prop></D:sync-collection>`
	// RFC 6578 3.2: the report is defined for Depth 0; sync-level says
	// how deep it goes.
	h := http.Header{
		"Content-Type": {"application/xml; charset=utf-8"},
		"Depth":        {"0"},
	}
	resp, err := c.do(ctx, "REPORT", c.cal, h, []byte(body))
	if err != nil {
		return nil, classify(ctx, step, err, 0)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		return nil, classifySyncStatus(step, resp, token != "")
	}
	var ms syncMultistatus
	if err := xml.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return nil, classify(ctx, step, fmt.Errorf("caldav: sync-collection: decode: %w", err), resp.StatusCode)
	}
	return &ms, nil
}

// classifySyncStatus tells an invalid token and a missing report from the
// failures every request can have.
func classifySyncStatus(step string, resp *http.Response, withToken bool) error {
	status := resp.StatusCode
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	reason := fmt.Sprintf("%s: the server answered %s", step, statusText(status))
	switch {
	case status == http.StatusGone && withToken,
		(status == http.StatusForbidden || status == http.StatusConflict) && bytes.Contains(body, []byte("valid-sync-token")):
		return newError(ErrSyncTokenInvalid, reason, nil)
	case status == http.StatusForbidden && bytes.Contains(body, []byte("supported-report")),
		status == http.StatusBadRequest, status == http.StatusMethodNotAllowed,
		status == http.StatusUnsupportedMediaType, status == http.StatusNotImplemented:
		return newError(ErrSyncUnsupported, reason, nil)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return classifyStatus(step, resp)
}

// Multiget reads the resources names with calendar-multiget REPORTs of at
// most MultigetChunk resources each. Resources that do not exist (any
// more) are left out of the answer. Failures are those of PutEvent.
func (c *Client) Multiget(ctx context.Context, names []string) ([]Object, error) {
	const step = "reading events"
	if c.err != nil {
		return nil, c.err
	}
	var out []Object
	for len(names) > 0 {
		chunk := names[:min(len(names), MultigetChunk)]
		names = names[len(chunk):]
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?>
<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">` +
			`<D:prop><D:getetag/><C:calendar-data/></D:prop>`)
		for _, name := range chunk {
			u, err := c.resourceURL(name)
			if err != nil {
				return nil, err
			}
			b.WriteString("<D:href>")
			_ = xml.EscapeText(&b, []byte(u.EscapedPath()))
			b.WriteString("</D:href>")
		}
		b.WriteString(`</C:calendar-multiget>`)
		ms, err := c.report(ctx, step, "1", b.String())
		if err != nil {
			return nil, err
		}
		for _, r := range ms.Responses {
			name, ok := c.nameOf(r.Href)
			if !ok {
				continue
			}
			p := r.props()
			if p.CalendarData == "" {
				continue // 404 for this href, or not a calendar object
			}
			out = append(out, Object{Name: name, Href: r.Href, ETag: p.GetETag, Data: []byte(p.CalendarData)})
		}
	}
	return out, nil
}

// report sends a REPORT to the collection and decodes the multi-status.
func (c *Client) report(ctx context.Context, step, depth, body string) (*multistatus, error) {
	h := http.Header{
		"Content-Type": {"application/xml; charset=utf-8"},
		"Depth":        {depth},
	}
	resp, err := c.do(ctx, "REPORT", c.cal, h, []byte(body))
	if err != nil {
		return nil, classify(ctx, step, err, 0)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		return nil, classifyStatus(step, resp)
	}
	var ms multistatus
	if err := xml.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return nil, classify(ctx, step, fmt.Errorf("caldav: report: decode: %w", err), resp.StatusCode)
	}
	return &ms, nil
}

// propfind sends a PROPFIND to the collection and decodes the multi-status.
func (c *Client) propfind(ctx context.Context, step, depth, body string) (*multistatus, error) {
	h := http.Header{
		"Content-Type": {"application/xml; charset=utf-8"},
		"Depth":        {depth},
	}
	resp, err := c.do(ctx, "PROPFIND", c.cal, h, []byte(body))
	if err != nil {
		return nil, classify(ctx, step, err, 0)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		return nil, classifyStatus(step, resp)
	}
	var ms multistatus
	if err := xml.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return nil, classify(ctx, step, fmt.Errorf("caldav: propfind: decode: %w", err), resp.StatusCode)
	}
	return &ms, nil
}

const listPropfind = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>`

const ctagPropfind = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop>` +
	`<CS:getctag/><D:sync-token/></D:prop></D:propfind>`

// Listed is one resource in a List answer.
type Listed struct {
	Name string
	Href string
	ETag string
}

// List lists the resources in the calendar with their ETags (PROPFIND,
// Depth 1), for servers without sync-collection. Failures are those of
// PutEvent.
func (c *Client) List(ctx context.Context) ([]Listed, error) {
	const step = "listing events"
	if c.err != nil {
		return nil, c.err
	}
	ms, err := c.propfind(ctx, step, "1", listPropfind)
	if err != nil {
		return nil, err
	}
	var out []Listed
	for _, r := range ms.Responses {
		name, ok := c.nameOf(r.Href)
		if !ok {
			continue
		}
		p := r.props()
		if p.GetETag == "" {
			continue // a sub-collection, or nothing we can track
		}
		out = append(out, Listed{Name: name, Href: r.Href, ETag: p.GetETag})
	}
	return out, nil
}

// CTag returns the calendar's change tag (CalendarServer getctag, or the
// sync token when the server has no ctag): it changes whenever anything
// in the calendar does. "" if the server reports neither.
func (c *Client) CTag(ctx context.Context) (string, error) {
	const step = "reading the calendar's change tag"
	if c.err != nil {
		return "", c.err
	}
	ms, err := c.propfind(ctx, step, "0", ctagPropfind)
	if err != nil {
		return "", err
	}
	for _, r := range ms.Responses {
		p := r.props()
		if p.CTag != "" {
			return p.CTag, nil
		}
		if p.SyncToken != "" {
			return p.SyncToken, nil
		}
	}
	return "", nil
}

// GetEvent reads one resource. Failures: ErrEventNotFound, and those of
// PutEvent.
func (c *Client) GetEvent(ctx context.Context, name string) (Object, error) {
	const step = "reading the event"
	u, err := c.resourceURL(name)
	if err != nil {
		return Object{}, err
	}
	resp, err := c.do(ctx, http.MethodGet, u, http.Header{"Accept": {"text/calendar"}}, nil)
	if err != nil {
		return Object{}, classify(ctx, step, err, 0)
	}
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusGone:
		return Object{}, newError(ErrEventNotFound, fmt.Sprintf("%s: the server answered %s", step, statusText(resp.StatusCode)), nil)
	case resp.StatusCode/100 != 2:
		return Object{}, classifyStatus(step, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxObjectBytes+1))
	if err != nil {
		return Object{}, classify(ctx, step, err, 0)
	}
	if len(data) > MaxObjectBytes {
		return Object{}, newError(ErrRefused, step+": the event is too large", nil)
	}
	return Object{Name: name, Href: u.EscapedPath(), ETag: resp.Header.Get("ETag"), Data: data}, nil
}

// ObjectMarker returns the value of MarkerProperty on the first VEVENT of
// cal that has one: the appointment id of termind's copy, or "" for an
// event that is not ours.
func ObjectMarker(cal *ical.Calendar) string {
	if cal == nil {
		return ""
	}
	for _, comp := range cal.Children {
		if comp.Name != ical.CompEvent {
			continue
		}
		if p := comp.Props.Get(MarkerProperty); p != nil && strings.TrimSpace(p.Value) != "" {
			return strings.TrimSpace(p.Value)
		}
	}
	return ""
}

// ObjectUIDs returns the distinct UIDs of the VEVENTs in cal, in order.
func ObjectUIDs(cal *ical.Calendar) []string {
	if cal == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, comp := range cal.Children {
		if comp.Name != ical.CompEvent {
			continue
		}
		p := comp.Props.Get(ical.PropUID)
		if p == nil {
			continue
		}
		uid := strings.TrimSpace(p.Value)
		if uid != "" && !seen[uid] {
			seen[uid] = true
			out = append(out, uid)
		}
	}
	return out
}

// statusCode reads the code of a DAV:status line ("HTTP/1.1 404 Not
// Found"); 0 if there is none.
func statusCode(s string) int {
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0
	}
	n := 0
	for _, r := range f[1] {
		if r < '0' || r > '9' {
			return 0
		}
		n = n*10 + int(r-'0')
	}
	return n
}

// hrefPath is the path of an href, absolute or not.
func hrefPath(href string) string {
	u, err := url.Parse(strings.TrimSpace(href))
	if err != nil {
		return ""
	}
	return u.Path
}
