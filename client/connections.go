package client

import (
	"context"
	"net/http"
	"net/url"
)

// Privacy levels and directions of a connection.
const (
	PrivacyBusy    = "busy"
	PrivacyDetails = "details"
	PrivacyFull    = "full"

	DirectionImport = "import"
	DirectionExport = "export"
	DirectionBoth   = "both"
)

// CalendarConsent is the consent a connection is made under; privacy and
// direction may not exceed it.
type CalendarConsent struct {
	Purposes      []string `json:"purposes"`
	PolicyVersion string   `json:"policy_version"`
	Source        Source   `json:"source"`
}

// CalDAVConnect connects a CalDAV calendar (POST /v1/connections/caldav).
type CalDAVConnect struct {
	SubjectID          string          `json:"subject_id"`
	URL                string          `json:"url"`
	Username           string          `json:"username"`
	Password           string          `json:"password"`
	Calendar           string          `json:"calendar,omitempty"`
	CreateCalendar     string          `json:"create_calendar,omitempty"`
	Privacy            string          `json:"privacy"`
	Direction          string          `json:"direction"`
	KeepCopiesOnRevoke bool            `json:"keep_copies_on_revoke,omitempty"`
	Consent            CalendarConsent `json:"consent"`
}

// GoogleAuthorize starts a Google connection.
type GoogleAuthorize struct {
	SubjectID     string          `json:"subject_id"`
	Privacy       string          `json:"privacy"`
	Direction     string          `json:"direction"`
	Consent       CalendarConsent `json:"consent"`
	RedirectAfter string          `json:"redirect_after"`
}

// GoogleAuthorization is where to send the person's browser.
type GoogleAuthorization struct {
	AuthURL   string `json:"auth_url"`
	ExpiresAt string `json:"expires_at"`
}

// Connection is a calendar connection; never its credentials.
type Connection struct {
	ID                string          `json:"id"`
	SubjectID         string          `json:"subject_id"`
	Provider          string          `json:"provider"`
	CalendarURL       string          `json:"calendar_url"`
	CalendarName      string          `json:"calendar_name"`
	Privacy           string          `json:"privacy"`
	Direction         string          `json:"direction"`
	State             string          `json:"state"`
	StateReason       string          `json:"state_reason"`
	LastSyncAt        string          `json:"last_sync_at"`
	LastError         string          `json:"last_error"`
	CreatedAt         string          `json:"created_at"`
	UpdatedAt         string          `json:"updated_at"`
	RevokeRequestedAt string          `json:"revoke_requested_at"`
	RevokedAt         string          `json:"revoked_at"`
	Cleanup           string          `json:"cleanup"`
	Sync              *ConnectionSync `json:"sync,omitempty"`
}

// ConnectionSync is how a connection's sync stands.
type ConnectionSync struct {
	LastSyncAt string `json:"last_sync_at"`
	LastFullAt string `json:"last_full_at"`
	LastError  string `json:"last_error"`
	Attention  string `json:"attention"`
	Imported   int    `json:"imported"`
	LastRun    struct {
		Imported int    `json:"imported"`
		Removed  int    `json:"removed"`
		Pushed   int    `json:"pushed"`
		Restored int    `json:"restored"`
		Full     bool   `json:"full"`
		Error    string `json:"error"`
	} `json:"last_run"`
}

// ConnectionState is the answer to revoke and sync requests.
type ConnectionState struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Sync is "queued" after SyncConnection.
	Sync string `json:"sync,omitempty"`
}

// Revoke is the optional body of a revocation.
type Revoke struct {
	Reason        string `json:"reason,omitempty"`
	PolicyVersion string `json:"policy_version,omitempty"`
	Source        Source `json:"source"`
}

// ConnectCalDAV checks the calendar server and stores the connection.
func (c *Client) ConnectCalDAV(ctx context.Context, r CalDAVConnect) (Connection, error) {
	var out Connection
	_, err := c.do(ctx, http.MethodPost, "/v1/connections/caldav", nil, r, &out)
	return out, err
}

// AuthorizeGoogle returns the URL of Google's consent screen.
func (c *Client) AuthorizeGoogle(ctx context.Context, r GoogleAuthorize) (GoogleAuthorization, error) {
	var out GoogleAuthorization
	_, err := c.do(ctx, http.MethodPost, "/v1/connections/google/authorize", nil, r, &out)
	return out, err
}

// ListConnections lists the tenant's connections, of one subject when
// subjectID is not "".
func (c *Client) ListConnections(ctx context.Context, subjectID string) ([]Connection, error) {
	var q url.Values
	if subjectID != "" {
		q = url.Values{"subject_id": {subjectID}}
	}
	var out struct{ Items []Connection }
	_, err := c.do(ctx, http.MethodGet, "/v1/connections", q, nil, &out)
	return out.Items, err
}

// GetConnection returns one connection with its sync and cleanup status.
func (c *Client) GetConnection(ctx context.Context, id string) (Connection, error) {
	var out Connection
	if err := requireID("connection", id); err != nil {
		return out, err
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/connections/"+esc(id), nil, nil, &out)
	return out, err
}

// RevokeConnection commits the revocation; the cleanup follows in the
// background (state revoking, then revoked). r may be nil.
func (c *Client) RevokeConnection(ctx context.Context, id string, r *Revoke) (ConnectionState, error) {
	var out ConnectionState
	if err := requireID("connection", id); err != nil {
		return out, err
	}
	var body any
	if r != nil {
		body = r
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/connections/"+esc(id)+"/revoke", nil, body, &out)
	return out, err
}

// SyncConnection queues a pull now; full asks for a full reconciliation.
func (c *Client) SyncConnection(ctx context.Context, id string, full bool) (ConnectionState, error) {
	var out ConnectionState
	if err := requireID("connection", id); err != nil {
		return out, err
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/connections/"+esc(id)+"/sync", nil, map[string]bool{"full": full}, &out)
	return out, err
}
