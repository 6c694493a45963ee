package api

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/termind/termind/internal/store"
)

const (
	maxPolicyVersion = 100
	maxUserAgent     = 512
	maxConnectionID  = 200
)

var consentPurposes = map[string]bool{
	store.ConsentCalendarReadBusy:    true,
	store.ConsentCalendarReadDetails: true,
	store.ConsentCalendarWrite:       true,
	store.ConsentNotifySMS:           true,
	store.ConsentNotifyEmail:         true,
}

var consentDecisions = map[string]bool{
	store.DecisionGranted: true,
	store.DecisionRefused: true,
	store.DecisionRevoked: true,
}

// consentRequest is the body of POST /v1/consents. Source is what the
// platform reports about the person's own request.
type consentRequest struct {
	SubjectID     string        `json:"subject_id"`
	Purpose       string        `json:"purpose"`
	Decision      string        `json:"decision"`
	PolicyVersion string        `json:"policy_version"`
	Source        consentSource `json:"source"`
	ConnectionID  string        `json:"connection_id"`
}

type consentSource struct {
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
}

// consentView is one ledger entry on the wire.
type consentView struct {
	ID            string        `json:"id"`
	SubjectID     string        `json:"subject_id"`
	Purpose       string        `json:"purpose"`
	Decision      string        `json:"decision"`
	PolicyVersion string        `json:"policy_version"`
	Actor         string        `json:"actor"`
	Source        consentSource `json:"source"`
	ConnectionID  string        `json:"connection_id"`
	CreatedAt     string        `json:"created_at"`
}

func viewConsent(c store.Consent) consentView {
	return consentView{
		ID:            c.ID,
		SubjectID:     c.SubjectID,
		Purpose:       c.Purpose,
		Decision:      c.Decision,
		PolicyVersion: c.PolicyVersion,
		Actor:         c.Actor,
		Source:        consentSource{IP: c.SourceIP, UserAgent: c.UserAgent},
		ConnectionID:  c.ConnectionID,
		CreatedAt:     c.CreatedAt.UTC().Format(time.RFC3339Nano),
	}
}

func validateConsent(req consentRequest) *apiError {
	if msg := checkSubjectID(req.SubjectID); msg != "" {
		return invalidField("subject_id", "is required and "+msg)
	}
	if !consentPurposes[req.Purpose] {
		return invalidField("purpose", "must be one of calendar.read.busy, calendar.read.details, calendar.write, notify.sms, notify.email")
	}
	if !consentDecisions[req.Decision] {
		return invalidField("decision", `must be "granted", "refused" or "revoked"`)
	}
	if req.PolicyVersion == "" || !boundedText(req.PolicyVersion, maxPolicyVersion) {
		return invalidField("policy_version", "is required: 1 to 100 characters, no control characters, naming the privacy policy the person saw")
	}
	if req.Source.IP != "" {
		if _, err := netip.ParseAddr(req.Source.IP); err != nil {
			return invalidField("source.ip", "must be an IPv4 or IPv6 address such as 203.0.113.7")
		}
	}
	if !boundedText(req.Source.UserAgent, maxUserAgent) {
		return invalidField("source.user_agent", "must be at most 512 characters, no control characters")
	}
	if len(req.ConnectionID) > maxConnectionID || !printableASCII(req.ConnectionID) {
		return invalidField("connection_id", "must be a connection id of at most 200 characters")
	}
	// A calendar consent is given with its connection, and taken back by
	// revoking the connection: that commit is what stops every read and
	// write and removes our copies. A ledger entry alone would say
	// "revoked" while the sync went on.
	if calendarPurpose(req.Purpose) && req.Decision == store.DecisionRevoked {
		return invalidField("decision", "a calendar consent is revoked with POST /v1/connections/{id}/revoke, which stops the sync and removes our copies")
	}
	return nil
}

func calendarPurpose(p string) bool {
	return p == store.ConsentCalendarReadBusy || p == store.ConsentCalendarReadDetails || p == store.ConsentCalendarWrite
}

