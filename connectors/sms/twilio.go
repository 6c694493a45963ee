// Package sms sends notification SMS through Twilio, or into a directory as
// .json files when no Twilio account is configured, and checks the
// signatures of Twilio's status callbacks. It knows nothing about the store
// or business rules; it turns a Message into a provider call and classifies
// the provider's errors.
package sms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// Message is one SMS to one recipient.
type Message struct {
	// ID is the notification id; it names the .json file of Dir.
	ID string
	// To is the recipient in E.164 form (+4915112345678).
	To   string
	Body string
	// StatusCallback is the URL Twilio posts delivery updates to; optional.
	StatusCallback string
}

// TwilioConfig configures NewTwilio.
type TwilioConfig struct {
	AccountSID string
	AuthToken  string
	// Exactly one of From (a Twilio number or alphanumeric sender ID) and
	// MessagingServiceSID.
	From                string
	MessagingServiceSID string
	// APIURL replaces Twilio's base URL (scheme and host), e.g. a local fake
	// or a regional endpoint. Empty means https://api.twilio.com.
	APIURL string
	// Timeout bounds each request. Default 15s.
	Timeout time.Duration
}

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	e164Pattern       = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	// Alphanumeric sender IDs: up to 11 letters, digits and spaces, with at
	// least one letter.
	alphaSenderPattern = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	hasLetter          = regexp.MustCompile(`[A-Za-z]`)
	// twilio-go refuses other characters in credentials.
	alphanumeric = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

const defaultTimeout = 15 * time.Second

// Twilio sends SMS with Twilio's Messages resource. It is safe for
// concurrent use.
type Twilio struct {
	cfg       TwilioConfig
	target    *url.URL // nil: Twilio itself
	transport http.RoundTripper
	timeout   time.Duration
}

// NewTwilio validates cfg; it does not call Twilio.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	if !accountSIDPattern.MatchString(cfg.AccountSID) {
		return nil, errors.New("TERMIND_TWILIO_ACCOUNT_SID: must be AC followed by 32 hex digits")
	}
	if !alphanumeric.MatchString(cfg.AuthToken) {
		return nil, errors.New("TERMIND_TWILIO_AUTH_TOKEN: required, letters and digits only")
	}
	switch {
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		return nil, errors.New("TERMIND_TWILIO_FROM or TERMIND_TWILIO_MESSAGING_SERVICE_SID: one is required")
	case cfg.From != "" && cfg.MessagingServiceSID != "":
		return nil, errors.New("TERMIND_TWILIO_FROM and TERMIND_TWILIO_MESSAGING_SERVICE_SID: set only one")
	case cfg.From != "" && !e164Pattern.MatchString(cfg.From) && !(alphaSenderPattern.MatchString(cfg.From) && hasLetter.MatchString(cfg.From)):
		return nil, errors.New("TERMIND_TWILIO_FROM: must be an E.164 number (+4930...) or an alphanumeric sender ID of up to 11 characters")
	case cfg.MessagingServiceSID != "" && !serviceSIDPattern.MatchString(cfg.MessagingServiceSID):
		return nil, errors.New("TERMIND_TWILIO_MESSAGING_SERVICE_SID: must be MG followed by 32 hex digits")
	}
	t := &Twilio{cfg: cfg, timeout: cfg.Timeout}
	if t.timeout <= 0 {
		t.timeout = defaultTimeout
	}
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("TERMIND_TWILIO_API_URL: must be an http or https URL with a host")
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, errors.New("TERMIND_TWILIO_API_URL: only scheme and host are used; remove the path and query")
		}
		t.target = u
	}
	// One transport for all sends, so HTTP connections are reused.
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 32
	t.transport = base
	return t, nil
}

// Send creates the message at Twilio and returns its SID (SM…). Errors are
// *Error.
func (t *Twilio) Send(ctx context.Context, m Message) (string, error) {
	if m.To == "" || m.Body == "" {
		return "", &Error{ProviderCode: CodeInvalid, Err: errors.New("sms: message needs To and Body")}
	}
	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	params.SetBody(m.Body)
	if t.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(t.cfg.MessagingServiceSID)
	} else {
		params.SetFrom(t.cfg.From)
	}
	if m.StatusCallback != "" {
		params.SetStatusCallback(m.StatusCallback)
	}

	x := &exchange{ctx: ctx, base: t.transport, target: t.target}
	api := t.api(x)
	resp, err := api.CreateMessage(params)
	if err != nil {
		return "", classify(err, x, ctx.Err())
	}
	if resp.Sid == nil || *resp.Sid == "" {
		return "", &Error{Status: http.StatusCreated, ProviderCode: CodeBadResponse, Err: errors.New("sms: Twilio response has no sid")}
	}
	return *resp.Sid, nil
}

// api builds a twilio-go client for one call. twilio-go takes no context,
// so each call gets an HTTP client whose transport carries the caller's
// context; building it is a few small allocations.
func (t *Twilio) api(x *exchange) *openapi.ApiService {
	c := &twclient.Client{
		Credentials: twclient.NewCredentials(t.cfg.AccountSID, t.cfg.AuthToken),
		HTTPClient: &http.Client{
			Transport: x,
			Timeout:   t.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	c.SetAccountSid(t.cfg.AccountSID)
	handler := twclient.NewRequestHandler(c)
	// The endpoint comes from APIURL only, not from TWILIO_EDGE/REGION.
	handler.Edge, handler.Region = "", ""
	return openapi.NewApiService(handler)
}

// exchange is the RoundTripper of one Send: it redirects to the configured
// API URL, binds the request to the caller's context, and records what
// twilio-go does not pass on (status of non-JSON errors, Retry-After).
type exchange struct {
	ctx    context.Context
	base   http.RoundTripper
	target *url.URL

	mu         sync.Mutex
	status     int
	retryAfter time.Duration
}

// maxErrorBody caps how much of an error response is kept.
const maxErrorBody = 64 << 10

func (x *exchange) RoundTrip(req *http.Request) (*http.Response, error) {
	// Merge the caller's context into the request's (the latter carries
	// http.Client's timeout).
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(x.ctx, cancel)
	out := req.Clone(ctx)
	if x.target != nil {
		out.URL.Scheme = x.target.Scheme
		out.URL.Host = x.target.Host
		out.Host = x.target.Host
	}
	resp, err := x.base.RoundTrip(out)
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	x.mu.Lock()
	x.status = resp.StatusCode
	x.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	x.mu.Unlock()
	if resp.StatusCode >= 400 {
		// twilio-go never closes error bodies; read and close here so the
		// connection is reused and nothing leaks.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		stop()
		cancel()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, release: func() { stop(); cancel() }}
	return resp, nil
}

func (x *exchange) result() (status int, retryAfter time.Duration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.status, x.retryAfter
}

// cancelOnClose releases the request's context once the body is read.
type cancelOnClose struct {
	io.ReadCloser
	release func()
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.release()
	return err
}

// String hides the credentials if a config is ever printed.
func (c TwilioConfig) String() string {
	return fmt.Sprintf("TwilioConfig{AccountSID: %s, From: %q, MessagingServiceSID: %q, APIURL: %q, Timeout: %v}",
		c.AccountSID, c.From, c.MessagingServiceSID, c.APIURL, c.Timeout)
}
