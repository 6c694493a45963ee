package api

import (
	"testing"

	"github.com/termind/termind/templates"
)

// newTestRenderer is the real renderer with the embedded default templates.
func newTestRenderer(t *testing.T) Renderer {
	t.Helper()
	r, err := templates.New("")
	if err != nil {
		t.Fatalf("templates: %v", err)
	}
	return r
}
