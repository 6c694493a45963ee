package google

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/calendar/v3"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// DefaultAPIURL is the Calendar API's production endpoint.
const DefaultAPIURL = "https://www.googleapis.com/calendar/v3/"

// MaxPageSize is the largest maxResults events.list accepts.
const MaxPageSize = 2500

// Tokens hands out access tokens for one grant (*TokenSource).
type Tokens interface {
	oauth2.TokenSource
	// Expire makes the next Token refresh: the API refused the last one.
	Expire()
}

// Retry says how a Calendar call that failed for a passing reason (rate
// limit, 5xx, no answer) is repeated: exponential backoff from Base up to
// Max, with full jitter, at least the server's Retry-After, Attempts
// tries in all. A Retry-After beyond MaxWait ends the tries at once: the
// caller's own retry (the task queue) waits that long more cheaply.
type Retry struct {
	Attempts  int
	Base, Max time.Duration
	MaxWait   time.Duration
	// Sleep waits d or until ctx ends (tests make it instant).
	Sleep func(ctx context.Context, d time.Duration) error
}

// DefaultRetry: 5 tries over about half a minute.
var DefaultRetry = Retry{Attempts: 5, Base: time.Second, Max: 16 * time.Second, MaxWait: 2 * time.Minute}

// CalendarConfig configures NewCalendar. Tokens and CalendarID are
// required.
type CalendarConfig struct {
	// APIURL is the API endpoint ("" is DefaultAPIURL); tests point it at
	// googletest.
	APIURL string
	// HTTPClient carries the requests (its Transport and Timeout are
	// used; nil: http.DefaultTransport with a one-minute timeout).
	HTTPClient *http.Client
	Tokens     Tokens
	CalendarID string
	// Pacer and PaceKey space this grant's requests (nil: unpaced). The
	// key is the user's: all calls for one person share one budget.
	Pacer   *Pacer
	PaceKey string
	Retry   Retry // zero: DefaultRetry
	// PageSize is the maxResults of listings (0: MaxPageSize, the most
	// Google allows, so a full sync takes the fewest calls).
	PageSize int
}

// Calendar is one Google calendar of one user, through the Calendar API.
// Errors are *APIError (errors.Is with the Err… kinds below),
// *OAuthError / ErrInvalidGrant when the token could not be refreshed,
// or *TemporaryError when no answer came.
type Calendar struct {
	svc      *calendar.Service
	id       string
	tok      Tokens
	retry    Retry
	pageSize int64
}

// NewCalendar returns the client of cfg.CalendarID.
func NewCalendar(ctx context.Context, cfg CalendarConfig) (*Calendar, error) {
	if cfg.Tokens == nil || cfg.CalendarID == "" {
		return nil, errors.New("google: calendar: Tokens and CalendarID are required")
	}
	api := cfg.APIURL
	if api == "" {
		api = DefaultAPIURL
	}
	if err := checkURL(api); err != nil {
		return nil, fmt.Errorf("google: calendar: API URL: %w", err)
	}
	// The generated client resolves its paths against the endpoint, so it
	// must end in a slash.
	api = strings.TrimRight(api, "/") + "/"
	base := http.DefaultTransport
	timeout := time.Minute
	if cfg.HTTPClient != nil {
		if cfg.HTTPClient.Transport != nil {
			base = cfg.HTTPClient.Transport
		}
		if cfg.HTTPClient.Timeout > 0 {
			timeout = cfg.HTTPClient.Timeout
		}
	}
	if cfg.Pacer != nil {
		base = &pacedTransport{base: base, pacer: cfg.Pacer, key: cfg.PaceKey}
	}
	hc := &http.Client{Transport: &oauth2.Transport{Source: cfg.Tokens, Base: base}, Timeout: timeout}
	svc, err := calendar.NewService(ctx, option.WithHTTPClient(hc), option.WithEndpoint(api))
	if err != nil {
		return nil, fmt.Errorf("google: calendar: %w", err)
	}
	r := cfg.Retry
	if r.Attempts <= 0 {
		r = DefaultRetry
	}
	if r.Sleep == nil {
		r.Sleep = sleep
	}
	page := int64(cfg.PageSize)
	if page <= 0 || page > MaxPageSize {
		page = MaxPageSize
	}
	return &Calendar{svc: svc, id: cfg.CalendarID, tok: cfg.Tokens, retry: r, pageSize: page}, nil
}

