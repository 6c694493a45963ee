package api

import (
	"errors"
	"net/http"

	"github.com/termind/termind/templates"
)

// renderError maps the renderer's refusal to a 422 naming the field
// ("template", "locale", "data.customer_name", …). Anything else is our
// fault, not the client's.
func renderError(err error) (*apiError, bool) {
	var fe *templates.FieldError
	if !errors.As(err, &fe) {
		return nil, false
	}
	return &apiError{Status: http.StatusUnprocessableEntity, Code: codeInvalidField, Message: fe.Rule, Field: fe.Field}, true
}
