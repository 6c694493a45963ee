package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/termind/termind/internal/store"
)

const (
	// enqueueWorkers bounds the goroutines that hand a batch to the queue.
	enqueueWorkers = 8
	enqueueTimeout = 5 * time.Second
	maxPathID      = 200
)

// notificationCreated is the answer to a create: the row's id and status.
type notificationCreated struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (s *server) createNotification(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	var req notificationRequest
	if !readJSON(w, r, maxBodyBytes, &req, false) {
		return
	}
	now := s.now()
	v, aerr := validateNotification(req, now)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	tenant, err := s.store.GetTenant(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get tenant", err)
		return
	}
	if aerr := s.checkRender(tenant, v); aerr != nil {
		writeError(w, aerr)
		return
	}
	n, err := toStoreNotification(key.TenantID, v, now)
	if err != nil {
		s.internalError(w, r, "encode notification", err)
		return
	}
	results, err := s.store.CreateNotifications(r.Context(), []store.Notification{n})
	if err != nil {
		s.internalError(w, r, "create notification", err)
		return
	}
	if len(results) != 1 {
		s.internalError(w, r, "create notification", fmt.Errorf("store returned %d results for 1 item", len(results)))
		return
	}
	res := results[0]
	switch res.Outcome {
	case store.Created:
		s.enqueue(r, res.Notification)
		writeJSON(w, http.StatusAccepted, notificationCreated{ID: res.Notification.ID, Status: res.Notification.Status})
	case store.Existing:
		writeJSON(w, http.StatusOK, notificationCreated{ID: res.Notification.ID, Status: res.Notification.Status})
	default:
		writeError(w, idempotencyReused(""))
	}
}

func idempotencyReused(prefix string) *apiError {
	e := &apiError{
		Status:  http.StatusConflict,
		Code:    codeIdempotencyReused,
		Message: "was already used for a different request; send the same body to replay it or use a new key",
		Field:   "idempotency_key",
	}
	if prefix != "" {
		return e.withPrefix(prefix)
	}
	return e
}

// checkRender asks the renderer whether the notification can be rendered,
// with the tenant's default locale as the fallback.
func (s *server) checkRender(tenant store.Tenant, v validNotification) *apiError {
	locales := []string{v.req.Locale}
	if tenant.DefaultLocale != "" && tenant.DefaultLocale != v.req.Locale {
		locales = append(locales, tenant.DefaultLocale)
	}
	err := s.renderer.Check(tenant.ID, v.req.Channel, v.req.Template, locales, v.data)
	if err == nil {
		return nil
	}
	if aerr, ok := renderError(err); ok {
		return aerr
	}
	// The renderer's error text may quote data values: it is not logged.
	s.log.Error("template check failed", "tenant_id", tenant.ID, "template", v.req.Template)
	return errInternal
}

func toStoreNotification(tenantID string, v validNotification, now time.Time) (store.Notification, error) {
	data, err := json.Marshal(v.data)
	if err != nil {
		return store.Notification{}, fmt.Errorf("encode data: %w", err)
	}
	sendAt := v.sendAt
	if sendAt.IsZero() || sendAt.Before(now) {
		sendAt = now
	}
	return store.Notification{
		TenantID:       tenantID,
		SubjectID:      v.req.SubjectID,
		IdempotencyKey: v.req.IdempotencyKey,
		RequestHash:    v.hash,
		Purpose:        v.req.Purpose,
		Channel:        v.req.Channel,
		Recipient:      v.req.To,
		Locale:         v.req.Locale,
		Template:       v.req.Template,
		Data:           data,
		SendAt:         sendAt,
	}, nil
}

// enqueue hands a freshly stored notification to the queue. A failure is
// logged and otherwise ignored: the row is committed, and the outbox sweeper
// enqueues every due scheduled row, so the client's 202 stays true.
func (s *server) enqueue(r *http.Request, n store.Notification) {
	ctx, cancel := detached(r.Context(), enqueueTimeout)
	defer cancel()
	if err := s.queue.EnqueueNotification(ctx, n.ID, 0, n.SendAt); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "enqueue failed; the outbox sweeper will retry",
			slog.String("notification_id", n.ID), slog.String("tenant_id", n.TenantID), slog.String("err", err.Error()))
	}
}

// batchEnqueuer is implemented by queues that can hand many due
// notifications to one task (queue.Client): a worker then claims and
// records them together, which is what makes large batches cheap.
type batchEnqueuer interface {
	EnqueueNotificationBatch(ctx context.Context, ids []string) error
}

