package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/store"
)

// loadOpenAPI loads and validates the embedded document; kin-openapi's
// Validate also checks every example against its schema.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	return doc
}

// documentedRoutes lists the document's operations as "METHOD /path".
func documentedRoutes(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

// routeCoverage compares the routing table with the document: undocumented
// are served routes the document lacks, unserved documented ones the
// table lacks. Go's mux patterns and OpenAPI paths share the {name} syntax.
func routeCoverage(routes []Route, documented []string) (undocumented, unserved []string) {
	served := map[string]bool{}
	for _, r := range routes {
		key := r.Method + " " + r.Pattern
		served[key] = true
		if !slices.Contains(documented, key) {
			undocumented = append(undocumented, key)
		}
	}
	for _, d := range documented {
		if !served[d] {
			unserved = append(unserved, d)
		}
	}
	return undocumented, unserved
}

func TestRouteCoverageFindsDifferences(t *testing.T) {
	t.Parallel()
	documented := []string{"GET /healthz", "POST /v1/notifications"}
	cases := []struct {
		name                   string
		routes                 []Route
		undocumented, unserved []string
	}{
		{"same", []Route{{"GET", "/healthz", ""}, {"POST", "/v1/notifications", "ingest"}}, nil, nil},
		{"route added without documentation",
			[]Route{{"GET", "/healthz", ""}, {"POST", "/v1/notifications", "ingest"}, {"POST", "/v1/holds", "admin"}},
			[]string{"POST /v1/holds"}, nil},
		{"other method on a documented path",
			[]Route{{"GET", "/healthz", ""}, {"POST", "/v1/notifications", "ingest"}, {"GET", "/v1/notifications", "ingest"}},
			[]string{"GET /v1/notifications"}, nil},
		{"documented route removed", []Route{{"GET", "/healthz", ""}}, nil, []string{"POST /v1/notifications"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u, s := routeCoverage(c.routes, documented)
			if !slices.Equal(u, c.undocumented) || !slices.Equal(s, c.unserved) {
				t.Errorf("routeCoverage = %v, %v; want %v, %v", u, s, c.undocumented, c.unserved)
			}
		})
	}
}

// TestOpenAPIDocumentsEveryRoute fails when a route is added to table()
// without its description in openapi.yaml, or the other way round.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	documented := documentedRoutes(loadOpenAPI(t))
	for _, r := range Routes() {
		t.Run(r.Method+" "+r.Pattern, func(t *testing.T) {
			if !slices.Contains(documented, r.Method+" "+r.Pattern) {
				t.Errorf("%s %s is served but not in openapi.yaml", r.Method, r.Pattern)
			}
		})
	}
	if _, unserved := routeCoverage(Routes(), documented); len(unserved) > 0 {
		t.Errorf("openapi.yaml documents routes the API does not have: %v", unserved)
	}
}

// TestOpenAPIPathsAreServed sends each documented method and path to the
// real handler: the mux must route it (no "no such route" 404, no 405).
func TestOpenAPIPathsAreServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite, func(_ *Config, d *Deps) {
		d.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up 1\n") })
	})
	doc := loadOpenAPI(t)
	for _, key := range documentedRoutes(doc) {
		method, path, _ := strings.Cut(key, " ")
		t.Run(key, func(t *testing.T) {
			w := e.do(method, strings.ReplaceAll(path, "{id}", "x1"), "", "")
			var body errorBody
			_ = json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code == http.StatusMethodNotAllowed || (w.Code == http.StatusNotFound && body.Error.Message == "no such route") {
				t.Errorf("%s: %d %s: the router does not serve a documented route", key, w.Code, w.Body)
			}
		})
	}
}

// TestOpenAPIServedByTheAPI: GET /openapi.yaml answers the embedded document.
func TestOpenAPIServedByTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite)
	w := e.do("GET", "/openapi.yaml", "", "")
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), OpenAPI()) || w.Header().Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %d %q, %d bytes", w.Code, w.Header().Get("Content-Type"), w.Body.Len())
	}
}

