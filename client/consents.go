package client

import (
	"context"
	"net/http"
)

// Consent purposes and decisions.
const (
	ConsentCalendarReadBusy    = "calendar.read.busy"
	ConsentCalendarReadDetails = "calendar.read.details"
	ConsentCalendarWrite       = "calendar.write"
	ConsentNotifySMS           = "notify.sms"
	ConsentNotifyEmail         = "notify.email"

	DecisionGranted = "granted"
	DecisionRefused = "refused"
	DecisionRevoked = "revoked"
)

// Source is what the platform saw of the person's own request.
type Source struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// ConsentRequest records one decision (POST /v1/consents).
type ConsentRequest struct {
	SubjectID     string `json:"subject_id"`
	Purpose       string `json:"purpose"`
	Decision      string `json:"decision"`
	PolicyVersion string `json:"policy_version"`
	Source        Source `json:"source"`
	ConnectionID  string `json:"connection_id,omitempty"`
}

// Consent is one entry of a subject's ledger.
type Consent struct {
	ID            string `json:"id"`
	SubjectID     string `json:"subject_id"`
	Purpose       string `json:"purpose"`
	Decision      string `json:"decision"`
	PolicyVersion string `json:"policy_version"`
	Actor         string `json:"actor"`
	Source        Source `json:"source"`
	ConnectionID  string `json:"connection_id"`
	CreatedAt     string `json:"created_at"`
}

// RecordConsent writes a decision to the ledger.
func (c *Client) RecordConsent(ctx context.Context, r ConsentRequest) (Consent, error) {
	var out Consent
	_, err := c.do(ctx, http.MethodPost, "/v1/consents", nil, r, &out)
	return out, err
}

// ListConsents returns a subject's ledger, oldest first.
func (c *Client) ListConsents(ctx context.Context, subjectID string) ([]Consent, error) {
	if err := requireID("subject", subjectID); err != nil {
		return nil, err
	}
	var out struct{ Items []Consent }
	_, err := c.do(ctx, http.MethodGet, "/v1/subjects/"+esc(subjectID)+"/consents", nil, nil, &out)
	return out.Items, err
}
