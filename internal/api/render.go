package api

import "net/http"

// renderError maps the renderer's refusal to a 422 naming the field.
func renderError(err error) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, Code: codeInvalidField, Message: err.Error(), Field: "template"}
}