// TestOpenAPIExamplesMatchSchemas checks every example against its schema
// explicitly, so that a loader option can never silently skip them.
func TestOpenAPIExamplesMatchSchemas(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	checked := 0
	check := func(where string, schema *openapi3.SchemaRef, value any) {
		t.Helper()
		if schema == nil || schema.Value == nil || value == nil {
			return
		}
		checked++
		if err := schema.Value.VisitJSON(value); err != nil {
			t.Errorf("%s: example does not match its schema: %v", where, err)
		}
	}
	checkContent := func(where string, content openapi3.Content) {
		for ct, mt := range content {
			check(where+" "+ct, mt.Schema, mt.Example)
			for name, ex := range mt.Examples {
				if ex.Value != nil {
					check(where+" "+ct+" "+name, mt.Schema, ex.Value.Value)
				}
			}
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				checkContent(where+" request", op.RequestBody.Value.Content)
			}
			for status, resp := range op.Responses.Map() {
				if resp.Value != nil {
					checkContent(where+" "+status, resp.Value.Content)
				}
			}
			for _, p := range op.Parameters {
				if p.Value != nil {
					check(where+" "+p.Value.Name, p.Value.Schema, p.Value.Example)
				}
			}
		}
	}
	for name, resp := range doc.Components.Responses {
		checkContent("response "+name, resp.Value.Content)
	}
	if checked < 40 {
		t.Errorf("checked only %d examples; the walk over the document is broken", checked)
	}

	// A wrong example must be refused, or the check above proves nothing.
	bad := map[string]any{"error": map[string]any{"code": "no_such_code", "message": "x"}}
	if err := doc.Components.Schemas["Error"].Value.VisitJSON(bad); err == nil {
		t.Errorf("an error with an unknown code matched the Error schema")
	}
}

// responseChecker validates recorded answers against the responses the
// document declares for their method, path and status.
type responseChecker struct {
	t      *testing.T
	router routers.Router
}

func newResponseChecker(t *testing.T) responseChecker {
	t.Helper()
	router, err := legacy.NewRouter(loadOpenAPI(t))
	if err != nil {
		t.Fatal(err)
	}
	return responseChecker{t: t, router: router}
}

// check validates w as the answer to method path; status is what the
// test expects the API to answer.
func (c responseChecker) check(method, path string, status int, w *httptest.ResponseRecorder) {
	c.t.Helper()
	if w.Code != status {
		c.t.Errorf("%s %s: status %d, want %d (%s)", method, path, w.Code, status, w.Body)
		return
	}
	req := httptest.NewRequest(method, "http://127.0.0.1:8080"+path, nil)
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s %s: not in the document: %v", method, path, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  w.Code,
		Header:  w.Header(),
		Body:    io.NopCloser(bytes.NewReader(w.Body.Bytes())),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.t.Errorf("%s %s → %d does not match the document: %v\nbody: %s", method, path, w.Code, err, w.Body)
	}
}

// TestOpenAPIMatchesResponses validates real answers of the API against
// the documented response schemas (which refuse undocumented fields).
func TestOpenAPIMatchesResponses(t *testing.T) {
	t.Parallel()
	c := newResponseChecker(t)
	e := newEnv(t, store.DialectSQLite)
	ntf := e.createOK(mustJSON(t, emailRequest("openapi-1")))
	sms := mustJSON(t, smsRequest("openapi-2"))
	consent := `{"subject_id":"cust-1","purpose":"notify.sms","decision":"granted","policy_version":"2026-01","source":{"ip":"203.0.113.7","user_agent":"ui"}}`
	appt := `{"subject_ids":["cust-1"],"start":"2030-03-01T09:00:00+01:00","end":"2030-03-01T09:30:00+01:00","time_zone":"Europe/Berlin","title":"Visit"}`
	cases := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/v1/notifications", mustJSON(t, emailRequest("openapi-1")), 200},
		{"POST", "/v1/notifications", `{"channel":"fax"}`, 422},
		{"POST", "/v1/notifications", `{"colour":"red"}`, 400},
		{"POST", "/v1/notifications/batch", `{"items":[` + sms + `,{"channel":"sms"}]}`, 200},
		{"GET", "/v1/notifications/" + ntf, "", 200},
		{"GET", "/v1/notifications/ntf_missing", "", 404},
		{"POST", "/v1/consents", consent, 201},
		{"GET", "/v1/subjects/cust-1/consents", "", 200},
		{"POST", "/v1/subjects/cust-1/restrict", "", 200},
		{"POST", "/v1/subjects/cust-1/unrestrict", "", 200},
		{"PUT", "/v1/appointments/appt-1", appt, 201},
		{"PUT", "/v1/appointments/appt-1", appt, 200},
		{"DELETE", "/v1/appointments/appt-1", "", 200},
		{"GET", "/v1/subjects/cust-1/busy?from=2030-03-01T00:00:00Z&to=2030-03-08T00:00:00Z", "", 200},
		{"GET", "/v1/connections?subject_id=cust-1", "", 200},
		{"GET", "/v1/subjects/cust-1/export", "", 200},
		{"DELETE", "/v1/notifications/" + ntf, "", 200},
		{"DELETE", "/v1/notifications/" + ntf, "", 409},
		{"DELETE", "/v1/subjects/cust-1", "", 202},
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
	}
	for _, tc := range cases {
		c.check(tc.method, tc.path, tc.status, e.do(tc.method, tc.path, e.token, tc.body))
	}
	ingest, _ := e.ingestKey()
	c.check("GET", "/v1/subjects/cust-1/export", 403, e.do("GET", "/v1/subjects/cust-1/export", ingest, ""))
	c.check("GET", "/v1/connections", 401, e.do("GET", "/v1/connections", "", ""))
}

