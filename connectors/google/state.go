package google

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is what the OAuth state parameter carries from the authorize call to
// the callback. It is signed, not encrypted: the browser and Google see it,
// so it must hold ids only.
//
// The PKCE verifier must never go into the state: anyone who sees the
// consent URL would have it. The caller keeps the verifier server-side,
// keyed by Nonce, and deletes it when the callback uses it. That also makes
// each state single-use, which the signature alone cannot.
type State struct {
	TenantID  string
	SubjectID string
	// Nonce is 128 random bits, base64url; SignState fills it in when empty.
	// Set it yourself with NewNonce when you need it before signing.
	Nonce    string
	Purposes []string
	// RedirectAfter is where the callback sends the browser when done.
	RedirectAfter string
	// Expires is kept to the second.
	Expires time.Time
}

// Errors of VerifyState. Neither says more than which kind of failure it was,
// so a probing client learns nothing.
var (
	ErrStateInvalid = errors.New("google: oauth state is invalid")
	ErrStateExpired = errors.New("google: oauth state has expired")
)

// MinStateKeyLen is the shortest key SignState and VerifyState accept: the
// HMAC-SHA256 key should be as long as its output.
const MinStateKeyLen = 32

// maxStateLen bounds the work VerifyState does on input from the browser.
const maxStateLen = 4096

// stateMACPrefix separates these MACs from any other use of the same key.
const stateMACPrefix = "termind google oauth state v1\n"

// stateJSON is the wire form; short names keep the consent URL short.
type stateJSON struct {
	Tenant   string   `json:"t"`
	Subject  string   `json:"s"`
	Nonce    string   `json:"n"`
	Purposes []string `json:"p,omitempty"`
	Redirect string   `json:"r,omitempty"`
	Expires  int64    `json:"e"`
}

// NewNonce returns 128 random bits, base64url-encoded.
func NewNonce() string {
	b := make([]byte, 16)
	// crypto/rand.Read never fails; it crashes the program if it would.
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// SignState encodes s as base64url(JSON) "." base64url(HMAC-SHA256). It
// refuses a state without tenant, subject or expiry, since VerifyState would
// refuse it too.
func SignState(key []byte, s State) (string, error) {
	if len(key) < MinStateKeyLen {
		return "", fmt.Errorf("google: sign state: key must be at least %d bytes", MinStateKeyLen)
	}
	if s.TenantID == "" || s.SubjectID == "" {
		return "", errors.New("google: sign state: tenant and subject are required")
	}
	if s.Expires.IsZero() {
		return "", errors.New("google: sign state: expiry is required")
	}
	if s.Nonce == "" {
		s.Nonce = NewNonce()
	}
	payload, err := json.Marshal(stateJSON{
		Tenant:   s.TenantID,
		Subject:  s.SubjectID,
		Nonce:    s.Nonce,
		Purposes: s.Purposes,
		Redirect: s.RedirectAfter,
		Expires:  s.Expires.Unix(),
	})
	if err != nil {
		return "", wrap("sign state", err)
	}
	body := base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(stateMAC(key, body)), nil
}

// VerifyState checks the signature of token and that it has not expired at
// now. It returns ErrStateInvalid for anything malformed or tampered with
// (or signed with another key) and ErrStateExpired for a genuine state that
// is too old. Single use is the caller's job: record the Nonce.
func VerifyState(key []byte, token string, now time.Time) (State, error) {
	if len(key) < MinStateKeyLen {
		return State{}, fmt.Errorf("google: verify state: key must be at least %d bytes", MinStateKeyLen)
	}
	if len(token) > maxStateLen {
		return State{}, ErrStateInvalid
	}
	body, sig, ok := strings.Cut(token, ".")
	if !ok || body == "" || sig == "" {
		return State{}, ErrStateInvalid
	}
	gotMAC, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return State{}, ErrStateInvalid
	}
	// The MAC is checked before the payload is parsed, so forged input is
	// never interpreted.
	if !hmac.Equal(gotMAC, stateMAC(key, body)) {
		return State{}, ErrStateInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return State{}, ErrStateInvalid
	}
	var j stateJSON
	if err := json.Unmarshal(payload, &j); err != nil {
		return State{}, ErrStateInvalid
	}
	if j.Tenant == "" || j.Subject == "" || j.Nonce == "" || j.Expires == 0 {
		return State{}, ErrStateInvalid
	}
	s := State{
		TenantID:      j.Tenant,
		SubjectID:     j.Subject,
		Nonce:         j.Nonce,
		Purposes:      j.Purposes,
		RedirectAfter: j.Redirect,
		Expires:       time.Unix(j.Expires, 0).UTC(),
	}
	if !now.Before(s.Expires) {
		return State{}, ErrStateExpired
	}
	return s, nil
}

func stateMAC(key []byte, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stateMACPrefix))
	m.Write([]byte(body))
	return m.Sum(nil)
}
