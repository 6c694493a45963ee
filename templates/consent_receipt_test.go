package templates

import (
	"errors"
	"maps"
	"path/filepath"
	"testing"
)

func receiptData(decision string) map[string]any {
	return map[string]any{
		"customer_name": "Jürgen Groß",
		"provider_name": "Praxis Dr. Weiß & Partner",
		"purpose":       "Terminerinnerungen per SMS <Twilio>",
		"decision":      decision,
		"decided_at":    "2026-11-21T08:30:00Z",
		"time_zone":     "Europe/Berlin",
		"receipt_id":    "cns_019368a2b4c07d7e8f90a1b2c3d4e5f6",
		"receipt_url":   "https://book.example.com/privacy/receipts/cns_019368a2?lang=de&x=1",
	}
}

// TestGoldenConsentReceipt renders the receipt mail of each decision and
// compares with testdata/golden/<locale>/consent_receipt[_<decision>].<part>.
func TestGoldenConsentReceipt(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	for _, locale := range []string{"de", "en"} {
		for _, decision := range []string{"granted", "refused", "revoked"} {
			t.Run(locale+"/"+decision, func(t *testing.T) {
				t.Parallel()
				data := receiptData(decision)
				if decision != "granted" {
					delete(data, "receipt_url") // optional
				}
				mail, err := r.Mail("tnt_golden", "consent_receipt", []string{locale}, data)
				if err != nil {
					t.Fatalf("Mail: %v", err)
				}
				if mail.Locale != locale {
					t.Errorf("Mail.Locale = %q, want %q", mail.Locale, locale)
				}
				base := filepath.Join("testdata", "golden", locale, "consent_receipt_"+decision)
				checkGolden(t, base+".subject.txt", mail.Subject+"\n")
				checkGolden(t, base+".text.txt", mail.Text)
				checkGolden(t, base+".html", mail.HTML)
			})
		}
	}
}

func TestCheckConsentReceipt(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	without := func(key string) map[string]any {
		d := maps.Clone(receiptData("granted"))
		delete(d, key)
		return d
	}
	tests := []struct {
		name    string
		channel string
		data    map[string]any
		field   string
	}{
		{"complete", "email", receiptData("granted"), ""},
		{"receipt_url is optional", "email", without("receipt_url"), ""},
		{"decision required", "email", without("decision"), "data.decision"},
		{"purpose required", "email", without("purpose"), "data.purpose"},
		{"receipt_id required", "email", without("receipt_id"), "data.receipt_id"},
		{"decided_at required", "email", without("decided_at"), "data.decided_at"},
		{"decided_at is RFC 3339", "email", func() map[string]any { d := receiptData("granted"); d["decided_at"] = "gestern"; return d }(), "data.decided_at"},
		{"no SMS form", "sms", receiptData("granted"), "template"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := r.Check("tnt_x", tc.channel, "consent_receipt", []string{"de"}, tc.data)
			var fe *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Errorf("Check = %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
}