// enqueueAll enqueues many notifications and returns when all are handed
// over (or failed): the ones due now together when the queue supports it,
// the others one by one for their time, with a bounded number of goroutines.
func (s *server) enqueueAll(r *http.Request, ns []store.Notification) {
	if be, ok := s.queue.(batchEnqueuer); ok {
		now := s.now()
		var due []string
		later := ns[:0:0]
		for _, n := range ns {
			if n.SendAt.After(now) {
				later = append(later, n)
			} else {
				due = append(due, n.ID)
			}
		}
		if len(due) > 0 {
			ctx, cancel := detached(r.Context(), enqueueTimeout)
			err := be.EnqueueNotificationBatch(ctx, due)
			cancel()
			if err != nil {
				s.log.LogAttrs(r.Context(), slog.LevelWarn, "enqueue failed; the outbox sweeper will retry",
					slog.Int("notifications", len(due)), slog.String("err", err.Error()))
			}
		}
		ns = later
	}
	jobs := make(chan store.Notification)
	var wg sync.WaitGroup
	for range min(enqueueWorkers, len(ns)) {
		wg.Go(func() {
			for n := range jobs {
				s.enqueue(r, n)
			}
		})
	}
	for _, n := range ns {
		jobs <- n
	}
	close(jobs)
	wg.Wait()
}

// batchRequest is the body of POST /v1/notifications/batch. Items stay raw
// so that each is size-checked and validated on its own.
type batchRequest struct {
	Items []json.RawMessage `json:"items"`
}

type batchItemResult struct {
	Index      int          `json:"index"`
	StatusCode int          `json:"status_code"`
	ID         string       `json:"id,omitempty"`
	Status     string       `json:"status,omitempty"`
	Error      *errorDetail `json:"error,omitempty"`
}

type batchResponse struct {
	Items []batchItemResult `json:"items"`
}

func (s *server) createNotificationBatch(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	var req batchRequest
	if !readJSON(w, r, maxBatchBodyBytes, &req, false) {
		return
	}
	if len(req.Items) == 0 || len(req.Items) > s.cfg.MaxBatch {
		writeError(w, invalidField("items", fmt.Sprintf("must hold 1 to %d notifications", s.cfg.MaxBatch)))
		return
	}
	tenant, err := s.store.GetTenant(r.Context(), key.TenantID)
	if err != nil {
		s.internalError(w, r, "get tenant", err)
		return
	}

	now := s.now()
	results := make([]batchItemResult, len(req.Items))
	valid := make([]store.Notification, 0, len(req.Items))
	validIndex := make([]int, 0, len(req.Items)) // valid[k] is item validIndex[k]
	for i, raw := range req.Items {
		results[i].Index = i
		prefix := fmt.Sprintf("items[%d]", i)
		n, aerr := s.validateItem(tenant, raw, now)
		if aerr != nil {
			e := aerr.withPrefix(prefix)
			results[i].StatusCode = e.Status
			d := e.detail()
			results[i].Error = &d
			continue
		}
		valid = append(valid, n)
		validIndex = append(validIndex, i)
	}

	var created []store.Notification
	if len(valid) > 0 {
		stored, err := s.store.CreateNotifications(r.Context(), valid)
		if err != nil {
			s.internalError(w, r, "create notifications", err)
			return
		}
		if len(stored) != len(valid) {
			s.internalError(w, r, "create notifications", fmt.Errorf("store returned %d results for %d items", len(stored), len(valid)))
			return
		}
		for k, res := range stored {
			item := &results[validIndex[k]]
			switch res.Outcome {
			case store.Created:
				item.StatusCode = http.StatusAccepted
				item.ID, item.Status = res.Notification.ID, res.Notification.Status
				created = append(created, res.Notification)
			case store.Existing:
				item.StatusCode = http.StatusOK
				item.ID, item.Status = res.Notification.ID, res.Notification.Status
			default:
				e := idempotencyReused(fmt.Sprintf("items[%d]", item.Index))
				item.StatusCode = e.Status
				d := e.detail()
				item.Error = &d
			}
		}
	}
	s.enqueueAll(r, created)
	writeJSON(w, http.StatusOK, batchResponse{Items: results})
}

