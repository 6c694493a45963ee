package templates

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"text/template/parse"

	"golang.org/x/text/language"
)

//go:embed default
var defaultFS embed.FS

const (
	layoutFile   = "layout.html.tmpl"
	tenantPrefix = "tnt_"
	fileSuffix   = ".tmpl"
)

// The parts of one template, in the order their variables are reported.
const (
	partSubject = iota
	partText
	partHTML
	partSMS
	numParts
)

func partByName(s string) (int, bool) {
	switch s {
	case "subject":
		return partSubject, true
	case "text":
		return partText, true
	case "html":
		return partHTML, true
	case "sms":
		return partSMS, true
	}
	return 0, false
}

type msgKey struct{ locale, name string }

// source is one template file's text and the path shown in errors.
type source struct {
	path string
	text string
}

type partSources [numParts]*source

// scope holds the files of one level: defaults, shared overrides, or one
// tenant's overrides.
type scope struct {
	layout *source
	parts  map[msgKey]*partSources
}

func newScope() *scope { return &scope{parts: map[msgKey]*partSources{}} }

// reader walks a template tree in fsys; display turns a path inside fsys
// into the path named in errors.
type reader struct {
	fsys    fs.FS
	display func(rel string) string
}

func overrideReader(dir string) reader {
	return reader{
		fsys:    os.DirFS(dir),
		display: func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) },
	}
}

// readScope reads dir. With tenants non-nil, tnt_ directories are read
// into it as tenant scopes.
func (rd reader) readScope(dir string, tenants map[string]*scope) (*scope, error) {
	entries, err := fs.ReadDir(rd.fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("templates: read %s: %w", rd.display(dir), err)
	}
	sc := newScope()
	for _, e := range entries {
		name := e.Name()
		rel := path.Join(dir, name)
		if strings.HasPrefix(name, ".") {
			continue
		}
		isDir, err := rd.isDir(rel, e)
		if err != nil {
			return nil, err
		}
		switch {
		case !isDir && name == layoutFile:
			if sc.layout, err = rd.readSource(rel); err != nil {
				return nil, err
			}
		case isDir && tenants != nil && strings.HasPrefix(name, tenantPrefix):
			if tenants[name], err = rd.readScope(rel, nil); err != nil {
				return nil, err
			}
		case isDir:
			tag, err := language.Parse(name)
			if err != nil {
				return nil, fmt.Errorf("templates: %s: directory is neither a tenant (%s…) nor a BCP 47 locale", rd.display(rel), tenantPrefix)
			}
			if err := rd.readLocale(rel, tag.String(), sc); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("templates: %s: unexpected file (want %s or <locale>/<name>.<part>%s)", rd.display(rel), layoutFile, fileSuffix)
		}
	}
	return sc, nil
}

func (rd reader) readLocale(dir, locale string, sc *scope) error {
	entries, err := fs.ReadDir(rd.fsys, dir)
	if err != nil {
		return fmt.Errorf("templates: read %s: %w", rd.display(dir), err)
	}
	for _, e := range entries {
		file := e.Name()
		rel := path.Join(dir, file)
		if strings.HasPrefix(file, ".") {
			continue
		}
		name, part, ok := splitFileName(file)
		if !ok {
			return fmt.Errorf("templates: %s: file name is not <name>.<subject|text|html|sms>%s", rd.display(rel), fileSuffix)
		}
		src, err := rd.readSource(rel)
		if err != nil {
			return err
		}
		key := msgKey{locale: locale, name: name}
		if sc.parts[key] == nil {
			sc.parts[key] = &partSources{}
		}
		sc.parts[key][part] = src
	}
	return nil
}

// splitFileName splits "confirmation.subject.tmpl" into its name and part.
func splitFileName(file string) (name string, part int, ok bool) {
	base, found := strings.CutSuffix(file, fileSuffix)
	if !found {
		return "", 0, false
	}
	dot := strings.LastIndexByte(base, '.')
	if dot <= 0 {
		return "", 0, false
	}
	name = base[:dot]
	part, ok = partByName(base[dot+1:])
	if !ok || !validName(name) {
		return "", 0, false
	}
	return name, part, true
}

func validName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

