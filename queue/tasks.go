// Package queue is termind's task transport on asynq (Redis or an embedded
// Redis-compatible server): task type names, payloads, the enqueue client,
// the worker server setup, the periodic scheduler and inspector helpers.
//
// The store is the source of truth; the queue is transport. Payloads carry
// ids only, so Redis never holds personal data, and losing Redis loses
// nothing: the outbox sweeper re-enqueues whatever the store says is due.
package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"
)

// Task type names. They are stored in Redis and must never change once
// shipped: a renamed type would strand tasks that are already queued.
const (
	TypeNotifySend         = "notify:send"
	TypeNotifyBatch        = "notify:batch"
	TypeCalendarPull       = "calendar:pull"
	TypeCalendarPush       = "calendar:push"
	TypeCalendarRevoke     = "calendar:revoke"
	TypeCalendarWatchRenew = "calendar:watch_renew"
	TypeRetentionPurge     = "retention:purge"
	TypeOutboxSweep        = "outbox:sweep"
)

// DefaultQueue is the asynq queue name used when none is configured.
const DefaultQueue = "termind"

// NotifyPayload is the payload of a notify:send task: ids only.
type NotifyPayload struct {
	NotificationID string `json:"notification_id"`
	// Attempt is the number of attempts already recorded for the
	// notification when the task was enqueued.
	Attempt int `json:"attempt"`
}

// NotifyTaskID is the deterministic task id of a notify:send task. Because
// it includes the attempt number, a retry scheduled by the running worker
// gets a fresh id while the running task still holds its own.
func NotifyTaskID(notificationID string, attempt int) string {
	return fmt.Sprintf("notify:%s:%d", notificationID, attempt)
}

// NewNotifyTask builds a notify:send task without options (the Client adds
// task id, queue, timing and retry policy).
func NewNotifyTask(notificationID string, attempt int) (*asynq.Task, error) {
	if notificationID == "" {
		return nil, fmt.Errorf("notify task: empty notification id")
	}
	b, err := json.Marshal(NotifyPayload{NotificationID: notificationID, Attempt: attempt})
	if err != nil {
		return nil, fmt.Errorf("notify task: %w", err)
	}
	return asynq.NewTask(TypeNotifySend, b), nil
}

// ParseNotifyPayload decodes a notify:send payload.
func ParseNotifyPayload(b []byte) (NotifyPayload, error) {
	var p NotifyPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return NotifyPayload{}, fmt.Errorf("notify payload: %w", err)
	}
	if p.NotificationID == "" {
		return NotifyPayload{}, fmt.Errorf("notify payload: missing notification_id")
	}
	if p.Attempt < 0 {
		return NotifyPayload{}, fmt.Errorf("notify payload: negative attempt")
	}
	return p, nil
}

// NotifyBatchPayload is the payload of a notify:batch task: the ids of
// notifications that are due now, handled together so that the store is
// asked once per batch instead of once per message. Retries and scheduled
// sends still travel one by one as notify:send.
type NotifyBatchPayload struct {
	NotificationIDs []string `json:"notification_ids"`
}

// MaxNotifyBatch is the most ids one notify:batch task carries.
const MaxNotifyBatch = 100

// NotifyBatchTaskID is deterministic in the ids, so enqueueing the same
// batch twice is harmless.
func NotifyBatchTaskID(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return "notify:batch:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// NewNotifyBatchTask builds a notify:batch task without options.
func NewNotifyBatchTask(ids []string) (*asynq.Task, error) {
	if len(ids) == 0 || len(ids) > MaxNotifyBatch {
		return nil, fmt.Errorf("notify batch task: %d ids, want 1 to %d", len(ids), MaxNotifyBatch)
	}
	b, err := json.Marshal(NotifyBatchPayload{NotificationIDs: ids})
	if err != nil {
		return nil, fmt.Errorf("notify batch task: %w", err)
	}
	return asynq.NewTask(TypeNotifyBatch, b), nil
}

// ParseNotifyBatchPayload decodes a notify:batch payload.
func ParseNotifyBatchPayload(b []byte) (NotifyBatchPayload, error) {
	var p NotifyBatchPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return NotifyBatchPayload{}, fmt.Errorf("notify batch payload: %w", err)
	}
	if len(p.NotificationIDs) == 0 || len(p.NotificationIDs) > MaxNotifyBatch {
		return NotifyBatchPayload{}, fmt.Errorf("notify batch payload: %d ids, want 1 to %d", len(p.NotificationIDs), MaxNotifyBatch)
	}
	return p, nil
}

