package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Interval is a busy time span.
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Restriction is the restriction in force for a subject.
type Restriction struct {
	SubjectID  string `json:"subject_id"`
	Restricted bool   `json:"restricted"`
}

// Erasure is the answer to EraseSubject.
type Erasure struct {
	SubjectID           string   `json:"subject_id"`
	Status              string   `json:"status"`
	ConnectionsRevoking []string `json:"connections_revoking"`
}

// Busy returns the subject's merged busy time in [from, to) from its
// readable calendars; our own copies never count.
func (c *Client) Busy(ctx context.Context, subjectID string, from, to time.Time) ([]Interval, error) {
	if err := requireID("subject", subjectID); err != nil {
		return nil, err
	}
	q := url.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}}
	var out struct{ Items []Interval }
	_, err := c.do(ctx, http.MethodGet, "/v1/subjects/"+esc(subjectID)+"/busy", q, nil, &out)
	return out.Items, err
}

// ExportSubject returns everything stored about a person as the API's
// JSON document (admin key). It is returned as it came, to be handed on.
func (c *Client) ExportSubject(ctx context.Context, subjectID string) (json.RawMessage, error) {
	if err := requireID("subject", subjectID); err != nil {
		return nil, err
	}
	var out json.RawMessage
	_, err := c.do(ctx, http.MethodGet, "/v1/subjects/"+esc(subjectID)+"/export", nil, nil, &out)
	return out, err
}

// EraseSubject erases a person (admin key): personal rows deleted,
// connections revoked.
func (c *Client) EraseSubject(ctx context.Context, subjectID string) (Erasure, error) {
	var out Erasure
	if err := requireID("subject", subjectID); err != nil {
		return out, err
	}
	_, err := c.do(ctx, http.MethodDelete, "/v1/subjects/"+esc(subjectID), nil, nil, &out)
	return out, err
}

// RestrictSubject stops all processing for a person (admin key).
func (c *Client) RestrictSubject(ctx context.Context, subjectID string) (Restriction, error) {
	return c.restriction(ctx, subjectID, "restrict")
}

// UnrestrictSubject resumes processing for a person (admin key).
func (c *Client) UnrestrictSubject(ctx context.Context, subjectID string) (Restriction, error) {
	return c.restriction(ctx, subjectID, "unrestrict")
}

func (c *Client) restriction(ctx context.Context, subjectID, action string) (Restriction, error) {
	var out Restriction
	if err := requireID("subject", subjectID); err != nil {
		return out, err
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/subjects/"+esc(subjectID)+"/"+action, nil, nil, &out)
	return out, err
}
