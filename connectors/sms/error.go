package sms

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	twclient "github.com/twilio/twilio-go/client"
)

// Codes for failures that carry no Twilio error code.
const (
	CodeTimeout     = "timeout"      // no answer in time, or the context's deadline passed
	CodeCanceled    = "canceled"     // the caller's context was cancelled
	CodeNetwork     = "network"      // no HTTP response (refused, reset, DNS)
	CodeBadResponse = "bad_response" // 2xx whose body is not a message: it may have been sent
	CodeInvalid     = "invalid"      // the message cannot be sent as given
	CodeIO          = "io"           // writing the .json file failed
)

// Twilio error codes the workers act on (https://www.twilio.com/docs/errors).
const (
	TwilioTooManyRequests    = 20429 // retry later
	TwilioInvalidTo          = 21211
	TwilioNotSMSCapable      = 21408 // region not enabled for the account
	TwilioOptedOut           = 21610 // recipient replied STOP: mark the subject opted out
	TwilioCannotRouteTo      = 21612
	TwilioNotMobile          = 21614
	TwilioUnreachableCarrier = 30006
)

// Error is every error Send returns. Its Error text is safe to log: it holds
// no phone number and no body. Message is Twilio's own text, which can
// quote the number; do not log it.
type Error struct {
	// Status is the HTTP status, 0 when no response arrived.
	Status int
	// TwilioCode is Twilio's error code, 0 when the body had none.
	TwilioCode int
	// ProviderCode is what Code returns: the Twilio code, else the HTTP
	// status, else one of the Code* constants.
	ProviderCode string
	Message      string
	MoreInfo     string
	// Transient reports whether sending the same message later may succeed.
	Transient bool
	// Wait is the provider's Retry-After, 0 when it gave none.
	Wait time.Duration
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sms: ")
	switch {
	case e.TwilioCode != 0:
		b.WriteString("twilio error " + strconv.Itoa(e.TwilioCode) + " (HTTP " + strconv.Itoa(e.Status) + ")")
	case e.Status != 0:
		b.WriteString("twilio HTTP " + strconv.Itoa(e.Status))
	default:
		b.WriteString(e.ProviderCode)
		if e.Err != nil && e.ProviderCode != CodeInvalid {
			// Transport errors name the API host, never the recipient.
			b.WriteString(": " + e.Err.Error())
		}
	}
	if e.MoreInfo != "" {
		b.WriteString(" " + e.MoreInfo)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether a later retry may succeed.
func (e *Error) Temporary() bool { return e.Transient }

// Code is the Twilio error code ("21211", "20429"), else the HTTP status
// ("502"), else one of the Code* constants.
func (e *Error) Code() string { return e.ProviderCode }

// RetryAfter is the provider's Retry-After, 0 when it gave none.
func (e *Error) RetryAfter() time.Duration { return e.Wait }

// permanentCodes end a delivery whatever the HTTP status says.
var permanentCodes = map[int]bool{
	TwilioInvalidTo:          true,
	TwilioNotSMSCapable:      true,
	TwilioOptedOut:           true,
	TwilioCannotRouteTo:      true,
	TwilioNotMobile:          true,
	TwilioUnreachableCarrier: true,
}

// transientStatus: rate limited or a server-side failure.
func transientStatus(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// classify turns a failed Messages create into an *Error. x saw the HTTP
// exchange: twilio-go drops the status of non-JSON error bodies and all
// response headers.
func classify(err error, x *exchange, ctxErr error) *Error {
	status, retryAfter := x.result()
	var rest *twclient.TwilioRestError
	if errors.As(err, &rest) {
		if rest.Status != 0 {
			status = rest.Status
		}
		e := &Error{Status: status, TwilioCode: rest.Code, Message: rest.Message, MoreInfo: rest.MoreInfo, Err: err}
		e.Transient = !permanentCodes[rest.Code] && (rest.Code == TwilioTooManyRequests || transientStatus(status))
		e.ProviderCode = strconv.Itoa(rest.Code)
		if rest.Code == 0 {
			e.ProviderCode = strconv.Itoa(status)
		}
		if e.Transient {
			e.Wait = retryAfter
		}
		return e
	}
	if status >= 400 {
		// An error body that is not Twilio JSON, e.g. a proxy's 502 page.
		e := &Error{Status: status, ProviderCode: strconv.Itoa(status), Transient: transientStatus(status), Err: err}
		if e.Transient {
			e.Wait = retryAfter
		}
		return e
	}
	if status >= 200 && status < 300 {
		// Twilio accepted something we cannot read. Retrying could send the
		// SMS twice, so this is final.
		return &Error{Status: status, ProviderCode: CodeBadResponse, Err: err}
	}
	switch {
	case errors.Is(ctxErr, context.Canceled):
		return &Error{ProviderCode: CodeCanceled, Transient: true, Err: errors.Join(ctxErr, err)}
	case errors.Is(ctxErr, context.DeadlineExceeded), isTimeout(err):
		return &Error{ProviderCode: CodeTimeout, Transient: true, Err: errors.Join(ctxErr, err)}
	}
	return &Error{ProviderCode: CodeNetwork, Transient: true, Err: err}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
