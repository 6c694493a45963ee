package caldav

import (
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/caldav"
)

// ConnectParams say which server, account and calendar to connect.
type ConnectParams struct {
	// URL is what the user typed: the server, their principal or one
	// calendar, e.g. https://dav.example.com/ or
	// https://dav.example.com/alice/office/.
	URL      string
	Username string
	Password string
	// Calendar picks the calendar by display name (exact, then ignoring
	// case) or by path or URL. Empty means the calendar that URL points at,
	// or else the first calendar that holds events.
	Calendar string
	// CreateName, when set, creates a calendar with this display name if
	// none matches (Calendar, or CreateName itself when Calendar is empty).
	// Connecting twice with the same CreateName therefore creates it once.
	CreateName string
}

// Calendar is the calendar collection Connect found or created.
type Calendar struct {
	URL  string // absolute collection URL
	Path string // collection path on the server, not escaped
	Name string // display name
	// CTag and SyncToken are the server's current change markers, empty if
	// it does not report them. They are opaque.
	CTag      string
	SyncToken string
	// SupportsSyncCollection: the server lists the RFC 6578
	// sync-collection report for this calendar.
	SupportsSyncCollection bool
	// Created: Connect created the calendar with MKCALENDAR.
	Created bool
}

// Connect checks the URL and credentials against the server and returns
// the calendar to sync with. Use a client from NewHTTPClient: the address
// rules live there.
//
// Discovery: PROPFIND current-user-principal on URL; if the server does
// not answer that as CalDAV, the same on /.well-known/caldav (a redirect
// is followed only to the same host, so the credentials stay with the
// server the user named). Then the principal's calendar home set and its
// calendars that hold events (VEVENT).
//
// A URL path the server answers with 404 fails with ErrNotCalDAV rather
// than falling back to discovery: a mistyped calendar URL must not be
// silently replaced by another calendar.
//
// Failures are *Error values of the kinds ErrInvalidURL,
// ErrForbiddenAddress, ErrCredentialsRejected, ErrUnreachable,
// ErrNotCalDAV and ErrCalendarNotFound, or the context's error.
func Connect(ctx context.Context, c *http.Client, p ConnectParams) (Calendar, error) {
	if c == nil {
		// Falling back to http.DefaultClient would skip the address rules.
		return Calendar{}, errors.New("caldav: connect: nil HTTP client; use NewHTTPClient")
	}
	base, err := parseURL(p.URL)
	if err != nil {
		return Calendar{}, err
	}
	s := newSession(c, p.Username, p.Password)

	endpoint, principal, err := s.findPrincipal(ctx, base)
	if err != nil {
		return Calendar{}, err
	}

	// go-webdav resolves the absolute paths below against endpoint.
	dav, err := caldav.NewClient(s.dav, endpoint.String())
	if err != nil {
		return Calendar{}, fmt.Errorf("caldav: new client: %w", err)
	}
	home, err := dav.FindCalendarHomeSet(ctx, principal)
	if err == nil && home == "" {
		err = errors.New("caldav: no calendar-home-set")
	}
	if err != nil {
		return Calendar{}, classify(ctx, "finding the calendar home", err, s.rec.last())
	}
	all, err := dav.FindCalendars(ctx, home)
	if err != nil {
		return Calendar{}, classify(ctx, "listing calendars", err, s.rec.last())
	}
	cals := slices.DeleteFunc(all, func(c caldav.Calendar) bool { return !holdsEvents(c) })

	want := p.Calendar
	if want == "" {
		want = p.CreateName
	}
	calPath, name, found := pick(cals, want, home, base.Path)
	created := false
	if !found {
		if p.CreateName == "" {
			if want == "" {
				return Calendar{}, newError(ErrCalendarNotFound, "the account has no calendar for events", nil)
			}
			return Calendar{}, newError(ErrCalendarNotFound, fmt.Sprintf("no calendar named %q", want), nil)
		}
		calPath = strings.TrimSuffix(home, "/") + "/" + strings.ToLower(rand.Text()) + "/"
		if err := s.mkcalendar(ctx, endpoint.ResolveReference(&url.URL{Path: calPath}), p.CreateName); err != nil {
			return Calendar{}, err
		}
		name, created = p.CreateName, true
	}

	calURL := endpoint.ResolveReference(&url.URL{Path: calPath})
	ms, err := s.propfind(ctx, calURL, "0", calendarPropfind)
	if err == nil && len(ms.Responses) == 0 {
		err = errors.New("caldav: empty multistatus")
	}
	if err != nil {
		return Calendar{}, classify(ctx, "reading the calendar", err, s.rec.last())
	}
	props := ms.Responses[0].props()
	if props.DisplayName != "" {
		name = props.DisplayName
	}
	return Calendar{
		URL:                    calURL.String(),
		Path:                   calPath,
		Name:                   name,
		CTag:                   props.CTag,
		SyncToken:              props.SyncToken,
		SupportsSyncCollection: props.supportsReport("DAV:", "sync-collection"),
		Created:                created,
	}, nil
}

