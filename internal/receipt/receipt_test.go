package receipt

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/termind/termind/internal/processing"
)

// schemaPath is the receipt schema kept in the repository.
var schemaPath = filepath.Join("..", "..", "docs", "schemas", "consent-receipt.schema.json")

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	sch, err := jsonschema.NewCompiler().Compile(schemaPath)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaPath, err)
	}
	return sch
}

func validate(t *testing.T, sch *jsonschema.Schema, v any) error {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

func TestReceiptsValidateAgainstSchema(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	at := time.Date(2026, 11, 21, 8, 30, 0, 0, time.UTC)
	iss := Issuer{Name: "Praxis Dr. Weber", Contact: "Dr. Anna Weber", Address: "Hauptstraße 5, 10115 Berlin",
		Email: "datenschutz@praxis.example", PolicyURL: "https://praxis.example/datenschutz", Jurisdiction: "DE"}
	tests := []struct {
		name      string
		d         Decision
		setup     processing.Setup
		language  string
		wantThird string
	}{
		{"sms with Twilio", Decision{Purpose: "notify.sms", Decision: "granted"}, processing.Setup{Twilio: true}, "de", "Twilio Inc. (US)"},
		{"sms to files", Decision{Purpose: "notify.sms", Decision: "refused"}, processing.Setup{}, "en", ""},
		{"email via relay", Decision{Purpose: "notify.email", Decision: "revoked"}, processing.Setup{SMTPHost: "mail.example.org"}, "en", "SMTP relay mail.example.org"},
		{"busy on CalDAV", Decision{Purpose: "calendar.read.busy", Decision: "granted", Calendar: &Calendar{Provider: "caldav", Host: "dav.example.org"}},
			processing.Setup{}, "de", "CalDAV server dav.example.org"},
		{"details on Google", Decision{Purpose: "calendar.read.details", Decision: "granted", Calendar: &Calendar{Provider: "google"}},
			processing.Setup{Google: true}, "en", "Google LLC (US)"},
		{"write without connection", Decision{Purpose: "calendar.write", Decision: "granted", Actor: "cli"}, processing.Setup{}, "en", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := tc.d
			d.ID, d.SubjectID, d.PolicyVersion, d.At = "cns_0192", "cust-7", "2026-01", at
			r, err := Build(d, iss, tc.setup, tc.language)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(t, sch, r); err != nil {
				t.Errorf("receipt does not validate: %v", err)
			}
			p := r.Services[0].Purposes[0]
			if p.ThirdPartyName != tc.wantThird || p.ThirdPartyDisclosure != (tc.wantThird != "") {
				t.Errorf("third party = %v %q, want %q", p.ThirdPartyDisclosure, p.ThirdPartyName, tc.wantThird)
			}
			if r.ConsentTimestamp != at.Unix() || r.ConsentReceiptID != "cns_0192" || r.PIIPrincipalID != "cust-7" ||
				r.Decision != tc.d.Decision || r.Language != tc.language || r.Jurisdiction != "DE" {
				t.Errorf("receipt = %+v", r)
			}
		})
	}
	if _, err := Build(Decision{Purpose: "marketing"}, iss, processing.Setup{}, "en"); err == nil {
		t.Error("Build accepted an unknown purpose")
	}
	if _, err := Build(Decision{Purpose: "notify.sms"}, iss, processing.Setup{}, "fr"); err == nil {
		t.Error("Build accepted an unknown language")
	}
}

// The validator is not vacuous: broken receipts are refused.
func TestSchemaRefusesBrokenReceipts(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	good, err := Build(Decision{ID: "cns_1", SubjectID: "s", Purpose: "notify.sms", Decision: "granted", At: time.Unix(1, 0)},
		Issuer{Name: "P"}, processing.Setup{Twilio: true}, "en")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		spoil func(r *Receipt)
	}{
		{"wrong version", func(r *Receipt) { r.Version = "1.0" }},
		{"third party without name", func(r *Receipt) { r.Services[0].Purposes[0].ThirdPartyName = "" }},
		{"no controller", func(r *Receipt) { r.PIIControllers = nil }},
		{"unknown decision", func(r *Receipt) { r.Decision = "maybe" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := good
			r.Services = []Service{{Service: good.Services[0].Service, Purposes: []Purpose{good.Services[0].Purposes[0]}}}
			tc.spoil(&r)
			if err := validate(t, sch, r); err == nil {
				t.Errorf("schema accepted a receipt with %s", tc.name)
			}
		})
	}
}