// ConnectionPayload is the payload of the calendar tasks that act on one
// connection (calendar:revoke, and later pull/push/watch renewals).
type ConnectionPayload struct {
	ConnectionID string `json:"connection_id"`
}

// RevokeTaskID is the deterministic id of a connection's calendar:revoke
// task: one cleanup per connection at a time.
func RevokeTaskID(connectionID string) string { return "calendar:revoke:" + connectionID }

// NewRevokeTask builds a calendar:revoke task without options.
func NewRevokeTask(connectionID string) (*asynq.Task, error) {
	if connectionID == "" {
		return nil, fmt.Errorf("revoke task: empty connection id")
	}
	b, err := json.Marshal(ConnectionPayload{ConnectionID: connectionID})
	if err != nil {
		return nil, fmt.Errorf("revoke task: %w", err)
	}
	return asynq.NewTask(TypeCalendarRevoke, b), nil
}

// ParseConnectionPayload decodes a connection task's payload.
func ParseConnectionPayload(b []byte) (ConnectionPayload, error) {
	var p ConnectionPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return ConnectionPayload{}, fmt.Errorf("connection payload: %w", err)
	}
	if p.ConnectionID == "" {
		return ConnectionPayload{}, fmt.Errorf("connection payload: empty connection id")
	}
	return p, nil
}

// PullPayload is the payload of calendar:pull.
type PullPayload struct {
	ConnectionID string `json:"connection_id"`
	// Full asks for a full reconciliation instead of an incremental pull.
	Full bool `json:"full,omitempty"`
}

// PushPayload is the payload of calendar:push: one appointment's copy on
// one connection, at the appointment version that caused it.
type PushPayload struct {
	ConnectionID  string `json:"connection_id"`
	AppointmentID string `json:"appointment_id"`
	TenantID      string `json:"tenant_id"`
	Version       int    `json:"version"`
}

// PullTaskID is one pending pull per connection (and kind): triggers that
// arrive while one waits are folded into it.
func PullTaskID(connectionID string, full bool) string {
	if full {
		return "calendar:pull:" + connectionID + ":full"
	}
	return "calendar:pull:" + connectionID
}

// PushTaskID is deterministic in connection, appointment and version.
func PushTaskID(connectionID, appointmentID string, version int) string {
	return fmt.Sprintf("calendar:push:%s:%s:%d", connectionID, appointmentID, version)
}

// ParsePullPayload decodes a calendar:pull payload.
func ParsePullPayload(b []byte) (PullPayload, error) {
	var p PullPayload
	if err := json.Unmarshal(b, &p); err != nil || p.ConnectionID == "" {
		return PullPayload{}, fmt.Errorf("pull payload: invalid (%v)", err)
	}
	return p, nil
}

// ParsePushPayload decodes a calendar:push payload.
func ParsePushPayload(b []byte) (PushPayload, error) {
	var p PushPayload
	if err := json.Unmarshal(b, &p); err != nil || p.ConnectionID == "" || p.AppointmentID == "" || p.TenantID == "" {
		return PushPayload{}, fmt.Errorf("push payload: invalid (%v)", err)
	}
	return p, nil
}

// PushPullTaskID is the pull a push notification asks for: one per
// connection and debounce period, so that a burst of notifications makes
// one pull, and one arriving while a pull runs makes another after it
// (the running one may have listed before the change).
func PushPullTaskID(connectionID string, period int64) string {
	return fmt.Sprintf("calendar:pull:%s:notified:%d", connectionID, period)
}

// WatchRenewTaskID is one pending channel renewal per connection.
func WatchRenewTaskID(connectionID string) string {
	return "calendar:watch_renew:" + connectionID
}
