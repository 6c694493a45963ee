package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Body limits. A single notification is small; the batch limit leaves room
// for 1,000 ordinary items.
const (
	maxBodyBytes      = 64 << 10
	maxBatchBodyBytes = 8 << 20
)

// writeJSON encodes v as the response. Encoding our own response types
// cannot fail in practice; a failed write means the client left.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readBody reads the whole request body up to limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, tooLarge("body", limit)
		}
		return nil, &apiError{Status: http.StatusBadRequest, Code: codeMalformedJSON, Message: "the request body could not be read", Field: "body"}
	}
	return body, nil
}

func tooLarge(field string, limit int64) *apiError {
	return &apiError{
		Status:  http.StatusRequestEntityTooLarge,
		Code:    codeTooLarge,
		Message: fmt.Sprintf("must be at most %d KiB", limit>>10),
		Field:   field,
	}
}

// readJSON reads a body of at most limit bytes and decodes it strictly
// into v; on failure it answers the request itself and returns false. An
// optional body may be empty (v keeps its zero value).
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any, optional bool) bool {
	body, aerr := readBody(w, r, limit)
	if aerr == nil && !(optional && len(bytes.TrimSpace(body)) == 0) {
		aerr = decodeStrict(body, v)
	}
	if aerr != nil {
		writeError(w, aerr)
		return false
	}
	return true
}

// decodeStrict unmarshals one JSON object into v, refusing unknown fields,
// wrong types and trailing data, and names the offending field where the
// decoder tells it.
func decodeStrict(data []byte, v any) *apiError {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &apiError{Status: http.StatusBadRequest, Code: codeMalformedJSON, Message: "must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &apiError{Status: http.StatusBadRequest, Code: codeMalformedJSON, Message: "must contain a single JSON object and nothing after it"}
	}
	return nil
}

func decodeError(err error) *apiError {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return &apiError{Status: http.StatusBadRequest, Code: codeMalformedJSON, Message: fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{Status: http.StatusBadRequest, Code: codeMalformedJSON, Message: "the JSON document ends early"}
	case errors.As(err, &typ):
		return &apiError{Status: http.StatusBadRequest, Code: codeWrongType, Message: "must be a JSON " + jsonKind(typ.Type.Kind().String()), Field: typ.Field}
	}
	// The decoder reports unknown fields only as text: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unquoted, err := strconv.Unquote(name); err == nil {
			name = unquoted
		}
		if name == "" {
			// The field must name something: show the empty name as JSON does.
			return &apiError{Status: http.StatusBadRequest, Code: codeUnknownField, Message: "a member with an empty name is not a known field", Field: `""`}
		}
		return &apiError{Status: http.StatusBadRequest, Code: codeUnknownField, Message: "is not a known field", Field: name}
	}
	return &apiError{Status: http.StatusBadRequest, Code: codeMalformedJSON, Message: "invalid JSON"}
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	}
	return "value of the documented type"
}
