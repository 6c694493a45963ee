package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/termind/termind/internal/store"
)

// Limits of the notification request.
const (
	maxIdempotencyKey = 255
	maxEmailLen       = 254 // RFC 5321 path limit
	maxSubjectID      = 200
	maxTemplateName   = 100
	maxLocaleLen      = 35
	// sendAtGrace lets a client say "now" with a clock slightly behind ours.
	sendAtGrace  = 5 * time.Second
	maxSendAhead = 400 * 24 * time.Hour
)

var (
	e164Pattern   = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	localePattern = regexp.MustCompile(`^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$`)
)

// notificationRequest is the body of POST /v1/notifications and one item of
// a batch. Data stays raw until validation checks it is an object.
type notificationRequest struct {
	IdempotencyKey string          `json:"idempotency_key"`
	Channel        string          `json:"channel"`
	To             string          `json:"to"`
	Locale         string          `json:"locale"`
	Template       string          `json:"template"`
	Data           json.RawMessage `json:"data"`
	Purpose        string          `json:"purpose"`
	SubjectID      string          `json:"subject_id"`
	SendAt         string          `json:"send_at"`
}

// validNotification is a request that passed every syntactic and semantic
// check except the renderer's.
type validNotification struct {
	req    notificationRequest
	data   map[string]any
	sendAt time.Time // zero: as soon as possible
	hash   string
}

// validateNotification checks every rule that needs no I/O. Rules run in
// field order so that a client fixing errors one by one sees a stable order.
func validateNotification(req notificationRequest, now time.Time) (validNotification, *apiError) {
	v := validNotification{req: req}

	if n := len(req.IdempotencyKey); n == 0 || n > maxIdempotencyKey || !printableASCII(req.IdempotencyKey) {
		return v, invalidField("idempotency_key", "is required: 1 to 255 printable ASCII characters")
	}
	// Keys of the notifications planned for appointments start with "appt":
	// a client key there could take an appointment's reminder slot.
	if strings.HasPrefix(req.IdempotencyKey, "appt:") || strings.HasPrefix(req.IdempotencyKey, "appt#") {
		return v, invalidField("idempotency_key", `must not start with "appt:" or "appt#" (reserved for appointment notifications)`)
	}
	switch req.Channel {
	case store.ChannelEmail:
		if !validEmail(req.To) {
			return v, invalidField("to", "must be a bare email address such as jane@example.com (no display name, at most 254 characters)")
		}
	case store.ChannelSMS:
		if !e164Pattern.MatchString(req.To) {
			return v, invalidField("to", "must be an E.164 phone number such as +4915112345678")
		}
	default:
		return v, invalidField("channel", `must be "email" or "sms"`)
	}
	if req.Purpose != store.PurposeTransactional && req.Purpose != store.PurposeReminder {
		return v, invalidField("purpose", `must be "transactional" or "reminder"`)
	}
	if req.SubjectID == "" && req.Channel == store.ChannelSMS {
		return v, invalidField("subject_id", "is required for sms: an SMS needs the subject's notify.sms consent")
	}
	if req.SubjectID != "" {
		if msg := checkSubjectID(req.SubjectID); msg != "" {
			return v, invalidField("subject_id", msg)
		}
	}
	if req.SendAt != "" {
		at, err := time.Parse(time.RFC3339Nano, req.SendAt)
		if err != nil {
			return v, invalidField("send_at", "must be an RFC 3339 time such as 2030-01-02T15:04:05Z")
		}
		if at.Before(now.Add(-sendAtGrace)) {
			return v, invalidField("send_at", "must not be in the past")
		}
		if at.After(now.Add(maxSendAhead)) {
			return v, invalidField("send_at", "must be at most 400 days ahead")
		}
		v.sendAt = at.UTC()
	}
	data, ok := jsonObject(req.Data)
	if !ok {
		return v, invalidField("data", "must be a JSON object with the template's variables")
	}
	v.data = data
	if req.Locale == "" || len(req.Locale) > maxLocaleLen || !localePattern.MatchString(req.Locale) {
		return v, invalidField("locale", "is required: a language tag such as de or en-GB")
	}
	if req.Template == "" || len(req.Template) > maxTemplateName || !printableASCII(req.Template) {
		return v, invalidField("template", "is required: a template name such as confirmation")
	}

	hash, err := requestHash(v)
	if err != nil {
		// data came from JSON and re-encodes; anything else is a bug.
		return v, invalidField("data", "could not be encoded")
	}
	v.hash = hash
	return v, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validEmail accepts a bare address only: what net/mail parses must be the
// input itself, so "Jane <jane@example.com>" and stray spaces are refused.
func validEmail(s string) bool {
	if s == "" || len(s) > maxEmailLen {
		return false
	}
	addr, err := mail.ParseAddress(s)
	return err == nil && addr.Name == "" && addr.Address == s
}

// checkSubjectID returns the rule a subject id breaks, or "".
func checkSubjectID(id string) string {
	const rule = "must be 1 to 200 characters of printable UTF-8"
	if id == "" || utf8.RuneCountInString(id) > maxSubjectID || !utf8.ValidString(id) {
		return rule
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return rule
		}
	}
	return ""
}

// jsonObject decodes raw as a JSON object; absent, null and non-objects
// are refused.
func jsonObject(raw json.RawMessage) (map[string]any, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false
	}
	return m, true
}

// canonicalRequest is what the idempotency hash covers: the validated
// request with send_at normalised to UTC and data re-encoded (encoding/json
// sorts map keys), so a replay with reordered keys hashes the same.
type canonicalRequest struct {
	IdempotencyKey string         `json:"idempotency_key"`
	Channel        string         `json:"channel"`
	To             string         `json:"to"`
	Locale         string         `json:"locale"`
	Template       string         `json:"template"`
	Data           map[string]any `json:"data"`
	Purpose        string         `json:"purpose"`
	SubjectID      string         `json:"subject_id"`
	SendAt         string         `json:"send_at"`
}

func requestHash(v validNotification) (string, error) {
	c := canonicalRequest{
		IdempotencyKey: v.req.IdempotencyKey,
		Channel:        v.req.Channel,
		To:             v.req.To,
		Locale:         v.req.Locale,
		Template:       v.req.Template,
		Data:           v.data,
		Purpose:        v.req.Purpose,
		SubjectID:      v.req.SubjectID,
	}
	if !v.sendAt.IsZero() {
		c.SendAt = v.sendAt.Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("hash request: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
