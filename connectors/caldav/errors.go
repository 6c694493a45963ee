package caldav

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
)

// Kinds of failure. Test for them with errors.Is; the API maps each to a
// status code. Every error that Connect returns for one of these reasons is
// an *Error whose Kind is one of them.
var (
	// ErrInvalidURL: the URL is not an absolute http(s) URL, or it carries
	// credentials.
	ErrInvalidURL = errors.New("caldav: invalid URL")
	// ErrForbiddenAddress: the URL's scheme or the server's address is not
	// allowed by the HTTP client's Options (loopback, private, link-local …).
	ErrForbiddenAddress = errors.New("caldav: address not allowed")
	// ErrCredentialsRejected: the server answered 401 or 403.
	ErrCredentialsRejected = errors.New("caldav: credentials rejected by the server")
	// ErrUnreachable: DNS failure, connection refused, timeout, TLS failure
	// or a 5xx answer. Worth retrying later.
	ErrUnreachable = errors.New("caldav: server unreachable")
	// ErrNotCalDAV: the server answered, but not as a CalDAV server would.
	ErrNotCalDAV = errors.New("caldav: not a CalDAV server")
	// ErrCalendarNotFound: the requested calendar does not exist and was
	// not created (creation not requested, or refused by the server).
	ErrCalendarNotFound = errors.New("caldav: calendar not found")
)

// Error is a failure of one of the kinds above. Its Error text is safe to
// show to an API client: it holds no credentials, no resolved addresses and
// nothing the server sent. The wrapped cause (Unwrap) may name hosts and
// addresses; log it only where that is acceptable.
type Error struct {
	Kind   error  // one of the Err* values above
	Reason string // short explanation, e.g. "connection refused"
	Err    error  // the underlying cause, may be nil
}

func (e *Error) Error() string {
	if e.Reason == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Reason
}

// Is makes errors.Is(err, ErrUnreachable) and friends work.
func (e *Error) Is(target error) bool { return target == e.Kind }

func (e *Error) Unwrap() error { return e.Err }

func newError(kind error, reason string, cause error) *Error {
	return &Error{Kind: kind, Reason: reason, Err: cause}
}

// classify turns the failure of one discovery step into an *Error. status is
// the HTTP status of the step's last response (0 when there was none).
// ctx is the caller's context: its end is not the server's fault and is
// returned as such.
func classify(ctx context.Context, step string, err error, status int) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("caldav: %s: %w", step, ctxErr)
	}
	var own *Error
	if errors.As(err, &own) {
		return own
	}
	switch {
	case errors.Is(err, ErrResponseTooLarge):
		return newError(ErrNotCalDAV, step+": the server's answer is too large", err)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return newError(ErrCredentialsRejected, fmt.Sprintf("%s: the server answered %s", step, statusText(status)), err)
	case status >= 500:
		return newError(ErrUnreachable, fmt.Sprintf("%s: the server answered %s", step, statusText(status)), err)
	case status == 0 || isNetworkError(err):
		// No answer at all: the request never got through.
		return newError(ErrUnreachable, unreachableReason(err), err)
	case status == http.StatusNotFound:
		return newError(ErrNotCalDAV, fmt.Sprintf("%s: nothing found at this URL (404 Not Found)", step), err)
	case status == http.StatusMethodNotAllowed || status == http.StatusNotImplemented:
		return newError(ErrNotCalDAV, fmt.Sprintf("%s: the server does not support WebDAV (%s)", step, statusText(status)), err)
	case status == http.StatusMultiStatus:
		return newError(ErrNotCalDAV, step+": the server's answer lacks the CalDAV properties", err)
	default:
		return newError(ErrNotCalDAV, fmt.Sprintf("%s: the server answered %s instead of a WebDAV multi-status", step, statusText(status)), err)
	}
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return fmt.Sprintf("%d %s", code, t)
	}
	return fmt.Sprint(code)
}

func isNetworkError(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr)
}

// unreachableReason names why a request got no answer, in words fit for an
// end user. It never includes the address or host name.
func unreachableReason(err error) string {
	var (
		dnsErr     *net.DNSError
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "host not found"
		}
		if dnsErr.IsTimeout {
			return "DNS lookup timed out"
		}
		return "DNS lookup failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &hostErr):
		return "TLS certificate does not match the host name"
	case errors.As(err, &invalidErr):
		return "TLS certificate is invalid or expired"
	case errors.As(err, &unknownCA), errors.As(err, &verifyErr):
		return "TLS certificate is not trusted"
	case errors.As(err, &recordErr), errors.Is(err, http.ErrSchemeMismatch):
		return "TLS handshake failed: the server does not speak TLS on this port"
	case errors.As(err, &alertErr):
		return "TLS handshake failed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the server"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the server"
	case errors.Is(err, errTooManyRedirects):
		return errTooManyRedirects.Error()
	}
	return "connection failed"
}
