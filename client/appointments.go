package client

import (
	"context"
	"net/http"
)

// Appointment is the body of PUT /v1/appointments/{id}. Timed
// appointments set Start and End (RFC 3339 with offset); all-day ones set
// AllDay, StartDate and EndDate (exclusive).
type Appointment struct {
	SubjectIDs  []string `json:"subject_ids"`
	Start       string   `json:"start,omitempty"`
	End         string   `json:"end,omitempty"`
	AllDay      bool     `json:"all_day,omitempty"`
	StartDate   string   `json:"start_date,omitempty"`
	EndDate     string   `json:"end_date,omitempty"`
	TimeZone    string   `json:"time_zone"`
	Title       string   `json:"title"`
	Location    string   `json:"location,omitempty"`
	Description string   `json:"description,omitempty"`
	Status      string   `json:"status,omitempty"` // confirmed (default) or cancelled
	// Reminders are minutes before the start. nil: the tenant's rules;
	// an empty, non-nil slice: none.
	Reminders []int   `json:"reminders"`
	Notify    *Notify `json:"notify,omitempty"`
}

// Notify says who gets the appointment's notices and with which data.
type Notify struct {
	Recipients   []Recipient `json:"recipients"`
	ProviderName string      `json:"provider_name"`
	Service      string      `json:"service"`
	CustomerName string      `json:"customer_name,omitempty"`
	ManageURL    string      `json:"manage_url,omitempty"`
	// Confirmation sends a confirmation when the appointment is created.
	Confirmation bool `json:"confirmation,omitempty"`
}

// Recipient is one person notified about an appointment.
type Recipient struct {
	SubjectID    string `json:"subject_id"`
	Channel      string `json:"channel"`
	To           string `json:"to"`
	Locale       string `json:"locale"`
	CustomerName string `json:"customer_name,omitempty"`
}

// AppointmentResult is an appointment as the API answers it.
type AppointmentResult struct {
	ID         string   `json:"id"`
	Version    int      `json:"version"`
	Status     string   `json:"status"`
	Start      string   `json:"start"`
	End        string   `json:"end"`
	TimeZone   string   `json:"time_zone"`
	AllDay     bool     `json:"all_day"`
	SubjectIDs []string `json:"subject_ids"`
	Sync       struct {
		Connections int    `json:"connections"`
		Queued      int    `json:"queued"`
		Error       string `json:"error"`
	} `json:"sync"`
	Notifications struct {
		Created   int `json:"created"`
		Cancelled int `json:"cancelled"`
	} `json:"notifications"`
	// Created is true when this PUT created the appointment.
	Created bool `json:"-"`
}

// PutAppointment creates or updates the appointment id.
func (c *Client) PutAppointment(ctx context.Context, id string, a Appointment) (AppointmentResult, error) {
	var out AppointmentResult
	if err := requireID("appointment", id); err != nil {
		return out, err
	}
	status, err := c.do(ctx, http.MethodPut, "/v1/appointments/"+esc(id), nil, a, &out)
	out.Created = err == nil && status == http.StatusCreated
	return out, err
}

// CancelAppointment cancels the appointment id; notify, if not nil, sends
// the cancellation notice.
func (c *Client) CancelAppointment(ctx context.Context, id string, notify *Notify) (AppointmentResult, error) {
	var out AppointmentResult
	if err := requireID("appointment", id); err != nil {
		return out, err
	}
	var body any
	if notify != nil {
		body = map[string]any{"notify": notify}
	}
	_, err := c.do(ctx, http.MethodDelete, "/v1/appointments/"+esc(id), nil, body, &out)
	return out, err
}
