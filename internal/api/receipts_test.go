package api

import (
	"bytes"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/termind/termind/internal/processing"
	"github.com/termind/termind/internal/receipt"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestConsentReceiptAPI(t *testing.T) {
	t.Parallel()
	sch, err := jsonschema.NewCompiler().Compile(filepath.Join("..", "..", "docs", "schemas", "consent-receipt.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, func(c *Config, _ *Deps) { c.Processing = processing.Setup{Twilio: true} })
			ingest, _ := e.ingestKey()

			// Controller details: refused input stores nothing.
			for _, tc := range []struct{ body, field string }{
				{`{"contact":"","address":"Hauptstr. 1","email":"dp@praxis.example","policy_url":"https://praxis.example/p"}`, "contact"},
				{`{"contact":"Dr. Weber","address":"Hauptstr. 1","email":"Weber <dp@praxis.example>","policy_url":"https://praxis.example/p"}`, "email"},
				{`{"contact":"Dr. Weber","address":"Hauptstr. 1","email":"dp@praxis.example","policy_url":"http://praxis.example/p"}`, "policy_url"},
				{`{"contact":"Dr. Weber","address":"Hauptstr. 1","email":"dp@praxis.example","policy_url":"https://praxis.example/p","jurisdiction":"Germany"}`, "jurisdiction"},
			} {
				wantError(t, e.do("PUT", "/v1/tenant/controller", e.token, tc.body), http.StatusUnprocessableEntity, codeInvalidField, tc.field)
			}
			if n := e.countRows("tenant_controllers"); n != 0 {
				t.Fatalf("refused controller details stored: %d rows", n)
			}
			wantError(t, e.do("PUT", "/v1/tenant/controller", ingest, `{}`), http.StatusForbidden, codeForbidden, "")
			if w := e.do("PUT", "/v1/tenant/controller", e.token, `{"contact":"Dr. Anna Weber","address":"Hauptstraße 5, 10115 Berlin",
				"email":"datenschutz@praxis.example","policy_url":"https://praxis.example/datenschutz","jurisdiction":"DE"}`); w.Code != http.StatusOK {
				t.Fatalf("put controller: %d %s", w.Code, w.Body)
			}

			if w := e.do("POST", "/v1/consents", ingest, `{"subject_id":"cust-7","purpose":"notify.sms","decision":"granted",
				"policy_version":"2026-01","source":{"ip":"203.0.113.7","user_agent":"booking-ui"}}`); w.Code != http.StatusCreated {
				t.Fatalf("record consent: %d %s", w.Code, w.Body)
			}
			e.seedConnection("cust-7", store.ProviderCalDAV, store.ConsentCalendarReadBusy)
			ledger, err := e.store.ListConsents(e.ctx(), e.tenant.ID, "cust-7")
			if err != nil || len(ledger) != 2 {
				t.Fatalf("ledger: %d, %v", len(ledger), err)
			}
			wantThird := map[string]string{store.ConsentNotifySMS: "Twilio Inc. (US)", store.ConsentCalendarReadBusy: "CalDAV server dav.example.com"}
			for _, c := range ledger {
				w := e.do("GET", "/v1/subjects/cust-7/consents/"+c.ID+"/receipt?lang=de", ingest, "")
				if w.Code != http.StatusOK {
					t.Fatalf("receipt: %d %s", w.Code, w.Body)
				}
				inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(w.Body.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				if err := sch.Validate(inst); err != nil {
					t.Errorf("receipt of %s does not validate: %v\n%s", c.Purpose, err, w.Body)
				}
				var rc receipt.Receipt
				decodeBody(t, w, &rc)
				p := rc.Services[0].Purposes[0]
				if rc.ConsentReceiptID != c.ID || rc.PIIPrincipalID != "cust-7" || rc.Language != "de" || rc.Jurisdiction != "DE" ||
					rc.PIIControllers[0].PIIController != e.tenant.Name || rc.PIIControllers[0].Email != "datenschutz@praxis.example" ||
					rc.ConsentTimestamp != c.CreatedAt.Unix() || p.ThirdPartyName != wantThird[c.Purpose] {
					t.Errorf("receipt of %s = %s", c.Purpose, w.Body)
				}
			}
			// The platform can mail the receipt with the consent_receipt template.
			w := e.do("POST", "/v1/notifications", ingest, `{"idempotency_key":"receipt-`+ledger[0].ID+`","channel":"email",
				"to":"anna@example.org","locale":"de","template":"consent_receipt","purpose":"transactional","subject_id":"cust-7",
				"data":{"customer_name":"Anna","provider_name":"Praxis","purpose":"SMS-Erinnerungen","decision":"granted",
				"decided_at":"`+ledger[0].CreatedAt.Format(time.RFC3339)+`","time_zone":"Europe/Berlin","receipt_id":"`+ledger[0].ID+`"}}`)
			if w.Code != http.StatusAccepted {
				t.Errorf("mail the receipt: %d %s", w.Code, w.Body)
			}
			wantError(t, e.do("POST", "/v1/notifications", ingest, `{"idempotency_key":"receipt-2","channel":"email",
				"to":"anna@example.org","locale":"de","template":"consent_receipt","purpose":"transactional",
				"data":{"customer_name":"Anna","provider_name":"Praxis","purpose":"SMS","decision":"granted","time_zone":"Europe/Berlin","receipt_id":"x"}}`),
				http.StatusUnprocessableEntity, codeInvalidField, "data.decided_at")
			wantError(t, e.do("GET", "/v1/subjects/cust-7/consents/cns_missing/receipt", ingest, ""), http.StatusNotFound, codeNotFound, "")
			wantError(t, e.do("GET", "/v1/subjects/cust-8/consents/"+ledger[0].ID+"/receipt", ingest, ""), http.StatusNotFound, codeNotFound, "")
			wantError(t, e.do("GET", "/v1/subjects/cust-7/consents/"+ledger[0].ID+"/receipt?lang=fr", ingest, ""), http.StatusUnprocessableEntity, codeInvalidField, "lang")
		})
	}
}