// TestOpenAPIMatchesConnectionResponses: the same for the calendar
// routes, against Radicale and the Google fake.
func TestOpenAPIMatchesConnectionResponses(t *testing.T) {
	t.Parallel()
	c := newResponseChecker(t)
	r := caldavtest.StartRadicale(t)
	r.MakeCalendar(t, "alice", "Office")
	e := newEnv(t, store.DialectSQLite, withCalDAV(privateConnector()))
	w := e.do("POST", "/v1/connections/caldav", e.token, mustJSON(t, caldavBody(r.URL)))
	c.check("POST", "/v1/connections/caldav", 201, w)
	var conn connectionView
	decodeBody(t, w, &conn)
	byID := "/v1/connections/" + conn.ID
	c.check("GET", byID, 200, e.do("GET", byID, e.token, ""))
	c.check("GET", "/v1/connections", 200, e.do("GET", "/v1/connections", e.token, ""))
	c.check("POST", byID+"/sync", 202, e.do("POST", byID+"/sync", e.token, `{"full":true}`))
	c.check("POST", "/v1/connections/caldav", 422, e.do("POST", "/v1/connections/caldav", e.token, mustJSON(t, with(caldavBody(r.URL), "privacy", "all"))))
	c.check("POST", byID+"/revoke", 202, e.do("POST", byID+"/revoke", e.token, `{"reason":"customer request"}`))
	c.check("POST", byID+"/revoke", 202, e.do("POST", byID+"/revoke", e.token, ""))
	if err := e.store.FinishRevocation(e.ctx(), conn.ID, e.now); err != nil {
		t.Fatal(err)
	}
	c.check("POST", byID+"/revoke", 200, e.do("POST", byID+"/revoke", e.token, ""))
	c.check("POST", byID+"/sync", 409, e.do("POST", byID+"/sync", e.token, ""))
	c.check("GET", "/v1/connections/con_missing", 404, e.do("GET", "/v1/connections/con_missing", e.token, ""))

	g := newGoogleEnv(t, store.DialectSQLite, nil)
	c.check("POST", "/v1/connections/google/authorize", 200,
		g.do("POST", "/v1/connections/google/authorize", g.token, mustJSON(t, authorizeBody("cust-g"))))
	c.check("GET", "/oauth/google/callback?state=forged", 400, g.do("GET", "/oauth/google/callback?state=forged", "", ""))
	c.check("POST", "/v1/connections/google/authorize", 503,
		e.do("POST", "/v1/connections/google/authorize", e.token, mustJSON(t, authorizeBody("cust-g"))))
}

func TestMetricsAccess(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up 1\n") })
	cases := []struct {
		name, token, remote, auth string
		status                    int
	}{
		{"no token, loopback", "", "127.0.0.1:5000", "", 200},
		{"no token, loopback v6", "", "[::1]:5000", "", 200},
		{"no token, remote", "", "203.0.113.7:5000", "", 403},
		{"token, remote, right bearer", "s3cret-metrics", "203.0.113.7:5000", "Bearer s3cret-metrics", 200},
		{"token, loopback, no bearer", "s3cret-metrics", "127.0.0.1:5000", "", 401},
		{"token, wrong bearer", "s3cret-metrics", "127.0.0.1:5000", "Bearer nope", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := New(Config{MetricsToken: c.token}, Deps{Metrics: metrics})
			r := httptest.NewRequest("GET", "/metrics", nil)
			r.RemoteAddr = c.remote
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, c.status, w.Body)
			}
			if c.status == 200 && w.Body.String() != "up 1\n" {
				t.Errorf("body %q, want the metrics handler's", w.Body)
			}
		})
	}
	t.Run("not configured", func(t *testing.T) {
		t.Parallel()
		w := httptest.NewRecorder()
		New(Config{}, Deps{}).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		wantError(t, w, 404, "not_found", "")
	})
}
