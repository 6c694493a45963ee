package caldav

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/emersion/go-ical"
)

// How termind's own copies of appointments are recognised in a calendar.
// The names are derived from the appointment id, so writing the same
// appointment twice addresses the same resource; the marker property is
// what tells our copies from the user's own events, whatever their name.
const (
	// MarkerProperty is set on every VEVENT termind writes; its value is
	// the appointment id.
	MarkerProperty = "X-TERMIND-APPOINTMENT"

	uidPrefix  = "termind-"
	uidSuffix  = "@termind"
	namePrefix = "termind-"
	nameSuffix = ".ics"
)

// EventUID is the iCalendar UID of our copy of an appointment:
// termind-<appointment id>@termind.
func EventUID(appointmentID string) string { return uidPrefix + appointmentID + uidSuffix }

// EventName is the resource name of our copy of an appointment inside the
// calendar collection: termind-<appointment id>.ics.
func EventName(appointmentID string) string { return namePrefix + appointmentID + nameSuffix }

// ErrPreconditionFailed: the server answered 412 to a conditional write.
// With If-None-Match the resource exists already; with If-Match it was
// changed or deleted since that ETag was read. Re-read and decide again.
var ErrPreconditionFailed = errors.New("caldav: precondition failed")

// ErrRefused: the server refused a request for a reason that trying again
// will not change (a 4xx other than 401, 403, 404 and 412: the event was
// malformed, too large, or its UID is taken by another resource).
var ErrRefused = errors.New("caldav: request refused by the server")

// Condition makes a write conditional. The zero value writes
// unconditionally.
type Condition struct {
	// IfMatch sends If-Match: the write succeeds only while the resource
	// still has this ETag (as the server gave it, quotes included).
	IfMatch string
	// IfNoneMatch sends If-None-Match: *: the write only creates, it never
	// replaces an existing resource.
	IfNoneMatch bool
}

// Resource is one event resource in the calendar that carries our marker.
type Resource struct {
	Name          string // resource name in the collection, e.g. termind-42.ics
	Href          string // path as the server reported it
	ETag          string // as the server gave it, quotes included
	AppointmentID string // the marker's value
}

// Client reads and writes events in one connected calendar collection.
// It is safe for concurrent use.
type Client struct {
	hc       *http.Client
	cal      *url.URL // collection URL, with a trailing slash
	err      error    // set when the arguments to NewClient were unusable
	username string
	password string
}

