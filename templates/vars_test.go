package templates

import (
	"slices"
	"testing"
	texttemplate "text/template"
)

// TestVarSet checks which variables a template is found to need.
func TestVarSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		src      string
		required []string
		optional []string
		times    []string
	}{
		{"plain field", "{{.a}}", []string{"a"}, nil, nil},
		{"guarded by itself", "{{if .a}}{{.a}}{{end}}", nil, []string{"a"}, nil},
		{"with guards itself", "{{with .a}}[{{.}}]{{end}}", nil, []string{"a"}, nil},
		{"with and declaration", "{{with $x := .a}}{{$x}}{{end}}", nil, []string{"a"}, nil},
		{"guarded elsewhere, used bare too", "{{if .a}}{{.a}}{{end}} {{.a}}", []string{"a"}, nil, nil},
		{"guard does not cover another field", "{{if .a}}{{.b}}{{end}}", []string{"b"}, []string{"a"}, nil},
		{"else branch is unguarded", "{{if .a}}x{{else}}{{.a}}{{end}}", []string{"a"}, nil, nil},
		{"and guards each", "{{if and .a .b}}{{.a}}{{.b}}{{end}}", nil, []string{"a", "b"}, nil},
		{"or guards nothing", "{{if or .a .b}}{{.a}}{{end}}", []string{"a", "b"}, nil, nil},
		{"comparison is a use", `{{if eq .a "x"}}y{{end}}`, []string{"a"}, nil, nil},
		{"inside with, dot is not the root", "{{with .a}}{{.b}}{{end}}", nil, []string{"a"}, nil},
		{"root variable inside with", "{{with .a}}{{$.b}}{{end}}", []string{"b"}, []string{"a"}, nil},
		{"range needs its list only", "{{range .items}}{{.name}}{{end}}", []string{"items"}, nil, nil},
		{"function arguments", `{{printf "%s-%s" .a (print .b)}}`, []string{"a", "b"}, nil, nil},
		{"called template with root data", `{{define "t"}}{{.a}}{{end}}{{template "t" .}}`, []string{"a"}, nil, nil},
		{"called template with other data", `{{define "t"}}{{.a}}{{end}}{{template "t" .b}}`, []string{"b"}, nil, nil},
		{"derived time needs time and zone", "{{.start_date}}", []string{"start", "time_zone"}, nil, []string{"start"}},
		{"optional time", "{{if .previous_start}}{{.previous_start_time}}{{end}}", nil, []string{"previous_start", "previous_start_time"}, []string{"previous_start"}},
		{"renderer keys need no data", "{{.locale}} {{.subject}}", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmpl := texttemplate.Must(texttemplate.New("x").Parse(tt.src))
			r := newRefs()
			textRefs(r, tmpl)
			v := newVarSet(r)
			if !slices.Equal(v.required, tt.required) {
				t.Errorf("required = %q, want %q", v.required, tt.required)
			}
			if !slices.Equal(v.optional, tt.optional) {
				t.Errorf("optional = %q, want %q", v.optional, tt.optional)
			}
			if !slices.Equal(v.times, tt.times) {
				t.Errorf("times = %q, want %q", v.times, tt.times)
			}
		})
	}
}
