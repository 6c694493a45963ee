package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"ntf_01a1fc.eml":         true,
		"a-b_c.9":                true,
		"":                       false,
		".hidden":                false,
		"../etc/passwd":          false,
		"a/b":                    false,
		"name with space":        false,
		"ümlaut":                 false,
		strings.Repeat("a", 201): false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := Write(dir, "x.json", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, "x.json", []byte(`{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "x.json"))
	if err != nil || string(b) != `{"a":2}` {
		t.Fatalf("content %q, %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d files in the spool, want 1 (no temporary files left)", len(entries))
	}
	if fi, _ := os.Stat(filepath.Join(dir, "x.json")); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if err := Write(filepath.Join(dir, "missing"), "y", nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