// NewClient returns a client for the calendar collection at calendarURL
// (Calendar.URL as Connect returned it). hc must come from NewHTTPClient:
// the address rules live there. Unusable arguments are reported by every
// method of the returned client.
func NewClient(hc *http.Client, calendarURL, username, password string) *Client {
	c := &Client{hc: hc, username: username, password: password}
	if hc == nil {
		// Falling back to http.DefaultClient would skip the address rules.
		c.err = errors.New("caldav: new client: nil HTTP client; use NewHTTPClient")
		return c
	}
	u, err := parseURL(calendarURL)
	if err != nil {
		c.err = err
		return c
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	u.RawQuery, u.ForceQuery = "", false
	c.cal = u
	return c
}

// resourceURL is the URL of the resource name inside the collection. A
// name must be one path segment.
func (c *Client) resourceURL(name string) (*url.URL, error) {
	if c.err != nil {
		return nil, c.err
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") {
		return nil, errors.New("caldav: resource name must be one path segment")
	}
	return c.cal.JoinPath(name), nil
}

// PutEvent stores ics as the resource name in the calendar and returns the
// new ETag ("" if the server did not report one; read it again then).
// Failures: ErrPreconditionFailed (412, see Condition),
// ErrCredentialsRejected (401/403), ErrUnreachable (network, 5xx, 429),
// ErrCalendarNotFound (the collection is gone), ErrRefused (other 4xx),
// or the context's error.
func (c *Client) PutEvent(ctx context.Context, name string, ics []byte, cond Condition) (string, error) {
	const step = "writing the event"
	u, err := c.resourceURL(name)
	if err != nil {
		return "", err
	}
	if cond.IfMatch != "" && cond.IfNoneMatch {
		return "", errors.New("caldav: put event: If-Match and If-None-Match together")
	}
	h := http.Header{"Content-Type": {"text/calendar; charset=utf-8"}}
	if cond.IfMatch != "" {
		h.Set("If-Match", cond.IfMatch)
	}
	if cond.IfNoneMatch {
		h.Set("If-None-Match", "*")
	}
	resp, err := c.do(ctx, http.MethodPut, u, h, ics)
	if err != nil {
		return "", classify(ctx, step, err, 0)
	}
	defer drain(resp)
	if resp.StatusCode/100 != 2 {
		return "", classifyStatus(step, resp)
	}
	return resp.Header.Get("ETag"), nil
}

// DeleteEvent deletes the resource name; with ifMatch set, only while it
// still has that ETag. A resource that is already gone is not an error.
// Failures are those of PutEvent.
func (c *Client) DeleteEvent(ctx context.Context, name, ifMatch string) error {
	u, err := c.resourceURL(name)
	if err != nil {
		return err
	}
	return c.deleteURL(ctx, u, ifMatch)
}

func (c *Client) deleteURL(ctx context.Context, u *url.URL, ifMatch string) error {
	const step = "deleting the event"
	h := http.Header{}
	if ifMatch != "" {
		h.Set("If-Match", ifMatch)
	}
	resp, err := c.do(ctx, http.MethodDelete, u, h, nil)
	if err != nil {
		return classify(ctx, step, err, 0)
	}
	defer drain(resp)
	switch {
	case resp.StatusCode/100 == 2, resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusGone:
		return nil
	}
	return classifyStatus(step, resp)
}

// OurCopies lists the event resources in the calendar that carry
// MarkerProperty: termind's own copies. The server is asked to filter on the
// marker and the answer is checked again here, so a server that ignores
// the filter returns nothing more. The events' contents are read only to
// find the marker and are not returned.
func (c *Client) OurCopies(ctx context.Context) ([]Resource, error) {
	const step = "listing our events"
	if c.err != nil {
		return nil, c.err
	}
	ms, err := c.report(ctx, step, "1", ourCopiesQuery)
	if err != nil {
		return nil, err
	}
	var out []Resource
	for _, r := range ms.Responses {
		name, ok := c.nameOf(r.Href)
		if !ok {
			continue
		}
		p := r.props()
		id := markerValue(p.CalendarData)
		if id == "" {
			continue
		}
		out = append(out, Resource{Name: name, Href: r.Href, ETag: p.GetETag, AppointmentID: id})
	}
	return out, nil
}

// removePasses bounds how often RemoveOurCopies lists the calendar again
// because a copy changed between listing and deleting.
const removePasses = 3

// RemoveOurCopies deletes every resource OurCopies lists, each only while
// it still has the ETag it was listed with, so an event that was replaced
// meanwhile is looked at again rather than deleted blindly. The user's own
// events are never touched. It returns how many resources it deleted;
// failures are those of OurCopies and DeleteEvent, and stop the removal
// (what was deleted stays deleted; calling it again continues).
func (c *Client) RemoveOurCopies(ctx context.Context) (int, error) {
	return c.RemoveOurCopiesWhere(ctx, nil)
}

// RemoveOurCopiesWhere is RemoveOurCopies for the copies whose marker
// value (appointment id) match accepts; nil accepts all.
func (c *Client) RemoveOurCopiesWhere(ctx context.Context, match func(appointmentID string) bool) (int, error) {
	removed := 0
	for range removePasses {
		copies, err := c.OurCopies(ctx)
		if err != nil {
			return removed, err
		}
		changed := 0
		for _, r := range copies {
			if match != nil && !match(r.AppointmentID) {
				continue
			}
			err := c.DeleteEvent(ctx, r.Name, r.ETag)
			switch {
			case err == nil:
				removed++
			case errors.Is(err, ErrPreconditionFailed):
				changed++
			default:
				return removed, err
			}
		}
		if changed == 0 {
			return removed, nil
		}
	}
	return removed, newError(ErrPreconditionFailed, "our events kept changing while they were being removed", nil)
}

// nameOf returns the resource name of href if href names a resource
// directly inside this calendar collection.
func (c *Client) nameOf(href string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(href))
	if err != nil {
		return "", false
	}
	if u.IsAbs() && (!strings.EqualFold(u.Scheme, c.cal.Scheme) || !strings.EqualFold(u.Host, c.cal.Host)) {
		return "", false
	}
	dir, name := path.Split(u.Path)
	if name == "" || !samePath(dir, c.cal.Path) {
		return "", false
	}
	return name, true
}

// do sends one request to the server with the account's credentials.
func (c *Client) do(ctx context.Context, method string, u *url.URL, h http.Header, body []byte) (*http.Response, error) {
	var r io.Reader = http.NoBody
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("caldav: %s request: %w", strings.ToLower(method), err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if c.username != "" {
		req.SetBasicAuth(c.username, c.password)
	}
	return c.hc.Do(req)
}

// classifyStatus names the kind of failure of a request the server
// answered with a status it does not succeed with.
func classifyStatus(step string, resp *http.Response) error {
	status := resp.StatusCode
	reason := fmt.Sprintf("%s: the server answered %s", step, statusText(status))
	switch {
	case status == http.StatusPreconditionFailed:
		return newError(ErrPreconditionFailed, reason, nil)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return newError(ErrCredentialsRejected, reason, nil)
	case status >= 500, status == http.StatusTooManyRequests:
		return newError(ErrUnreachable, reason, nil)
	case status == http.StatusNotFound, status == http.StatusGone:
		return newError(ErrCalendarNotFound, reason, nil)
	case status == http.StatusConflict:
		// RFC 4791 reports a UID taken by another resource as a conflict
		// with a no-uid-conflict precondition; without it, a conflict on
		// a write means the collection itself is missing (RFC 4918 9.7.1).
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
		if bytes.Contains(body, []byte("no-uid-conflict")) {
			return newError(ErrRefused, step+": another event in the calendar has the same UID", nil)
		}
		return newError(ErrCalendarNotFound, reason, nil)
	}
	return newError(ErrRefused, reason, nil)
}

// markerValue returns the value of MarkerProperty on the first VEVENT of
// an iCalendar object that has one, or "".
func markerValue(data string) string {
	if data == "" {
		return ""
	}
	cal, err := ical.NewDecoder(strings.NewReader(data)).Decode()
	if err != nil {
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

// RemoveBlockers removes termind's blockers only: the copies whose marker
// value starts with "blocker:" (see RemoveOurCopiesWhere).
func (c *Client) RemoveBlockers(ctx context.Context) (int, error) {
	return c.RemoveOurCopiesWhere(ctx, func(id string) bool { return strings.HasPrefix(id, "blocker:") })
}
