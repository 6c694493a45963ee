package mail

import (
	"context"
	"errors"
	"net"
	"net/textproto"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Codes for failures that carry no SMTP reply code.
const (
	CodeTimeout  = "timeout"  // no answer in time, or the context's deadline passed
	CodeCanceled = "canceled" // the caller's context was cancelled
	CodeNetwork  = "network"  // dial, TLS or connection failure
	CodeInvalid  = "invalid"  // the message cannot be sent as given (bad address, no body)
	CodeClosed   = "closed"   // Send after Close
	CodeIO       = "io"       // writing the .eml file failed
)

// Error is every error Send returns. Its Error text is safe to log: it holds
// no addresses and no body. The wrapped provider error (Unwrap) may hold
// addresses, because SMTP servers echo them.
type Error struct {
	// Op is the step that failed: "build", "dial", "send" or "write".
	Op string
	// ProviderCode is the SMTP reply code ("451", "550") or one of the
	// Code* constants.
	ProviderCode string
	// EnhancedCode is the RFC 3463 status ("4.2.1") when the server gave one.
	EnhancedCode string
	// Transient reports whether sending the same message later may succeed.
	Transient bool
	// Reason is a short, address-free description.
	Reason string
	Err    error
}

func (e *Error) Error() string {
	s := "mail: " + e.Op + ": " + e.ProviderCode
	if e.EnhancedCode != "" {
		s += " " + e.EnhancedCode
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether a later retry may succeed.
func (e *Error) Temporary() bool { return e.Transient }

// Code is the SMTP reply code or one of the Code* constants.
func (e *Error) Code() string { return e.ProviderCode }

// RetryAfter is always 0: SMTP has no retry hint.
func (e *Error) RetryAfter() time.Duration { return 0 }

// classify turns a failure of op into an *Error. ctxErr is the caller's
// context error, ioErr the first I/O error seen on the connection (both may
// be nil); they tell timeouts and cancellations from other network failures
// when the server gave no reply code.
func classify(op string, err, ctxErr, ioErr error) *Error {
	var own *Error
	if errors.As(err, &own) {
		return own
	}
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) && sendErr.ErrorCode() != 0 {
		code := sendErr.ErrorCode()
		return &Error{
			Op:           op,
			ProviderCode: strconv.Itoa(code),
			EnhancedCode: sendErr.EnhancedStatusCode(),
			// 4xx is a transient failure, 5xx permanent (RFC 5321 4.2.1).
			Transient: sendErr.IsTemp() || code/100 == 4,
			Reason:    "server replied " + strconv.Itoa(code),
			Err:       err,
		}
	}
	if code, ok := replyCode(err); ok {
		// Dial-time replies (greeting, EHLO, AUTH) are not SendErrors.
		return &Error{Op: op, ProviderCode: strconv.Itoa(code), Transient: code/100 == 4,
			Reason: "server replied " + strconv.Itoa(code), Err: err}
	}
	switch {
	case errors.Is(ctxErr, context.Canceled):
		return &Error{Op: op, ProviderCode: CodeCanceled, Transient: true, Reason: "context canceled", Err: errors.Join(ctxErr, err)}
	case errors.Is(ctxErr, context.DeadlineExceeded), isTimeout(err), isTimeout(ioErr):
		return &Error{Op: op, ProviderCode: CodeTimeout, Transient: true, Reason: "timed out", Err: errors.Join(ctxErr, err)}
	}
	return &Error{Op: op, ProviderCode: CodeNetwork, Transient: true, Reason: "connection failed", Err: err}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// replyCode finds the SMTP reply code of errors that go-mail returns while
// dialing (greeting, EHLO, STARTTLS, AUTH): those are textproto errors.
func replyCode(err error) (int, bool) {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) && tpErr.Code >= 400 && tpErr.Code < 600 {
		return tpErr.Code, true
	}
	return 0, false
}
