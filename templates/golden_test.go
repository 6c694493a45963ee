package templates

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenData is the fixed data set behind the golden files. The names carry
// umlauts, ß and HTML-special characters to show what is escaped where.
func goldenData() map[string]any {
	return map[string]any{
		"customer_name":  "Jürgen Groß",
		"provider_name":  "Praxis Dr. Weiß & Partner",
		"service":        "Erstberatung <60 min>",
		"start":          "2026-11-23T13:30:00Z",
		"end":            "2026-11-23T14:30:00Z",
		"previous_start": "2026-11-20T09:00:00Z",
		"time_zone":      "Europe/Berlin",
		"location":       "Hauptstraße 5, 10115 Berlin",
		"manage_url":     "https://book.example.com/m/abc123?lang=de&x=1",
	}
}

func newTestRenderer(t testing.TB, overrideDir string) *Renderer {
	t.Helper()
	r, err := New(overrideDir)
	if err != nil {
		t.Fatalf("New(%q): %v", overrideDir, err)
	}
	return r
}

// TestGolden renders every default template in every locale and part and
// compares with testdata/golden/<locale>/<name>.<part>.
func TestGolden(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	for _, locale := range []string{"de", "en"} {
		for _, name := range []string{"confirmation", "reminder", "cancellation", "reschedule"} {
			t.Run(locale+"/"+name, func(t *testing.T) {
				t.Parallel()
				mail, err := r.Mail("tnt_golden", name, []string{locale}, goldenData())
				if err != nil {
					t.Fatalf("Mail: %v", err)
				}
				if mail.Locale != locale {
					t.Errorf("Mail.Locale = %q, want %q", mail.Locale, locale)
				}
				sms, err := r.SMS("tnt_golden", name, []string{locale}, goldenData())
				if err != nil {
					t.Fatalf("SMS: %v", err)
				}
				if sms.Encoding != EncodingGSM7 || sms.Segments > 2 {
					t.Errorf("SMS = %d segments %s, want at most 2 GSM-7 for typical data", sms.Segments, sms.Encoding)
				}
				dir := filepath.Join("testdata", "golden", locale)
				checkGolden(t, filepath.Join(dir, name+".subject.txt"), mail.Subject+"\n")
				checkGolden(t, filepath.Join(dir, name+".text.txt"), mail.Text)
				checkGolden(t, filepath.Join(dir, name+".html"), mail.HTML)
				checkGolden(t, filepath.Join(dir, name+".sms.txt"), sms.Body+"\n")
			})
		}
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./templates -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file:\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