// parseURL accepts absolute http and https URLs without credentials.
// Whether http is allowed is the HTTP client's decision (Options).
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, newError(ErrInvalidURL, "the URL cannot be parsed", err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, newError(ErrInvalidURL, "the URL must start with https://", nil)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, newError(ErrInvalidURL, "the URL has no host", nil)
	}
	if u.User != nil {
		return nil, newError(ErrInvalidURL, "the URL must not contain a user name or password; they have their own fields", nil)
	}
	u.Fragment, u.RawFragment = "", ""
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

// holdsEvents: an absent supported-calendar-component-set means every
// component is supported (RFC 4791 5.2.3).
func holdsEvents(c caldav.Calendar) bool {
	return len(c.SupportedComponentSet) == 0 || slices.ContainsFunc(c.SupportedComponentSet, func(s string) bool {
		return strings.EqualFold(s, "VEVENT")
	})
}

// pick chooses among cals: by want (name, then name ignoring case, then
// path) or, if want is empty, the calendar at urlPath, else the first.
func pick(cals []caldav.Calendar, want, home, urlPath string) (calPath, name string, ok bool) {
	if want == "" {
		for _, c := range cals {
			if samePath(c.Path, urlPath) {
				return c.Path, c.Name, true
			}
		}
		if len(cals) > 0 {
			return cals[0].Path, cals[0].Name, true
		}
		return "", "", false
	}
	for _, match := range []func(caldav.Calendar) bool{
		func(c caldav.Calendar) bool { return c.Name == want },
		func(c caldav.Calendar) bool { return strings.EqualFold(c.Name, want) },
	} {
		if i := slices.IndexFunc(cals, match); i >= 0 {
			return cals[i].Path, cals[i].Name, true
		}
	}
	wantPath := want
	if u, err := url.Parse(want); err == nil && u.IsAbs() {
		wantPath = u.Path
	} else if !strings.HasPrefix(want, "/") {
		wantPath = path.Join(home, want)
	}
	for _, c := range cals {
		if samePath(c.Path, wantPath) {
			return c.Path, c.Name, true
		}
	}
	return "", "", false
}