// Kinds of Calendar API answers; an *APIError matches one with errors.Is.
var (
	// ErrSyncTokenExpired: 410 on a list with a sync token — start again
	// with a full sync.
	ErrSyncTokenExpired = errors.New("google: sync token no longer valid")
	// ErrDuplicate: 409 — an event with that id exists (or existed: the
	// ids of deleted events stay taken).
	ErrDuplicate = errors.New("google: event id exists")
	// ErrConditionNotMet: 412 — the event's etag is not the If-Match one.
	ErrConditionNotMet = errors.New("google: event changed meanwhile")
	// ErrNotFound: 404.
	ErrNotFound = errors.New("google: not found")
	// ErrDeleted: 410 on an event — deleted already.
	ErrDeleted = errors.New("google: event deleted")
	// ErrRateLimited: 429, or 403 rateLimitExceeded/userRateLimitExceeded.
	ErrRateLimited = errors.New("google: rate limited")
	// ErrQuotaExceeded: 403 quotaExceeded/dailyLimitExceeded — the
	// project's quota is used up for a while; retrying soon is useless.
	ErrQuotaExceeded = errors.New("google: quota exceeded")
	// ErrUnauthorized: 401 — the access token is refused.
	ErrUnauthorized = errors.New("google: credentials refused")
	// ErrForbidden: 403 for another reason (missing scope, no access to
	// the calendar).
	ErrForbidden = errors.New("google: forbidden")
)

// APIError is an error answer of the Calendar API. Its text holds the
// status, Google's reason and message; never a token or event content.
type APIError struct {
	Status  int
	Reason  string // first reason in the error body: "fullSyncRequired", "duplicate", …
	Message string
	Wait    time.Duration // Retry-After, 0 when none
	list    bool          // the answer to a list call
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("HTTP %d", e.Status)
	if e.Reason != "" {
		s += " " + e.Reason
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is maps the answer to its kind.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrSyncTokenExpired:
		return e.Status == http.StatusGone && (e.list || e.Reason == "fullSyncRequired")
	case ErrDeleted:
		return e.Status == http.StatusGone && !e.list
	case ErrDuplicate:
		return e.Status == http.StatusConflict
	case ErrConditionNotMet:
		return e.Status == http.StatusPreconditionFailed
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrRateLimited:
		return e.rateLimited()
	case ErrQuotaExceeded:
		return e.Status == http.StatusForbidden && (e.Reason == "quotaExceeded" || e.Reason == "dailyLimitExceeded")
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden && !e.rateLimited() && !errors.Is(e, ErrQuotaExceeded)
	}
	return false
}

func (e *APIError) rateLimited() bool {
	return e.Status == http.StatusTooManyRequests ||
		e.Status == http.StatusForbidden && (e.Reason == "rateLimitExceeded" || e.Reason == "userRateLimitExceeded")
}

// Temporary reports whether the same call may succeed soon: rate limits
// and server errors.
func (e *APIError) Temporary() bool { return e.rateLimited() || e.Status >= 500 }

// RetryAfter is the server's Retry-After, 0 when it gave none.
func (e *APIError) RetryAfter() time.Duration { return e.Wait }

