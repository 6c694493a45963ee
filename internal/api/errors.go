package api

import (
	"fmt"
	"net/http"
)

// Error codes clients can branch on. They are part of the public API: once
// shipped, they do not change.
const (
	codeMalformedJSON     = "malformed_json"
	codeWrongType         = "wrong_type"
	codeUnknownField      = "unknown_field"
	codeTooLarge          = "too_large"
	codeInvalidField      = "invalid_field"
	codeUnauthenticated   = "unauthenticated"
	codeForbidden         = "forbidden"
	codeNotFound          = "not_found"
	codeMethodNotAllowed  = "method_not_allowed"
	codeIdempotencyReused = "idempotency_key_reused"
	codeNotCancellable    = "not_cancellable"
	codeInternal          = "internal"
	// codeNotConfigured: the route needs a dependency (CalDAV client,
	// Google OAuth client, state key) that this deployment lacks.
	codeNotConfigured = "not_configured"
	// codeUpstreamUnreachable: the user's calendar server did not answer.
	codeUpstreamUnreachable = "upstream_unreachable"
	// codeInvalidState: the OAuth callback's state is malformed, tampered
	// with, expired, unknown or already used.
	codeInvalidState = "invalid_state"
	// codeConnectionNotActive: the connection is paused, broken, revoking
	// or revoked, and the request needs an active one (sync now).
	codeConnectionNotActive = "connection_not_active"
)

// apiError is a refusal with everything the error envelope needs.
type apiError struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *apiError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("%d %s: %s: %s", e.Status, e.Code, e.Field, e.Message)
}

// withPrefix names the field relative to an outer document, e.g. the batch
// item "items[3]": "to" becomes "items[3].to", "" becomes "items[3]".
func (e *apiError) withPrefix(prefix string) *apiError {
	c := *e
	switch {
	case c.Field == "":
		c.Field = prefix
	case c.Field[0] == '[':
		c.Field = prefix + c.Field
	default:
		c.Field = prefix + "." + c.Field
	}
	return &c
}

// errorBody is the wire form: {"error": {"code", "message", "field"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *apiError) detail() errorDetail {
	return errorDetail{Code: e.Code, Message: e.Message, Field: e.Field}
}

func invalidField(field, message string) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, Code: codeInvalidField, Message: message, Field: field}
}

func notFound(message string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: message}
}

func notConfigured(what string) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: codeNotConfigured, Message: what + " is not configured on this server"}
}

var errInternal = &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error; try again later"}

// writeError sends the error envelope.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, errorBody{Error: e.detail()})
}
