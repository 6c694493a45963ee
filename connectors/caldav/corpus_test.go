package caldav_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-ical"

	"github.com/termind/termind/connectors/caldav"
)

// corpusDir returns the shared iCalendar corpus, which lives in shared/
// beside the repository (CI clones the repository with shared/ next to
// it). A missing corpus fails the test: silently skipping would hide that
// the real-world files were never parsed.
func corpusDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package directory")
		}
		dir = parent
	}
	corpus := filepath.Join(dir, "..", "shared", "ics-corpus")
	if _, err := os.Stat(filepath.Join(corpus, "README.md")); err != nil {
		t.Fatalf("the iCalendar corpus must be at %s (shared/ beside the repository): %v", corpus, err)
	}
	return corpus
}

// corpusFiles returns every .ics file of the corpus, by path relative to
// the corpus directory.
func corpusFiles(t testing.TB) map[string]string {
	t.Helper()
	dir := corpusDir(t)
	paths, err := filepath.Glob(filepath.Join(dir, "*", "*.ics"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 100 {
		t.Fatalf("only %d corpus files in %s", len(paths), dir)
	}
	out := map[string]string{}
	for _, p := range paths {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.ToSlash(rel)] = p
	}
	return out
}

func mustParse(t *testing.T, data []byte) *ical.Calendar {
	t.Helper()
	cal, err := caldav.ParseObject(data)
	if err != nil {
		t.Fatalf("ParseObject: %v", err)
	}
	return cal
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
