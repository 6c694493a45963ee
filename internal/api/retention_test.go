package api

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
)

func TestRetentionPolicyAPI(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, _ := e.ingestKey()

		wantError(t, e.do("GET", "/v1/tenant/retention", ingest, ""), 403, "forbidden", "")
		wantError(t, e.do("PUT", "/v1/tenant/retention", ingest, `{"audit_days": 400}`), 403, "forbidden", "")

		w := e.do("GET", "/v1/tenant/retention", e.token, "")
		if w.Code != http.StatusOK {
			t.Fatalf("get: %d %s", w.Code, w.Body)
		}
		var got map[string]any
		decodeBody(t, w, &got)
		want := map[string]any{"notifications_days": 30.0, "audit_days": 365.0, "imported_events_days": 30.0,
			"broken_connections_days": 30.0, "inactive_subjects_days": 1825.0, "inactivity_action": "erase"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("default %s = %v, want %v", k, got[k], v)
			}
		}

		// Each rule refused with 422 naming the field; nothing stored or audited.
		for _, tc := range []struct{ body, field string }{
			{`{"notifications_days": 0}`, "notifications_days"},
			{`{"notifications_days": 3651}`, "notifications_days"},
			{`{"audit_days": 29}`, "audit_days"},
			{`{"audit_days": 3651}`, "audit_days"},
			{`{"imported_events_days": 0}`, "imported_events_days"},
			{`{"broken_connections_days": 366}`, "broken_connections_days"},
			{`{"inactive_subjects_days": 364}`, "inactive_subjects_days"},
			{`{"inactive_subjects_days": -5}`, "inactive_subjects_days"},
			{`{"inactive_subjects_days": 99999999999}`, "inactive_subjects_days"},
			{`{"inactivity_action": "shred"}`, "inactivity_action"},
			{`{"audit_days": 400, "notifications_days": 0}`, "notifications_days"},
		} {
			wantError(t, e.do("PUT", "/v1/tenant/retention", e.token, tc.body), 422, "invalid_field", tc.field)
		}
		wantError(t, e.do("PUT", "/v1/tenant/retention", e.token, `{"audit": 400}`), 400, "", "audit")
		if p, err := e.store.GetRetentionPolicy(e.ctx(), e.tenant.ID); err != nil || p != store.DefaultRetentionPolicy() {
			t.Errorf("policy after refusals: %+v, %v", p, err)
		}
		if slices.Contains(e.auditActions(""), "retention.update") {
			t.Error("a refused change was audited")
		}

		// A partial change keeps the other fields and is audited.
		w = e.do("PUT", "/v1/tenant/retention", e.token, `{"notifications_days": 7, "inactivity_action": "anonymise"}`)
		if w.Code != http.StatusOK {
			t.Fatalf("put: %d %s", w.Code, w.Body)
		}
		decodeBody(t, w, &got)
		if got["notifications_days"] != 7.0 || got["audit_days"] != 365.0 || got["inactivity_action"] != "anonymise" {
			t.Errorf("after put: %v", got)
		}
		a := e.findAudit("", "retention.update")
		if a.Detail != "notifications=30d->7d inactivity_action=erase->anonymise" || a.TargetKind != "tenant" || a.SubjectID != "" {
			t.Errorf("audit of the change: %+v", a)
		}
		p, err := e.store.GetRetentionPolicy(e.ctx(), e.tenant.ID)
		if err != nil || p.Notifications != 7*store.Day || p.InactivityAction != store.InactivityAnonymise {
			t.Errorf("stored policy: %+v, %v", p, err)
		}
	})
}

func TestLegalHoldAPI(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, _ := e.ingestKey()
		until := e.now.Add(90 * 24 * time.Hour).UTC().Format(time.RFC3339)

		wantError(t, e.do("POST", "/v1/holds", ingest, `{"reason": "x", "until": "`+until+`"}`), 403, "forbidden", "")
		for _, tc := range []struct{ body, field string }{
			{`{"until": "` + until + `"}`, "reason"},
			{`{"reason": "case", "until": "next week"}`, "until"},
			{`{"reason": "case"}`, "until"},
			{`{"reason": "case", "until": "2001-01-01T00:00:00Z"}`, "until"},
			{`{"reason": "case", "until": "2099-01-01T00:00:00Z"}`, "until"},
			{`{"subject_id": "` + strings.Repeat("x", 201) + `", "reason": "case", "until": "` + until + `"}`, "subject_id"},
		} {
			wantError(t, e.do("POST", "/v1/holds", e.token, tc.body), 422, "invalid_field", tc.field)
		}
		if n := e.countRows("legal_holds"); n != 0 {
			t.Fatalf("%d holds stored by refused requests", n)
		}

		n := emailRequest("hold-1")
		n["subject_id"] = "cust-h"
		e.createOK(mustJSON(t, n))
		w := e.do("POST", "/v1/holds", e.token, `{"subject_id": "cust-h", "reason": "court case 2026-17", "until": "`+until+`"}`)
		if w.Code != http.StatusCreated {
			t.Fatalf("place: %d %s", w.Code, w.Body)
		}
		var h holdView
		decodeBody(t, w, &h)
		if h.ID == "" || h.Scope != "subject" || h.SubjectID != "cust-h" || h.State != "active" || h.Until != until {
			t.Errorf("placed hold: %+v", h)
		}
		if a := e.findAudit("cust-h", "hold.place"); a.TargetID != h.ID || strings.Contains(a.Detail, "court") {
			t.Errorf("audit of the hold: %+v", a)
		}

		// Erasure is refused with 409 naming the hold; nothing is deleted.
		w = e.do("DELETE", "/v1/subjects/cust-h", e.token, "")
		wantError(t, w, http.StatusConflict, "legal_hold", "id")
		if !strings.Contains(w.Body.String(), h.ID) {
			t.Errorf("409 does not name the hold: %s", w.Body)
		}
		if n := e.countRows("notifications"); n != 1 {
			t.Errorf("%d notifications after the refused erasure, want 1", n)
		}

		var list struct{ Items []holdView }
		decodeBody(t, e.do("GET", "/v1/holds", e.token, ""), &list)
		if len(list.Items) != 1 || list.Items[0].ID != h.ID {
			t.Errorf("list: %+v", list.Items)
		}

		wantError(t, e.do("DELETE", "/v1/holds/hld_nope", e.token, ""), 404, "not_found", "")
		w = e.do("DELETE", "/v1/holds/"+h.ID, e.token, "")
		if w.Code != http.StatusOK {
			t.Fatalf("release: %d %s", w.Code, w.Body)
		}
		decodeBody(t, w, &h)
		if h.State != "released" || h.EndedBy == "" {
			t.Errorf("released hold: %+v", h)
		}
		e.findAudit("cust-h", "hold.release")
		if w := e.do("DELETE", "/v1/subjects/cust-h", e.token, ""); w.Code != http.StatusAccepted {
			t.Errorf("erasure after the release: %d %s", w.Code, w.Body)
		}
		if n := e.countRows("notifications"); n != 0 {
			t.Errorf("%d notifications after the erasure", n)
		}
	})
}
