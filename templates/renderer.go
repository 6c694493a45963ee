package templates

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/language"
)

// maxSMSSegments is the longest SMS accepted; longer texts are refused
// rather than sent as a costly, truncated-looking chain.
const maxSMSSegments = 10

const (
	channelEmail = "email"
	channelSMS   = "sms"
)

// Mail is a rendered mail: subject line, plain-text and HTML bodies, and the
// locale whose templates were used.
type Mail struct{ Subject, Text, HTML, Locale string }

// SMS is a rendered SMS with its segment count and encoding ("GSM-7" or
// "UCS-2").
type SMS struct {
	Body     string
	Segments int
	Encoding string
	Locale   string
}

// FieldError names the request field that is wrong and the rule it breaks,
// so the API can answer 422 with both.
type FieldError struct{ Field, Rule string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

// catalog is the set of templates one tenant sees.
type catalog struct {
	messages  map[msgKey]*message
	languages map[string]bool // base languages with at least one template
}

// Renderer renders notification templates. It is safe for concurrent use;
// all templates are parsed once by New.
type Renderer struct {
	base    *catalog
	tenants map[string]*catalog
	// known maps every locale that has templates to its base language, so
	// common locale strings skip BCP 47 parsing on the hot path.
	known map[string]string
	zones sync.Map // IANA name → *time.Location
	views sync.Pool
	bufs  sync.Pool
}

// New parses the embedded defaults and, if overrideDir is not empty, the
// overrides in it (layout described in the package documentation). It fails
// on the first file that cannot be read or parsed, naming it.
func New(overrideDir string) (*Renderer, error) {
	defaults, err := fs.Sub(defaultFS, "default")
	if err != nil {
		return nil, fmt.Errorf("templates: embedded defaults: %w", err)
	}
	def, err := reader{fsys: defaults, display: func(rel string) string { return "default/" + rel }}.readScope(".", nil)
	if err != nil {
		return nil, err
	}
	shared, tenants := newScope(), map[string]*scope{}
	if overrideDir != "" {
		if shared, err = overrideReader(overrideDir).readScope(".", tenants); err != nil {
			return nil, err
		}
	}

	formats := dateFormats()
	formatFor := func(locale string) *dateFormat {
		if f := formats[locale]; f != nil {
			return f
		}
		if tag, err := language.Parse(locale); err == nil {
			b, _ := tag.Base()
			if f := formats[b.String()]; f != nil {
				return f
			}
		}
		return neutralFormat()
	}

	r := &Renderer{tenants: map[string]*catalog{}, known: map[string]string{}}
	r.views.New = func() any { return make(map[string]any, 24) }
	r.bufs.New = func() any { return new(bytes.Buffer) }

	baseLayout := pick(shared.layout, def.layout)
	baseSources := overlay(def.parts, shared.parts)
	if r.base, err = r.buildCatalog(baseSources, nil, baseLayout, formatFor); err != nil {
		return nil, err
	}
	for id, t := range tenants {
		// Identical sources are shared with the base catalog, so a tenant
		// costs only what it overrides.
		layout := pick(t.layout, baseLayout)
		if r.tenants[id], err = r.buildCatalog(overlay(baseSources, t.parts), r.base, layout, formatFor); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func pick(first, second *source) *source {
	if first != nil {
		return first
	}
	return second
}

// overlay returns bottom with top's parts laid over it, part by part.
func overlay(bottom, top map[msgKey]*partSources) map[msgKey]*partSources {
	out := make(map[msgKey]*partSources, len(bottom)+len(top))
	for k, p := range bottom {
		out[k] = p
	}
	for k, p := range top {
		merged := &partSources{}
		if b := bottom[k]; b != nil {
			*merged = *b
		}
		for i, s := range p {
			if s != nil {
				merged[i] = s
			}
		}
		out[k] = merged
	}
	return out
}

// buildCatalog compiles sources. With inherit set, keys whose sources are
// identical to the inherited catalog's reuse its compiled message.
func (r *Renderer) buildCatalog(sources map[msgKey]*partSources, inherit *catalog, layout *source, formatFor func(string) *dateFormat) (*catalog, error) {
	c := &catalog{messages: make(map[msgKey]*message, len(sources)), languages: map[string]bool{}}
	for key, src := range sources {
		if inherit != nil {
			if m := inherit.messages[key]; m != nil && m.sources == *src && m.layout == layout {
				c.messages[key] = m
				c.noteLocale(r, key.locale)
				continue
			}
		}
		m, err := compile(key, src, layout, formatFor(key.locale))
		if err != nil {
			return nil, err
		}
		m.sources, m.layout = *src, layout
		c.messages[key] = m
		c.noteLocale(r, key.locale)
	}
	return c, nil
}

func (c *catalog) noteLocale(r *Renderer, locale string) {
	base := locale
	if tag, err := language.Parse(locale); err == nil {
		b, _ := tag.Base()
		base = b.String()
	}
	r.known[locale] = base
	c.languages[base] = true
}

func (r *Renderer) catalogFor(tenantID string) *catalog {
	if c := r.tenants[tenantID]; c != nil {
		return c
	}
	return r.base
}

// canonical returns the canonical form of a locale tag and its base
// language, or false if it is not well-formed BCP 47.
func (r *Renderer) canonical(locale string) (tag, base string, ok bool) {
	if b, ok := r.known[locale]; ok {
		return locale, b, true
	}
	t, err := language.Parse(locale)
	if err != nil {
		return "", "", false
	}
	b, _ := t.Base()
	return t.String(), b.String(), true
}

// candidates appends the locales to try, in order, without duplicates:
// each preference, its base language right after a region tag, then "en".
func (r *Renderer) candidates(dst []string, locales []string) []string {
	add := func(l string) {
		for _, have := range dst {
			if have == l {
				return
			}
		}
		dst = append(dst, l)
	}
	for _, l := range locales {
		tag, base, ok := r.canonical(l)
		if !ok {
			continue
		}
		add(tag)
		add(base)
	}
	add("en")
	return dst
}

// resolve finds the message for the first candidate locale that has every
// part the channel needs.
func (r *Renderer) resolve(tenantID, channel, name string, locales []string) (*message, *varSet, error) {
	cat := r.catalogFor(tenantID)
	var buf [8]string
	for _, loc := range r.candidates(buf[:0], locales) {
		m := cat.messages[msgKey{locale: loc, name: name}]
		if m == nil {
			continue
		}
		if v := m.vars(channel); v != nil {
			return m, v, nil
		}
	}
	return nil, nil, &FieldError{Field: "template", Rule: fmt.Sprintf("unknown template %q for channel %s", name, channel)}
}

func (m *message) vars(channel string) *varSet {
	if channel == channelSMS {
		return m.smsVars
	}
	return m.mailVars
}

// Mail renders the mail template name for tenantID in the first suitable
// locale of locales (see the package documentation).
func (r *Renderer) Mail(tenantID, name string, locales []string, data map[string]any) (Mail, error) {
	m, v, err := r.resolve(tenantID, channelEmail, name, locales)
	if err != nil {
		return Mail{}, fmt.Errorf("templates: mail: %w", err)
	}
	mail, err := r.renderMail(m, v, data)
	if err != nil {
		return Mail{}, fmt.Errorf("templates: mail %s/%s: %w", m.locale, m.name, err)
	}
	return mail, nil
}

func (r *Renderer) renderMail(m *message, v *varSet, data map[string]any) (Mail, error) {
	view, err := r.view(m, v, data)
	if err != nil {
		return Mail{}, err
	}
	defer r.release(view)
	subject, err := r.exec(m.subject.Execute, view)
	if err != nil {
		return Mail{}, err
	}
	subject = oneLine(subject)
	view[viewSubject] = subject
	text, err := r.exec(m.text.Execute, view)
	if err != nil {
		return Mail{}, err
	}
	html, err := r.exec(m.html.Execute, view)
	if err != nil {
		return Mail{}, err
	}
	return Mail{Subject: subject, Text: strings.TrimSpace(text) + "\n", HTML: html, Locale: m.locale}, nil
}

// SMS renders the SMS template name for tenantID in the first suitable
// locale of locales. A text longer than 10 segments is an error.
func (r *Renderer) SMS(tenantID, name string, locales []string, data map[string]any) (SMS, error) {
	m, v, err := r.resolve(tenantID, channelSMS, name, locales)
	if err != nil {
		return SMS{}, fmt.Errorf("templates: sms: %w", err)
	}
	sms, err := r.renderSMS(m, v, data)
	if err != nil {
		return SMS{}, fmt.Errorf("templates: sms %s/%s: %w", m.locale, m.name, err)
	}
	return sms, nil
}

func (r *Renderer) renderSMS(m *message, v *varSet, data map[string]any) (SMS, error) {
	view, err := r.view(m, v, data)
	if err != nil {
		return SMS{}, err
	}
	defer r.release(view)
	body, err := r.exec(m.sms.Execute, view)
	if err != nil {
		return SMS{}, err
	}
	body = strings.TrimSpace(body)
	n, enc := Segments(body)
	if n > maxSMSSegments {
		return SMS{}, &FieldError{Field: "data", Rule: fmt.Sprintf("SMS text needs %d segments, at most %d allowed", n, maxSMSSegments)}
	}
	return SMS{Body: body, Segments: n, Encoding: enc, Locale: m.locale}, nil
}

// view builds the data the templates see: the caller's data, formatted
// times, the locale, and "" for absent optional variables.
func (r *Renderer) view(m *message, v *varSet, data map[string]any) (map[string]any, error) {
	for _, k := range v.required {
		if isEmpty(data[k]) {
			return nil, &FieldError{Field: "data." + k, Rule: "required by template " + m.name}
		}
	}
	var loc *time.Location
	if len(v.times) > 0 {
		for _, k := range v.times {
			if !isEmpty(data[k]) {
				var err error
				if loc, err = r.zone(data[keyTimeZone]); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	view := r.views.Get().(map[string]any)
	maps.Copy(view, data)
	for _, k := range v.times {
		if isEmpty(data[k]) {
			continue
		}
		t, err := parseTime(k, data[k])
		if err != nil {
			r.release(view)
			return nil, err
		}
		f := m.format.format(t.In(loc))
		view[k], view[k+"_date"], view[k+"_time"] = f.dateTime, f.date, f.clock
	}
	view[viewLocale] = m.locale
	view[viewSubject] = ""
	for _, k := range v.optional {
		if _, ok := view[k]; !ok {
			view[k] = ""
		}
	}
	return view, nil
}

func (r *Renderer) release(view map[string]any) {
	clear(view)
	r.views.Put(view)
}

func (r *Renderer) exec(execute func(w io.Writer, data any) error, view map[string]any) (string, error) {
	buf := r.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer r.bufs.Put(buf)
	if err := execute(buf, view); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func parseTime(key string, v any) (time.Time, error) {
	s, _ := v.(string)
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, &FieldError{Field: "data." + key, Rule: "must be an RFC 3339 time"}
	}
	return t, nil
}

// zone loads an IANA zone once and keeps it: LoadLocation reads the zone
// database on every call.
func (r *Renderer) zone(v any) (*time.Location, error) {
	if isEmpty(v) {
		return nil, &FieldError{Field: "data." + keyTimeZone, Rule: "required to show times"}
	}
	name, isString := v.(string)
	if loc, ok := r.zones.Load(name); ok && isString {
		return loc.(*time.Location), nil
	}
	if !isString || name == "Local" {
		return nil, &FieldError{Field: "data." + keyTimeZone, Rule: "must be a known IANA time zone"}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, &FieldError{Field: "data." + keyTimeZone, Rule: "must be a known IANA time zone"}
	}
	r.zones.Store(name, loc)
	return loc, nil
}

// oneLine keeps a subject on one line whatever the data holds, so no value
// can add a mail header.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
