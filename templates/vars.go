package templates

import (
	"slices"
	"strings"
	"text/template/parse"
)

// timeKeys are the data keys holding RFC 3339 instants; the renderer
// replaces each with its formatted form and adds <key>_date and <key>_time.
func timeKeys() [4]string { return [4]string{"start", "end", "previous_start", "decided_at"} }

// Keys the renderer itself puts into the view; data need not carry them.
const (
	viewLocale  = "locale"
	viewSubject = "subject"
	keyTimeZone = "time_zone"
)

// varSet is what a channel's templates need from the data, derived from
// their parse trees.
type varSet struct {
	required []string // data keys that must be present and non-empty, in order of first use
	optional []string // view keys used only under their own guard; set to "" when absent
	times    []string // time keys whose formatted forms are used
	all      []string // every view key referenced
}

// refs collects root-level field references, remembering whether any of
// them was unguarded.
type refs struct {
	order    []string
	required map[string]bool
}

func newRefs() *refs { return &refs{required: map[string]bool{}} }

func (r *refs) add(key string, guarded bool) {
	prev, seen := r.required[key]
	if !seen {
		r.order = append(r.order, key)
	}
	r.required[key] = prev || !guarded
}

// walker visits a template tree and records which fields of the root data
// it reads. rootDot says whether "." is still the root data at this point.
type walker struct {
	lookup func(name string) *parse.Tree
	refs   *refs
	depth  int
}

func (w *walker) tree(t *parse.Tree) {
	if t != nil && t.Root != nil {
		w.node(t.Root, true, nil)
	}
}

func (w *walker) node(n parse.Node, rootDot bool, guards []string) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			w.node(c, rootDot, guards)
		}
	case *parse.ActionNode:
		w.pipe(n.Pipe, rootDot, guards)
	case *parse.IfNode:
		w.branch(&n.BranchNode, rootDot, rootDot, guards)
	case *parse.WithNode:
		w.branch(&n.BranchNode, rootDot, false, guards)
	case *parse.RangeNode:
		w.pipe(n.Pipe, rootDot, guards)
		w.node(n.List, false, guards)
		w.node(n.ElseList, rootDot, guards)
	case *parse.TemplateNode:
		if n.Pipe == nil {
			return
		}
		w.pipe(n.Pipe, rootDot, guards)
		// Follow the call only when it hands over the root data; the depth
		// limit stops recursive templates.
		if passesRoot(n.Pipe, rootDot) && w.depth < 16 {
			if t := w.lookup(n.Name); t != nil && t.Root != nil {
				w.depth++
				w.node(t.Root, true, guards)
				w.depth--
			}
		}
	}
}

// branch handles if and with: fields that the condition guarantees to be
// set guard the body, and the condition itself reads them optionally.
func (w *walker) branch(b *parse.BranchNode, rootDot, bodyRootDot bool, guards []string) {
	inner := append(slices.Clip(guards), conditionGuards(b.Pipe, rootDot)...)
	w.pipe(b.Pipe, rootDot, inner)
	w.node(b.List, bodyRootDot, inner)
	w.node(b.ElseList, rootDot, guards)
}

func (w *walker) pipe(p *parse.PipeNode, rootDot bool, guards []string) {
	if p == nil {
		return
	}
	for _, c := range p.Cmds {
		for _, a := range c.Args {
			w.arg(a, rootDot, guards)
		}
	}
}

func (w *walker) arg(n parse.Node, rootDot bool, guards []string) {
	switch n := n.(type) {
	case *parse.FieldNode:
		if rootDot {
			w.refs.add(n.Ident[0], guarded(n.Ident[0], guards))
		}
	case *parse.VariableNode:
		if key, ok := rootVariable(n); ok {
			w.refs.add(key, guarded(key, guards))
		}
	case *parse.ChainNode:
		w.arg(n.Node, rootDot, guards)
	case *parse.PipeNode:
		w.pipe(n, rootDot, guards)
	}
}

// guarded reports whether key is guarded; a guard on a time also covers
// its _date and _time forms.
func guarded(key string, guards []string) bool {
	if slices.Contains(guards, key) {
		return true
	}
	k, ok := timeKeyOf(key)
	return ok && slices.Contains(guards, k)
}

// conditionGuards returns the root fields a true condition guarantees:
// {{if .x}}, {{with .x}}, {{if and .x .y}} (and $.x forms).
func conditionGuards(p *parse.PipeNode, rootDot bool) []string {
	if p == nil || len(p.Cmds) != 1 {
		return nil
	}
	args := p.Cmds[0].Args
	if len(args) > 1 {
		if id, ok := args[0].(*parse.IdentifierNode); !ok || id.Ident != "and" {
			return nil
		}
		args = args[1:]
	}
	var keys []string
	for _, a := range args {
		key, ok := guardField(a, rootDot)
		if !ok {
			return nil
		}
		keys = append(keys, key)
	}
	return keys
}

func guardField(n parse.Node, rootDot bool) (string, bool) {
	switch n := n.(type) {
	case *parse.FieldNode:
		if rootDot && len(n.Ident) == 1 {
			return n.Ident[0], true
		}
	case *parse.VariableNode:
		if len(n.Ident) == 2 {
			return rootVariable(n)
		}
	}
	return "", false
}

// rootVariable reads $.x as a reference to root field x.
func rootVariable(n *parse.VariableNode) (string, bool) {
	if len(n.Ident) > 1 && n.Ident[0] == "$" {
		return n.Ident[1], true
	}
	return "", false
}

func passesRoot(p *parse.PipeNode, rootDot bool) bool {
	if len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.DotNode:
		return rootDot
	case *parse.VariableNode:
		return len(a.Ident) == 1 && a.Ident[0] == "$"
	}
	return false
}

// timeKeyOf reports which time key a view key is derived from:
// "start_date" → "start".
func timeKeyOf(viewKey string) (string, bool) {
	for _, k := range timeKeys() {
		if viewKey == k || viewKey == k+"_date" || viewKey == k+"_time" {
			return k, true
		}
	}
	return "", false
}

// dataKeysFor lists the data keys a view key is computed from.
func dataKeysFor(viewKey string) []string {
	if viewKey == viewLocale || viewKey == viewSubject {
		return nil
	}
	if k, ok := timeKeyOf(viewKey); ok {
		return []string{k, keyTimeZone}
	}
	return []string{viewKey}
}

// newVarSet turns collected references into what rendering checks and fills.
func newVarSet(r *refs) *varSet {
	v := &varSet{}
	for _, key := range r.order {
		v.all = append(v.all, key)
		if k, ok := timeKeyOf(key); ok && !slices.Contains(v.times, k) {
			v.times = append(v.times, k)
		}
		if key == viewLocale || key == viewSubject {
			continue
		}
		if !r.required[key] {
			v.optional = append(v.optional, key)
			continue
		}
		for _, d := range dataKeysFor(key) {
			if !slices.Contains(v.required, d) {
				v.required = append(v.required, d)
			}
		}
	}
	// Keep the zone after the times that need it, so a request missing both
	// is told about the time first.
	if i := slices.Index(v.required, keyTimeZone); i >= 0 {
		v.required = append(slices.Delete(v.required, i, i+1), keyTimeZone)
	}
	return v
}

// isEmpty is the presence test for required data: absent, null and ""
// (after trimming spaces) all count as missing.
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(v) == ""
	}
	return false
}