// apiError turns what a generated call returned into *APIError,
// *TemporaryError, or (token refresh failures) the OAuth error as it is.
func apiError(err error, list bool) error {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		e := &APIError{Status: ge.Code, Message: ge.Message, list: list}
		if len(ge.Errors) > 0 {
			e.Reason = ge.Errors[0].Reason
			if e.Message == "" {
				e.Message = ge.Errors[0].Message
			}
		}
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
		if e.Temporary() {
			e.Wait = parseRetryAfter(ge.Header.Get("Retry-After"), time.Now())
		}
		return e
	}
	var oe *OAuthError
	if errors.As(err, &oe) {
		return oe
	}
	var te *TemporaryError
	if errors.As(err, &te) {
		return te
	}
	return &TemporaryError{Err: err}
}

// call runs one API call with the retry policy. A 401 gets one more try
// with a freshly refreshed token.
func (c *Calendar) call(ctx context.Context, op string, list bool, fn func() error) error {
	refreshed := false
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return wrap(op, &TemporaryError{Err: ctx.Err()})
		}
		err = apiError(err, list)
		if errors.Is(err, ErrUnauthorized) && !refreshed {
			refreshed = true
			c.tok.Expire()
			attempt--
			continue
		}
		t, ok := err.(interface {
			Temporary() bool
			RetryAfter() time.Duration
		})
		if !ok || !t.Temporary() || attempt >= c.retry.Attempts || t.RetryAfter() > c.retry.MaxWait {
			return wrap(op, err)
		}
		wait := c.backoff(attempt)
		if ra := t.RetryAfter(); ra > wait {
			wait = ra
		}
		if serr := c.retry.Sleep(ctx, wait); serr != nil {
			return wrap(op, &TemporaryError{Err: serr})
		}
	}
}