func (rd reader) isDir(rel string, e fs.DirEntry) (bool, error) {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.IsDir(), nil
	}
	info, err := fs.Stat(rd.fsys, rel)
	if err != nil {
		return false, fmt.Errorf("templates: %s: %w", rd.display(rel), err)
	}
	return info.IsDir(), nil
}

func (rd reader) readSource(rel string) (*source, error) {
	b, err := fs.ReadFile(rd.fsys, rel)
	if err != nil {
		return nil, fmt.Errorf("templates: read %s: %w", rd.display(rel), err)
	}
	text := string(b)
	// Editors end files with a newline; it is never part of the message.
	text = strings.TrimSuffix(text, "\n")
	text = strings.TrimSuffix(text, "\r")
	return &source{path: rd.display(rel), text: text}, nil
}

// message is one template in one locale, parsed and analysed. Channels
// whose parts are incomplete have nil var sets.
type message struct {
	name, locale string
	format       *dateFormat
	subject      *texttemplate.Template
	text         *texttemplate.Template
	html         *htmltemplate.Template
	sms          *texttemplate.Template
	mailVars     *varSet
	smsVars      *varSet
	// What it was compiled from, so a tenant catalog can reuse it.
	sources partSources
	layout  *source
}

func compile(key msgKey, src *partSources, layout *source, format *dateFormat) (*message, error) {
	m := &message{name: key.name, locale: key.locale, format: format}
	var err error
	if m.subject, err = parseText(src[partSubject]); err != nil {
		return nil, err
	}
	if m.text, err = parseText(src[partText]); err != nil {
		return nil, err
	}
	if m.sms, err = parseText(src[partSMS]); err != nil {
		return nil, err
	}
	if body := src[partHTML]; body != nil {
		if m.html, err = parseHTML(layout, body); err != nil {
			return nil, err
		}
	}
	if m.subject != nil && m.text != nil && m.html != nil {
		r := newRefs()
		textRefs(r, m.subject)
		textRefs(r, m.text)
		w := &walker{refs: r, lookup: func(name string) *parse.Tree {
			if t := m.html.Lookup(name); t != nil {
				return t.Tree
			}
			return nil
		}}
		w.tree(m.html.Tree)
		m.mailVars = newVarSet(r)
		if err := trialEscape(m.html, m.mailVars, src[partHTML]); err != nil {
			return nil, err
		}
	}
	if m.sms != nil {
		r := newRefs()
		textRefs(r, m.sms)
		m.smsVars = newVarSet(r)
	}
	return m, nil
}

func textRefs(r *refs, t *texttemplate.Template) {
	w := &walker{refs: r, lookup: func(name string) *parse.Tree {
		if t := t.Lookup(name); t != nil {
			return t.Tree
		}
		return nil
	}}
	w.tree(t.Tree)
}

func parseText(src *source) (*texttemplate.Template, error) {
	if src == nil {
		return nil, nil
	}
	t, err := texttemplate.New(src.path).Option("missingkey=error").Parse(src.text)
	if err != nil {
		return nil, fmt.Errorf("templates: parse %s: %w", src.path, err)
	}
	return t, nil
}

func parseHTML(layout, body *source) (*htmltemplate.Template, error) {
	t, err := htmltemplate.New(layout.path).Option("missingkey=error").Parse(layout.text)
	if err != nil {
		return nil, fmt.Errorf("templates: parse %s: %w", layout.path, err)
	}
	if _, err := t.New("content").Parse(body.text); err != nil {
		return nil, fmt.Errorf("templates: parse %s: %w", body.path, err)
	}
	return t, nil
}

// trialEscape runs the HTML template once on placeholder data: html/template
// reports contextual escaping problems only on first execution, and those
// must fail New, not a customer's message.
func trialEscape(t *htmltemplate.Template, v *varSet, body *source) error {
	view := map[string]any{viewLocale: "en", viewSubject: "x"}
	for _, k := range v.all {
		view[k] = "x"
	}
	err := t.Execute(io.Discard, view)
	var escErr *htmltemplate.Error
	if errors.As(err, &escErr) {
		return fmt.Errorf("templates: %s: %w", body.path, err)
	}
	return nil
}
