package api

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/termind/termind/internal/receipt"
	"github.com/termind/termind/internal/store"
)

// consentReceipt is GET /v1/subjects/{id}/consents/{decision_id}/receipt:
// one ledger decision as a Kantara Consent Receipt v1.1 (in ?lang=de|en,
// default the tenant's locale). decision_id is the id the ledger lists.
func (s *server) consentReceipt(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	ts := s.tenantStore(w)
	if ts == nil {
		return
	}
	subjectID, decisionID := r.PathValue("id"), r.PathValue("decision_id")
	if msg := checkSubjectID(subjectID); msg != "" {
		writeError(w, invalidField("id", "the subject id "+msg))
		return
	}
	lang := r.URL.Query().Get("lang")
	if lang != "" && lang != "de" && lang != "en" {
		writeError(w, invalidField("lang", "must be de or en"))
		return
	}
	c, err := ts.GetConsent(r.Context(), key.TenantID, subjectID, decisionID)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFound("the subject has no such consent decision"))
		return
	}
	if err != nil {
		s.internalError(w, r, "get consent", err)
		return
	}
	t, err := s.store.GetTenant(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get tenant", err)
		return
	}
	if lang == "" {
		lang = "en"
		if strings.HasPrefix(t.DefaultLocale, "de") {
			lang = "de"
		}
	}
	ctrl, err := ts.GetTenantController(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get controller", err)
		return
	}
	d := receipt.Decision{ID: c.ID, SubjectID: c.SubjectID, Purpose: c.Purpose, Decision: c.Decision,
		PolicyVersion: c.PolicyVersion, Actor: c.Actor, At: c.CreatedAt}
	if c.ConnectionID != "" {
		// The connection may be gone (revoked and erased); the receipt then
		// names no calendar provider.
		if cn, err := s.store.GetConnection(r.Context(), key.TenantID, c.ConnectionID); err == nil {
			d.Calendar = &receipt.Calendar{Provider: cn.Provider}
			if u, err := url.Parse(cn.CalendarURL); err == nil {
				d.Calendar.Host = u.Hostname()
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			s.internalError(w, r, "get connection", err)
			return
		}
	}
	rc, err := receipt.Build(d, receipt.Issuer{Name: t.Name, Contact: ctrl.Contact, Address: ctrl.Address, Email: ctrl.Email,
		Phone: ctrl.Phone, PolicyURL: ctrl.PolicyURL, Jurisdiction: ctrl.Jurisdiction}, s.cfg.Processing, lang)
	if err != nil {
		s.internalError(w, r, "build receipt", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, rc)
}

type controllerRequest struct {
	Contact      string `json:"contact"`
	Address      string `json:"address"`
	Email        string `json:"email"`
	Phone        string `json:"phone"`
	PolicyURL    string `json:"policy_url"`
	Jurisdiction string `json:"jurisdiction"`
}

var jurisdictionRE = regexp.MustCompile(`^(EU|[A-Z]{2})$`)

func (c controllerRequest) check() *apiError {
	for _, f := range []struct{ name, v string }{{"contact", c.Contact}, {"address", c.Address}, {"phone", c.Phone}} {
		if utf8.RuneCountInString(f.v) > 500 || !utf8.ValidString(f.v) {
			return invalidField(f.name, "must be at most 500 characters of UTF-8")
		}
	}
	if strings.TrimSpace(c.Contact) == "" {
		return invalidField("contact", "is required: the person or office people contact about their data")
	}
	if strings.TrimSpace(c.Address) == "" {
		return invalidField("address", "is required: the controller's postal address")
	}
	if !validEmail(c.Email) {
		return invalidField("email", "must be a bare e-mail address such as datenschutz@praxis.example")
	}
	if u, err := url.Parse(c.PolicyURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return invalidField("policy_url", "must be an https URL of the privacy policy")
	}
	if c.Jurisdiction != "" && !jurisdictionRE.MatchString(c.Jurisdiction) {
		return invalidField("jurisdiction", "must be EU or an ISO 3166-1 alpha-2 country code such as DE")
	}
	return nil
}

type controllerView struct {
	controllerRequest
	UpdatedAt string `json:"updated_at,omitempty"`
}

// putController is PUT /v1/tenant/controller (admin): the controller's
// contact details and privacy policy that consent receipts name.
func (s *server) putController(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	ts := s.tenantStore(w)
	if ts == nil {
		return
	}
	var req controllerRequest
	if !readJSON(w, r, maxBodyBytes, &req, false) {
		return
	}
	if aerr := req.check(); aerr != nil {
		writeError(w, aerr)
		return
	}
	if err := ts.SetTenantController(r.Context(), store.Controller{TenantID: key.TenantID, Contact: req.Contact, Address: req.Address,
		Email: req.Email, Phone: req.Phone, PolicyURL: req.PolicyURL, Jurisdiction: req.Jurisdiction}); err != nil {
		s.internalError(w, r, "set controller", err)
		return
	}
	s.getController(w, r, key)
}

// getController is GET /v1/tenant/controller (admin).
func (s *server) getController(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	ts := s.tenantStore(w)
	if ts == nil {
		return
	}
	c, err := ts.GetTenantController(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get controller", err)
		return
	}
	writeJSON(w, http.StatusOK, controllerView{controllerRequest: controllerRequest{Contact: c.Contact, Address: c.Address,
		Email: c.Email, Phone: c.Phone, PolicyURL: c.PolicyURL, Jurisdiction: c.Jurisdiction}, UpdatedAt: rfc3339(c.UpdatedAt)})
}