// backoff is the wait before try attempt+1: full jitter over an
// exponentially growing cap, so that many connections hit by one storm
// do not come back in step.
func (c *Calendar) backoff(attempt int) time.Duration {
	d := c.retry.Base << min(attempt-1, 20)
	if d > c.retry.Max || d <= 0 {
		d = c.retry.Max
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Listing is the result of List: every page of it.
type Listing struct {
	Items         []*calendar.Event
	NextSyncToken string
	Calls         int // API calls made, retries included
}

// List reads the calendar's events, all pages. With a sync token it
// lists what changed since (deleted events included, as status
// "cancelled"); Google forbids the time bounds then, so from and to are
// ignored. Without one it lists the events between from and to (zero:
// unbounded), deleted ones left out. Recurring events come as their
// single instances (singleEvents), so a cancelled instance is an item of
// its own. ErrSyncTokenExpired: do a full sync.
func (c *Calendar) List(ctx context.Context, syncToken string, from, to time.Time) (Listing, error) {
	var out Listing
	page := ""
	for {
		call := c.svc.Events.List(c.id).SingleEvents(true).MaxResults(c.pageSize).Context(ctx)
		if syncToken != "" {
			call = call.SyncToken(syncToken)
		} else {
			if !from.IsZero() {
				call = call.TimeMin(from.UTC().Format(time.RFC3339))
			}
			if !to.IsZero() {
				call = call.TimeMax(to.UTC().Format(time.RFC3339))
			}
		}
		if page != "" {
			call = call.PageToken(page)
		}
		var res *calendar.Events
		err := c.call(ctx, "list events", true, func() error {
			out.Calls++
			var err error
			res, err = call.Do()
			return err
		})
		if err != nil {
			return out, err
		}
		out.Items = append(out.Items, res.Items...)
		if res.NextPageToken == "" {
			out.NextSyncToken = res.NextSyncToken
			return out, nil
		}
		page = res.NextPageToken
	}
}

// ListMarked lists the live events that carry the private extended
// property name=value, all pages, without time bounds: how termind finds
// its own copies.
func (c *Calendar) ListMarked(ctx context.Context, name, value string) ([]*calendar.Event, error) {
	var out []*calendar.Event
	page := ""
	for {
		call := c.svc.Events.List(c.id).PrivateExtendedProperty(name + "=" + value).MaxResults(c.pageSize).Context(ctx)
		if page != "" {
			call = call.PageToken(page)
		}
		var res *calendar.Events
		err := c.call(ctx, "list marked events", true, func() error {
			var err error
			res, err = call.Do()
			return err
		})
		if err != nil {
			return out, err
		}
		out = append(out, res.Items...)
		if res.NextPageToken == "" {
			return out, nil
		}
		page = res.NextPageToken
	}
}

// Get reads one event; a deleted one comes back with status "cancelled".
func (c *Calendar) Get(ctx context.Context, id string) (*calendar.Event, error) {
	var ev *calendar.Event
	err := c.call(ctx, "get event", false, func() error {
		var err error
		ev, err = c.svc.Events.Get(c.id, id).Context(ctx).Do()
		return err
	})
	return ev, err
}

// Insert creates ev (with its id set, so that a repeated insert is
// ErrDuplicate rather than a second event). Nobody is notified.
func (c *Calendar) Insert(ctx context.Context, ev *calendar.Event) (*calendar.Event, error) {
	var out *calendar.Event
	err := c.call(ctx, "insert event", false, func() error {
		var err error
		out, err = c.svc.Events.Insert(c.id, ev).SendUpdates("none").Context(ctx).Do()
		return err
	})
	return out, err
}

// Update replaces the event while it has etag ("" unconditionally);
// ErrConditionNotMet when it changed. Nobody is notified.
func (c *Calendar) Update(ctx context.Context, id string, ev *calendar.Event, etag string) (*calendar.Event, error) {
	var out *calendar.Event
	err := c.call(ctx, "update event", false, func() error {
		call := c.svc.Events.Update(c.id, id, ev).SendUpdates("none").Context(ctx)
		if etag != "" {
			call.Header().Set("If-Match", etag)
		}
		var err error
		out, err = call.Do()
		return err
	})
	return out, err
}

// Delete deletes the event while it has etag ("" unconditionally).
// Nobody is notified. ErrDeleted / ErrNotFound when there is none.
func (c *Calendar) Delete(ctx context.Context, id, etag string) error {
	return c.call(ctx, "delete event", false, func() error {
		call := c.svc.Events.Delete(c.id, id).SendUpdates("none").Context(ctx)
		if etag != "" {
			call.Header().Set("If-Match", etag)
		}
		return call.Do()
	})
}

// Channel is a push notification channel on the calendar's events.
type Channel struct {
	ID, ResourceID string
	Expiration     time.Time
}

// Watch opens a channel: Google posts to address whenever the calendar's
// events change, with token in X-Goog-Channel-Token. ttl 0 is Google's
// default.
func (c *Calendar) Watch(ctx context.Context, id, address, token string, ttl time.Duration) (Channel, error) {
	ch := &calendar.Channel{Id: id, Type: "web_hook", Address: address, Token: token}
	if ttl > 0 {
		ch.Params = map[string]string{"ttl": fmt.Sprint(int64(ttl / time.Second))}
	}
	var res *calendar.Channel
	err := c.call(ctx, "watch events", false, func() error {
		var err error
		res, err = c.svc.Events.Watch(c.id, ch).Context(ctx).Do()
		return err
	})
	if err != nil {
		return Channel{}, err
	}
	out := Channel{ID: res.Id, ResourceID: res.ResourceId}
	if res.Expiration > 0 {
		out.Expiration = time.UnixMilli(res.Expiration)
	}
	return out, nil
}

// Stop ends a channel. ErrNotFound when Google does not know it (expired
// or stopped before).
func (c *Calendar) Stop(ctx context.Context, id, resourceID string) error {
	return c.call(ctx, "stop channel", false, func() error {
		return c.svc.Channels.Stop(&calendar.Channel{Id: id, ResourceId: resourceID}).Context(ctx).Do()
	})
}