func samePath(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// session holds one Connect's HTTP state. Not safe for concurrent use.
type session struct {
	http *http.Client
	rec  *recorder
	dav  webdav.HTTPClient // rec, with basic auth if a user name is set
}

func newSession(c *http.Client, user, pass string) *session {
	rec := &recorder{c: c}
	s := &session{http: c, rec: rec, dav: rec}
	if user != "" {
		s.dav = webdav.HTTPClientWithBasicAuth(rec, user, pass)
	}
	return s
}

// recorder remembers the status of the last response, because go-webdav's
// errors do not expose it (its HTTPError type is internal).
type recorder struct {
	c      *http.Client
	status int
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.c.Do(req)
	r.status = 0
	if err == nil {
		r.status = resp.StatusCode
	}
	return resp, err
}

func (r *recorder) last() int { return r.status }

// findPrincipal returns the URL that answered as CalDAV and the principal
// path it reported.
func (s *session) findPrincipal(ctx context.Context, base *url.URL) (*url.URL, string, error) {
	const step = "finding the user's principal"
	principal, err := s.principal(ctx, base)
	if err == nil {
		return base, principal, nil
	}
	first := classify(ctx, step, err, s.rec.last())
	if !errors.Is(first, ErrNotCalDAV) || (s.rec.last() == http.StatusNotFound && base.Path != "/") {
		return nil, "", first
	}

	wk, err := s.wellKnown(ctx, base)
	if err != nil {
		return nil, "", err
	}
	if wk == nil {
		return nil, "", first
	}
	principal, err = s.principal(ctx, wk)
	if err != nil {
		return nil, "", classify(ctx, step, err, s.rec.last())
	}
	return wk, principal, nil
}

// principal asks u for the current-user-principal. It uses its own
// PROPFIND because go-webdav drops a trailing slash from the endpoint, and
// a server's redirect to the slashed form would turn PROPFIND into GET.
func (s *session) principal(ctx context.Context, u *url.URL) (string, error) {
	ms, err := s.propfind(ctx, u, "0", principalPropfind)
	if err != nil {
		return "", err
	}
	for _, r := range ms.Responses {
		if p := r.props().CurrentUserPrincipal; p != nil && p.Href != "" {
			href, err := url.Parse(strings.TrimSpace(p.Href))
			if err != nil {
				return "", fmt.Errorf("caldav: parse principal href: %w", err)
			}
			return href.Path, nil
		}
	}
	return "", errors.New("caldav: no current-user-principal")
}

// wellKnown asks base's /.well-known/caldav (RFC 6764) where the CalDAV
// context is. It returns nil, nil when the server has no answer there.
func (s *session) wellKnown(ctx context.Context, base *url.URL) (*url.URL, error) {
	wk := base.ResolveReference(&url.URL{Path: "/.well-known/caldav"})
	// Follow no redirect automatically: PROPFIND would turn into GET on a
	// 301, and the target must be checked before credentials go there.
	noFollow := *s.http
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, "PROPFIND", wk.String(), strings.NewReader(principalPropfind))
	if err != nil {
		return nil, fmt.Errorf("caldav: well-known request: %w", err)
	}
	req.Header.Set("Content-Type", "application/xml; charset=utf-8")
	req.Header.Set("Depth", "0")
	resp, err := (&recorder{c: &noFollow}).Do(req)
	if err != nil {
		// The base URL answered a moment ago, so this is not "unreachable"
		// unless the address was refused.
		var own *Error
		if errors.As(err, &own) || ctx.Err() != nil {
			return nil, classify(ctx, "well-known discovery", err, 0)
		}
		return nil, nil
	}
	drain(resp)
	switch {
	case resp.StatusCode == http.StatusMultiStatus:
		return wk, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		loc, err := resp.Location()
		if err != nil {
			return nil, nil
		}
		if !strings.EqualFold(loc.Host, base.Host) || (base.Scheme == "https" && loc.Scheme != "https") {
			return nil, newError(ErrNotCalDAV, "the server's /.well-known/caldav points to another server; enter that server's URL instead", nil)
		}
		return parseURL(loc.String())
	}
	return nil, nil
}

// propfind sends a PROPFIND and decodes the multi-status answer.
func (s *session) propfind(ctx context.Context, u *url.URL, depth, body string) (*multistatus, error) {
	req, err := http.NewRequestWithContext(ctx, "PROPFIND", u.String(), strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("caldav: propfind request: %w", err)
	}
	req.Header.Set("Content-Type", "application/xml; charset=utf-8")
	req.Header.Set("Depth", depth)
	resp, err := s.dav.Do(req)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		return nil, fmt.Errorf("caldav: propfind: status %d", resp.StatusCode)
	}
	var ms multistatus
	if err := xml.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return nil, fmt.Errorf("caldav: propfind: decode: %w", err)
	}
	return &ms, nil
}

// mkcalendar creates an event calendar at u with display name name.
func (s *session) mkcalendar(ctx context.Context, u *url.URL, name string) error {
	const step = "creating the calendar"
	req, err := http.NewRequestWithContext(ctx, "MKCALENDAR", u.String(), strings.NewReader(mkcalendarBody(name)))
	if err != nil {
		return fmt.Errorf("caldav: mkcalendar request: %w", err)
	}
	req.Header.Set("Content-Type", "application/xml; charset=utf-8")
	resp, err := s.dav.Do(req)
	if err != nil {
		return classify(ctx, step, err, 0)
	}
	drain(resp)
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode >= 500:
		return newError(ErrUnreachable, fmt.Sprintf("%s: the server answered %s", step, statusText(resp.StatusCode)), nil)
	}
	return newError(ErrCalendarNotFound, fmt.Sprintf("the server refused to create the calendar (%s)", statusText(resp.StatusCode)), nil)
}

// drain reads a little of what is left so the connection can be reused,
// then closes the body.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}