func (s *server) recordConsent(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	var req consentRequest
	if !readJSON(w, r, maxBodyBytes, &req, false) {
		return
	}
	if aerr := validateConsent(req); aerr != nil {
		writeError(w, aerr)
		return
	}
	if req.ConnectionID != "" {
		// Only the subject's own connections of this tenant.
		conn, err := s.store.GetConnection(r.Context(), key.TenantID, req.ConnectionID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && conn.SubjectID != req.SubjectID) {
			writeError(w, invalidField("connection_id", "must be a connection of this subject"))
			return
		}
		if err != nil {
			s.internalError(w, r, "get connection", err)
			return
		}
	}
	c, err := s.store.RecordConsent(r.Context(), store.Consent{
		TenantID:      key.TenantID,
		SubjectID:     req.SubjectID,
		Purpose:       req.Purpose,
		Decision:      req.Decision,
		PolicyVersion: req.PolicyVersion,
		Actor:         actorOf(key),
		SourceIP:      req.Source.IP,
		UserAgent:     req.Source.UserAgent,
		ConnectionID:  req.ConnectionID,
	})
	if err != nil {
		s.internalError(w, r, "record consent", err)
		return
	}
	// The decision is committed; a failed audit write is a 500 so that the
	// client retries. A repeated decision is harmless: the latest one is
	// the state.
	if err := s.audit(r.Context(), consentAudit(c, sourceIP(req.Source.IP, r))); err != nil {
		s.internalError(w, r, "audit consent", err)
		return
	}
	writeJSON(w, http.StatusCreated, viewConsent(c))
}

// consentAudit is the audit entry of one ledger decision.
func consentAudit(c store.Consent, ip string) store.AuditEntry {
	e := store.AuditEntry{
		TenantID:   c.TenantID,
		Actor:      c.Actor,
		Action:     auditConsentPrefix + c.Decision,
		TargetKind: targetSubject,
		TargetID:   c.SubjectID,
		SubjectID:  c.SubjectID,
		SourceIP:   ip,
		Detail:     "purpose=" + c.Purpose,
	}
	if c.ConnectionID != "" {
		e.Detail += " connection_id=" + c.ConnectionID
	}
	return e
}

type consentList struct {
	Items []consentView `json:"items"`
}

func (s *server) listConsents(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	subjectID := r.PathValue("id")
	if msg := checkSubjectID(subjectID); msg != "" {
		writeError(w, invalidField("id", "the subject id "+msg))
		return
	}
	cs, err := s.store.ListConsents(r.Context(), key.TenantID, subjectID)
	if err != nil {
		s.internalError(w, r, "list consents", err)
		return
	}
	out := consentList{Items: make([]consentView, 0, len(cs))}
	for _, c := range cs {
		out.Items = append(out.Items, viewConsent(c))
	}
	writeJSON(w, http.StatusOK, out)
}

type restriction struct {
	SubjectID  string `json:"subject_id"`
	Restricted bool   `json:"restricted"`
}

// restrictSubject sets (Art. 18) or lifts the restriction; the answer is
// read back from the store so it shows what is in force.
func (s *server) restrictSubject(restricted bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, key store.APIKey) {
		subjectID := r.PathValue("id")
		if msg := checkSubjectID(subjectID); msg != "" {
			writeError(w, invalidField("id", "the subject id "+msg))
			return
		}
		if err := s.store.SetSubjectRestricted(r.Context(), key.TenantID, subjectID, restricted); err != nil {
			s.internalError(w, r, "set restriction", err)
			return
		}
		action := auditSubjectUnrestrict
		if restricted {
			action = auditSubjectRestrict
		}
		err := s.audit(r.Context(), store.AuditEntry{
			TenantID:   key.TenantID,
			Actor:      actorOf(key),
			Action:     action,
			TargetKind: targetSubject,
			TargetID:   subjectID,
			SubjectID:  subjectID,
			SourceIP:   sourceIP("", r),
		})
		if err != nil {
			s.internalError(w, r, "audit restriction", err)
			return
		}
		sub, err := s.store.GetSubject(r.Context(), key.TenantID, subjectID)
		if errors.Is(err, store.ErrNotFound) {
			// Unrestricting a subject never seen: nothing to lift.
			writeJSON(w, http.StatusOK, restriction{SubjectID: subjectID, Restricted: false})
			return
		}
		if err != nil {
			s.internalError(w, r, "get subject", err)
			return
		}
		writeJSON(w, http.StatusOK, restriction{SubjectID: sub.ID, Restricted: sub.Restricted})
	}
}
