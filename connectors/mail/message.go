// Package mail sends notification mails: over SMTP with a small pool of
// reused connections, or into a directory as .eml files when no SMTP server
// is configured. It knows nothing about the store or business rules; it turns
// a Message into a provider call and classifies the provider's errors.
package mail

import (
	"bytes"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/termind/termind/internal/spool"
)

// Message is one mail to one recipient.
type Message struct {
	// ID is the notification id. It names the .eml file and is sent as the
	// X-Termind-Notification header so bounces can be matched.
	ID      string
	From    string
	To      string
	Subject string
	Text    string
	HTML    string
	// MessageID is the Message-ID header value. If empty it is
	// <ID@domain of From>, which makes re-sends of one notification
	// recognisable as the same message.
	MessageID string
}

// Header names set on every message.
const (
	HeaderNotification  = "X-Termind-Notification"
	HeaderAutoSubmitted = "Auto-Submitted"
)

// build turns m into a go-mail message and returns it with its Message-ID
// (angle brackets included). Errors are permanent: retrying cannot fix them.
func build(m Message, now time.Time) (*gomail.Msg, string, error) {
	if err := checkID(m.ID); err != nil {
		return nil, "", err
	}
	if m.Text == "" && m.HTML == "" {
		return nil, "", invalid("message has neither text nor HTML", nil)
	}
	from, err := netmail.ParseAddress(m.From)
	if err != nil {
		// The address itself stays out of the message: it is personal data.
		return nil, "", invalid("invalid From address", err)
	}
	if _, err := netmail.ParseAddress(m.To); err != nil {
		return nil, "", invalid("invalid To address", err)
	}
	messageID := strings.Trim(m.MessageID, "<> ")
	if messageID == "" {
		domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
		messageID = m.ID + "@" + domain
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	if err := msg.To(m.To); err != nil {
		return nil, "", invalid("invalid To address", err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(now)
	msg.SetMessageIDWithValue(messageID)
	msg.SetGenHeader(gomail.Header(HeaderNotification), m.ID)
	// RFC 3834: tells auto-responders not to answer.
	msg.SetGenHeader(gomail.Header(HeaderAutoSubmitted), "auto-generated")
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, "<" + messageID + ">", nil
}

// Render returns m as an RFC 5322 message, exactly as SMTP and Dir send it.
func Render(m Message) ([]byte, error) {
	msg, _, err := build(m, time.Now())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("mail: render: %w", err)
	}
	return buf.Bytes(), nil
}

// checkID refuses ids that are unsafe as a file name or header value.
func checkID(id string) error {
	if id == "" {
		return invalid("message has no ID", nil)
	}
	if !spool.ValidName(id) {
		return invalid("message ID may only hold letters, digits, '-', '_' and '.', not starting with '.'", nil)
	}
	return nil
}

func invalid(reason string, cause error) *Error {
	if cause == nil {
		cause = errors.New(reason)
	}
	return &Error{Op: "build", ProviderCode: CodeInvalid, Reason: reason, Err: cause}
}