// validateItem applies the single endpoint's rules to one batch item.
func (s *server) validateItem(tenant store.Tenant, raw json.RawMessage, now time.Time) (store.Notification, *apiError) {
	if len(raw) > maxBodyBytes {
		return store.Notification{}, tooLarge("", maxBodyBytes)
	}
	var req notificationRequest
	if aerr := decodeStrict(raw, &req); aerr != nil {
		return store.Notification{}, aerr
	}
	v, aerr := validateNotification(req, now)
	if aerr != nil {
		return store.Notification{}, aerr
	}
	if aerr := s.checkRender(tenant, v); aerr != nil {
		return store.Notification{}, aerr
	}
	n, err := toStoreNotification(tenant.ID, v, now)
	if err != nil {
		return store.Notification{}, invalidField("data", "could not be encoded")
	}
	return n, nil
}

// notificationView is GET /v1/notifications/{id}: status and attempts,
// with the recipient masked and neither data nor provider error text.
type notificationView struct {
	ID           string        `json:"id"`
	Status       string        `json:"status"`
	StatusReason string        `json:"status_reason"`
	Channel      string        `json:"channel"`
	To           string        `json:"to"`
	Template     string        `json:"template"`
	Locale       string        `json:"locale"`
	Purpose      string        `json:"purpose"`
	SubjectID    string        `json:"subject_id"`
	SendAt       string        `json:"send_at"`
	CreatedAt    string        `json:"created_at"`
	UpdatedAt    string        `json:"updated_at"`
	Attempts     []attemptView `json:"attempts"`
}

type attemptView struct {
	N          int    `json:"n"`
	At         string `json:"at"`
	Outcome    string `json:"outcome"`
	ProviderID string `json:"provider_id"`
	ErrorCode  string `json:"error_code"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func viewNotification(n store.Notification) notificationView {
	v := notificationView{
		ID:           n.ID,
		Status:       n.Status,
		StatusReason: n.StatusReason,
		Channel:      n.Channel,
		To:           maskRecipient(n.Channel, n.Recipient),
		Template:     n.Template,
		Locale:       n.Locale,
		Purpose:      n.Purpose,
		SubjectID:    n.SubjectID,
		SendAt:       rfc3339(n.SendAt),
		CreatedAt:    rfc3339(n.CreatedAt),
		UpdatedAt:    rfc3339(n.UpdatedAt),
		Attempts:     make([]attemptView, 0, len(n.Attempts)),
	}
	for _, a := range n.Attempts {
		v.Attempts = append(v.Attempts, attemptView{N: a.N, At: rfc3339(a.At), Outcome: a.Outcome, ProviderID: a.ProviderID, ErrorCode: a.ErrorCode})
	}
	return v
}

func (s *server) getNotification(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	id := r.PathValue("id")
	if len(id) > maxPathID {
		writeError(w, notFound("no such notification"))
		return
	}
	n, err := s.store.GetNotification(r.Context(), key.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFound("no such notification"))
		return
	}
	if err != nil {
		s.internalError(w, r, "get notification", err)
		return
	}
	writeJSON(w, http.StatusOK, viewNotification(n))
}

func (s *server) cancelNotification(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	id := r.PathValue("id")
	if len(id) > maxPathID {
		writeError(w, notFound("no such notification"))
		return
	}
	n, err := s.store.CancelNotification(r.Context(), key.TenantID, id, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, notFound("no such notification"))
	case errors.Is(err, store.ErrConflict):
		msg := "can no longer be cancelled"
		if n.Status != "" {
			msg = fmt.Sprintf("can no longer be cancelled: its status is %s", n.Status)
		}
		writeError(w, &apiError{Status: http.StatusConflict, Code: codeNotCancellable, Message: msg})
	case err != nil:
		s.internalError(w, r, "cancel notification", err)
	default:
		s.observer.NotificationState(n.Channel, n.Template, n.Status)
		writeJSON(w, http.StatusOK, notificationCreated{ID: n.ID, Status: n.Status})
	}
}

// maskRecipient shows enough of an address or number to recognise it, not
// to use it: "j***@example.com", "+49151*****78".
func maskRecipient(channel, to string) string {
	if channel == store.ChannelEmail {
		local, domain, ok := strings.Cut(to, "@")
		if !ok || local == "" {
			return "***"
		}
		r := []rune(local)
		return string(r[0]) + "***@" + domain
	}
	// Keep at least four digits hidden however short the number.
	prefix := min(6, len(to)-2-4)
	if prefix < 1 || len(to) < 3 {
		return "*****"
	}
	return to[:prefix] + "*****" + to[len(to)-2:]
}
