package client

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Channels, purposes and notification statuses.
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"

	PurposeTransactional = "transactional"
	PurposeReminder      = "reminder"

	StatusScheduled   = "scheduled"
	StatusSending     = "sending"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusUndelivered = "undelivered"
	StatusFailed      = "failed"
	StatusCancelled   = "cancelled"
	StatusSuppressed  = "suppressed"
)

// NotificationRequest is one notification to send (POST /v1/notifications).
type NotificationRequest struct {
	// IdempotencyKey makes retries safe: the same key and body again
	// return the existing notification; the same key with another body is
	// refused (CodeIdempotencyReused). See IdempotencyKey.
	IdempotencyKey string `json:"idempotency_key"`
	Channel        string `json:"channel"`
	// To is a bare mail address, or an E.164 number for SMS.
	To       string `json:"to"`
	Locale   string `json:"locale"`
	Template string `json:"template"`
	// Data holds the template's variables: customer_name, provider_name,
	// service, start, end (RFC 3339), time_zone (IANA), location,
	// manage_url, previous_start.
	Data    map[string]any `json:"data"`
	Purpose string         `json:"purpose"`
	// SubjectID is the person in the booking system; required for SMS.
	SubjectID string `json:"subject_id,omitempty"`
	// SendAt delays the send; zero sends now.
	SendAt time.Time `json:"send_at,omitzero"`
}

// NotificationCreated is the answer to a create or cancel.
type NotificationCreated struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Existing is true when the idempotency key had been used with the
	// same body: nothing new was created.
	Existing bool `json:"-"`
}

// Notification is a notification's status and attempts; To is masked.
type Notification struct {
	ID           string    `json:"id"`
	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason"`
	Channel      string    `json:"channel"`
	To           string    `json:"to"`
	Template     string    `json:"template"`
	Locale       string    `json:"locale"`
	Purpose      string    `json:"purpose"`
	SubjectID    string    `json:"subject_id"`
	SendAt       string    `json:"send_at"`
	CreatedAt    string    `json:"created_at"`
	UpdatedAt    string    `json:"updated_at"`
	Attempts     []Attempt `json:"attempts"`
}

// Attempt is one try with a provider.
type Attempt struct {
	N          int    `json:"n"`
	At         string `json:"at"`
	Outcome    string `json:"outcome"`
	ProviderID string `json:"provider_id"`
	ErrorCode  string `json:"error_code"`
}

// BatchResult is the outcome of one batch item, in the order sent.
type BatchResult struct {
	Index int
	// StatusCode is what the single endpoint would have answered: 202
	// created, 200 existing, else a refusal (Err).
	StatusCode int
	ID         string
	Status     string
	Err        *Error
}

// CreateNotification stores a notification and schedules its send.
func (c *Client) CreateNotification(ctx context.Context, n NotificationRequest) (NotificationCreated, error) {
	var out NotificationCreated
	status, err := c.do(ctx, http.MethodPost, "/v1/notifications", nil, n, &out)
	out.Existing = err == nil && status == http.StatusOK
	return out, err
}

// CreateNotifications sends up to 1,000 notifications in one request. Each
// item succeeds or fails on its own; err is only for the request as a
// whole.
func (c *Client) CreateNotifications(ctx context.Context, items []NotificationRequest) ([]BatchResult, error) {
	var resp struct {
		Items []struct {
			Index      int    `json:"index"`
			StatusCode int    `json:"status_code"`
			ID         string `json:"id"`
			Status     string `json:"status"`
			Error      *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Field   string `json:"field"`
			} `json:"error"`
		} `json:"items"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/v1/notifications/batch", nil, map[string]any{"items": items}, &resp); err != nil {
		return nil, err
	}
	out := make([]BatchResult, len(resp.Items))
	for i, it := range resp.Items {
		out[i] = BatchResult{Index: it.Index, StatusCode: it.StatusCode, ID: it.ID, Status: it.Status}
		if it.Error != nil {
			out[i].Err = &Error{StatusCode: it.StatusCode, Code: it.Error.Code, Message: it.Error.Message, Field: it.Error.Field}
		}
	}
	return out, nil
}

// GetNotification returns a notification's status and attempts.
func (c *Client) GetNotification(ctx context.Context, id string) (Notification, error) {
	var out Notification
	if err := requireID("notification", id); err != nil {
		return out, err
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/notifications/"+esc(id), nil, nil, &out)
	return out, err
}

// CancelNotification cancels a notification that is still scheduled;
// once sending or sent the API refuses with CodeNotCancellable (409).
func (c *Client) CancelNotification(ctx context.Context, id string) (NotificationCreated, error) {
	var out NotificationCreated
	if err := requireID("notification", id); err != nil {
		return out, err
	}
	_, err := c.do(ctx, http.MethodDelete, "/v1/notifications/"+esc(id), nil, nil, &out)
	return out, err
}

// requireID refuses an empty id before a request would reach another route.
func requireID(what, id string) error {
	if id == "" {
		return errors.New("termind client: empty " + what + " id")
	}
	return nil
}
