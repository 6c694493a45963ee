package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/connectors/mail"
	"github.com/termind/termind/connectors/sms"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/templates"
)

// NotifierStore is what the notifier needs from the store.
type NotifierStore interface {
	ClaimNotification(ctx context.Context, id string, now, leaseUntil time.Time) (store.Notification, bool, error)
	FinishAttempt(ctx context.Context, id string, now time.Time, r store.AttemptResult) (store.Notification, error)
	MarkInterrupted(ctx context.Context, id string, now time.Time) (store.Notification, error)
	SendChecks(ctx context.Context, tenantID, subjectID, purpose string) (store.SendChecks, error)
	GetAppointment(ctx context.Context, tenantID, id string) (store.Appointment, error)
	SetSMSOptedOut(ctx context.Context, tenantID, subjectID string) error
}

// Renderer turns a template and its data into a message (templates.Renderer).
type Renderer interface {
	Mail(tenantID, name string, locales []string, data map[string]any) (templates.Mail, error)
	SMS(tenantID, name string, locales []string, data map[string]any) (templates.SMS, error)
}

// MailSender hands a mail to the mail provider and returns its id for it.
type MailSender interface {
	Send(ctx context.Context, m mail.Message) (string, error)
}

// SMSSender hands an SMS to the SMS provider and returns its id for it.
type SMSSender interface {
	Send(ctx context.Context, m sms.Message) (string, error)
}

// Attempt outcomes beyond the store's "interrupted".
const (
	outcomeSent       = "sent"
	outcomeRetry      = "retry"
	outcomeFailed     = "failed"
	outcomeSuppressed = "suppressed"
)

// Reasons recorded on suppressed or failed notifications.
const (
	ReasonRestricted     = "restricted"
	ReasonNoSubject      = "no_subject"
	ReasonSMSOptedOut    = "sms_opted_out"
	ReasonNoSMSConsent   = "no_consent:" + store.ConsentNotifySMS
	ReasonEmailRefused   = "consent_refused:" + store.ConsentNotifyEmail
	ReasonRender         = "render"
	ReasonTenantGone     = "tenant_gone"
	ReasonUnknownChannel = "unknown_channel"
	ReasonNoProvider     = "no_provider"
	// A reminder whose appointment was cancelled or moved since it was
	// planned: the API cancels such reminders, and this is the check at
	// the side effect in case that step did not happen.
	ReasonAppointmentGone  = "appointment_cancelled"
	ReasonAppointmentMoved = "appointment_moved"
)

const (
	// twilioCodeOptedOut: the recipient sent STOP (DESIGN "Notifications").
	twilioCodeOptedOut       = "21610"
	twilioStatusCallbackPath = "/webhooks/twilio/status"
)

// Defaults for NotifierConfig.
const (
	DefaultLease       = 5 * time.Minute
	DefaultMaxAttempts = 8
)

// recordTimeout bounds recording an outcome, which outlives the task's
// context. Recording is retried for all of it (every recordRetryFirst,
// doubling up to recordRetryMax): once the provider has answered, a row
// left unrecorded ends as outcome_unknown, so a database restart of a few
// seconds must not end the tries.
const (
	recordTimeout    = 15 * time.Second
	recordRetryFirst = 100 * time.Millisecond
	recordRetryMax   = 2 * time.Second
)

// earlyWait is how long a task that arrives before its send_at (clock skew
// between hosts) waits instead of being put back on the queue.
const earlyWait = 5 * time.Second

// NotifierConfig is everything the notifier needs. Store, Renderer and
// Queue are required; Mail and SMS may be nil if that channel is not
// served (its notifications then fail with reason no_provider).
type NotifierConfig struct {
	Store    NotifierStore
	Renderer Renderer
	Mail     MailSender
	SMS      SMSSender
	Queue    Enqueuer
	// MailFrom is the sender address of every mail.
	MailFrom string
	// PublicURL is where Twilio reaches termind; when set, SMS carry a
	// status callback to PublicURL + /webhooks/twilio/status.
	PublicURL string
	// Lease is how long a claimed send may take before it counts as
	// interrupted (default 5 min: longer than a task's 2-minute timeout
	// plus recording, so a live batch is never taken for a dead one).
	Lease time.Duration
	// MaxAttempts bounds provider attempts per notification (default 8).
	MaxAttempts int
	// Backoff gives the delay before attempt+1 after a temporary provider
	// error (default: full-jitter exponential, 30 s base, 1 h cap).
	Backoff func(attempt int) time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
	// Metrics counts states reached and times provider calls; nil: none.
	Metrics NotifyMetrics
}

// Notifier handles notify:send: claim, re-check consent, render, send,
// record. The claim in the store makes exactly one worker the sender, so a
// duplicate task never sends twice.
type Notifier struct {
	cfg NotifierConfig
	log *slog.Logger
}

// NewNotifier returns a notifier with defaults filled in.
func NewNotifier(cfg NotifierConfig) *Notifier {
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Backoff == nil {
		cfg.Backoff = ExponentialBackoff(30*time.Second, time.Hour)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	return &Notifier{cfg: cfg, log: cfg.Logger}
}

// ProcessTask implements asynq.Handler for notify:send. An error return
// means an infrastructure failure (store unreachable); asynq retries those.
// Provider failures are recorded in the store and never returned.
func (nt *Notifier) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseNotifyPayload(t.Payload())
	if err != nil {
		// A malformed payload will not improve with retries.
		return fmt.Errorf("notify: %v: %w", err, asynq.SkipRetry)
	}
	return nt.Deliver(ctx, p.NotificationID)
}

// Deliver runs the send path for one notification, as ProcessTask does.
func (nt *Notifier) Deliver(ctx context.Context, id string) error {
	n, ok, err := nt.claim(ctx, id)
	if err != nil || !ok {
		return err
	}
	return nt.record(ctx, n, nt.attempt(ctx, n))
}

// claim makes this worker the sender, or deals with a row it cannot claim.
func (nt *Notifier) claim(ctx context.Context, id string) (store.Notification, bool, error) {
	for waited := false; ; waited = true {
		now := nt.cfg.Now()
		n, ok, err := nt.cfg.Store.ClaimNotification(ctx, id, now, now.Add(nt.cfg.Lease))
		if errors.Is(err, store.ErrNotFound) {
			nt.log.Debug("notify: notification gone", "notification_id", id)
			return store.Notification{}, false, nil
		}
		if err != nil {
			return store.Notification{}, false, fmt.Errorf("notify: claim: %w", err)
		}
		if ok {
			return n, true, nil
		}
		switch {
		case n.Status == store.StatusSending && n.ClaimedUntil.Before(now):
			// A worker died between claim and record: the provider may or
			// may not have the message. Never re-send; mark it for review.
			_, err := nt.cfg.Store.MarkInterrupted(ctx, id, now)
			switch {
			case err == nil:
				nt.log.Warn("notify: interrupted send, outcome unknown", "notification_id", id, "tenant_id", n.TenantID)
			case !errors.Is(err, store.ErrConflict): // a conflict: someone else ended it
				return store.Notification{}, false, fmt.Errorf("notify: mark interrupted: %w", err)
			}
			return store.Notification{}, false, nil
		case n.Status == store.StatusScheduled && n.SendAt.After(now):
			wait := n.SendAt.Sub(now)
			if !waited && wait <= earlyWait {
				if err := sleep(ctx, wait); err != nil {
					return store.Notification{}, false, err
				}
				continue
			}
			// Put it back for its time. If that is this very task's id the
			// queue reports a conflict (nil); the outbox sweeper picks the
			// row up when it falls due.
			if err := nt.cfg.Queue.EnqueueNotification(ctx, id, len(n.Attempts), n.SendAt); err != nil {
				nt.log.Warn("notify: re-enqueue failed, left to the sweeper", "notification_id", id, "err", err)
			}
			return store.Notification{}, false, nil
		default:
			// Final, cancelled, or another worker's live claim.
			nt.log.Debug("notify: nothing to do", "notification_id", id, "status", n.Status)
			return store.Notification{}, false, nil
		}
	}
}

// attempt runs the send path on a claimed row — re-check, render, hand to
// the provider — and returns what to record. It never records itself, so
// that a batch can record all its rows at once.
func (nt *Notifier) attempt(ctx context.Context, n store.Notification) store.AttemptResult {
	tenant, reason, err := nt.check(ctx, n)
	return nt.attemptChecked(ctx, n, tenant, reason, err)
}

// attemptChecked is attempt after the send-time checks, given their
// outcome: an error gives the claim back as a retry, a reason suppresses,
// else render and send.
func (nt *Notifier) attemptChecked(ctx context.Context, n store.Notification, tenant store.Tenant, reason string, err error) store.AttemptResult {
	if err != nil {
		// Our side failed before anything was sent: give the claim back as
		// a retry, so the row does not sit in "sending" until it looks
		// interrupted.
		nt.log.Warn("notify: send-time checks failed", "notification_id", n.ID, "err", err)
		return nt.retryOrFail(n, "internal", store.Attempt{Outcome: outcomeFailed, ErrorCode: "internal", Error: err.Error()}, 0)
	}
	if reason != "" {
		return store.AttemptResult{
			Status:  store.StatusSuppressed,
			Reason:  reason,
			Attempt: store.Attempt{Outcome: outcomeSuppressed, ErrorCode: reason},
		}
	}

	var data map[string]any
	if len(n.Data) > 0 {
		if err := json.Unmarshal(n.Data, &data); err != nil {
			return failed(ReasonRender, ReasonRender, err.Error())
		}
	}
	locales := []string{n.Locale}
	if tenant.DefaultLocale != "" && tenant.DefaultLocale != n.Locale {
		locales = append(locales, tenant.DefaultLocale)
	}

	var providerID, provider string
	var sendErr error
	switch n.Channel {
	case store.ChannelEmail:
		provider = "smtp"
		if nt.cfg.Mail == nil {
			return failed(ReasonNoProvider, "", "no mail provider configured")
		}
		m, err := nt.cfg.Renderer.Mail(n.TenantID, n.Template, locales, data)
		if err != nil {
			return failed(ReasonRender, ReasonRender, err.Error())
		}
		start := time.Now()
		providerID, sendErr = nt.cfg.Mail.Send(ctx, mail.Message{
			ID:      n.ID,
			From:    nt.cfg.MailFrom,
			To:      n.Recipient,
			Subject: m.Subject,
			Text:    m.Text,
			HTML:    m.HTML,
		})
		nt.cfg.Metrics.ProviderRequest(provider, time.Since(start), sendErr)
	case store.ChannelSMS:
		provider = "twilio"
		if nt.cfg.SMS == nil {
			return failed(ReasonNoProvider, "", "no sms provider configured")
		}
		m, err := nt.cfg.Renderer.SMS(n.TenantID, n.Template, locales, data)
		if err != nil {
			return failed(ReasonRender, ReasonRender, err.Error())
		}
		msg := sms.Message{ID: n.ID, To: n.Recipient, Body: m.Body}
		if nt.cfg.PublicURL != "" {
			msg.StatusCallback = strings.TrimRight(nt.cfg.PublicURL, "/") + twilioStatusCallbackPath
		}
		start := time.Now()
		providerID, sendErr = nt.cfg.SMS.Send(ctx, msg)
		nt.cfg.Metrics.ProviderRequest(provider, time.Since(start), sendErr)
	default:
		return failed(ReasonUnknownChannel, "", "unknown channel")
	}

	if sendErr == nil {
		return store.AttemptResult{
			Status:     store.StatusSent,
			ProviderID: providerID,
			Attempt:    store.Attempt{Outcome: outcomeSent, ProviderID: providerID},
		}
	}
	return nt.providerFailed(ctx, n, provider, sendErr)
}

// check re-reads tenant, subject and consent right before the send
// (DESIGN "Consent is checked at the side effect"). A non-empty reason
// means: suppress.
func (nt *Notifier) check(ctx context.Context, n store.Notification) (store.Tenant, string, error) {
	c, err := nt.cfg.Store.SendChecks(ctx, n.TenantID, n.SubjectID, consentPurpose(n))
	if errors.Is(err, store.ErrNotFound) {
		return store.Tenant{}, ReasonTenantGone, nil
	}
	if err != nil {
		return store.Tenant{}, "", err
	}
	return nt.checkWith(ctx, n, c)
}

// checkWith finishes check with the send checks already read: the decision
// on them and, for a reminder, the check against its appointment.
func (nt *Notifier) checkWith(ctx context.Context, n store.Notification, c store.SendChecks) (store.Tenant, string, error) {
	if reason := suppressReason(n, c); reason != "" {
		return c.Tenant, reason, nil
	}
	if n.Purpose == store.PurposeReminder && n.AppointmentID != "" {
		reason, err := nt.checkAppointment(ctx, n)
		return c.Tenant, reason, err
	}
	return c.Tenant, "", nil
}

// consentPurpose is the consent that matters for n, if any: SMS needs a
// grant; a reminder mail respects a refusal or revocation of notify.email;
// transactional mail rests on the contract.
func consentPurpose(n store.Notification) string {
	switch {
	case n.Channel == store.ChannelSMS:
		return store.ConsentNotifySMS
	case n.Channel == store.ChannelEmail && n.Purpose == store.PurposeReminder:
		return store.ConsentNotifyEmail
	}
	return ""
}

// suppressReason decides on n from its send checks c, read for
// n.SubjectID and consentPurpose(n). A non-empty reason means: suppress.
func suppressReason(n store.Notification, c store.SendChecks) string {
	switch {
	case c.Restricted:
		return ReasonRestricted
	case n.Channel == store.ChannelSMS && n.SubjectID == "":
		return ReasonNoSubject
	case n.Channel == store.ChannelSMS && c.SMSOptedOut:
		return ReasonSMSOptedOut
	case n.Channel == store.ChannelSMS && c.Consent != store.DecisionGranted:
		return ReasonNoSMSConsent
	case consentPurpose(n) == store.ConsentNotifyEmail && (c.Consent == store.DecisionRefused || c.Consent == store.DecisionRevoked):
		return ReasonEmailRefused
	}
	return ""
}

// checkAppointment suppresses a reminder for an appointment that is gone,
// cancelled, or no longer starts when the reminder says.
func (nt *Notifier) checkAppointment(ctx context.Context, n store.Notification) (string, error) {
	a, err := nt.cfg.Store.GetAppointment(ctx, n.TenantID, n.AppointmentID)
	if errors.Is(err, store.ErrNotFound) {
		return ReasonAppointmentGone, nil
	}
	if err != nil {
		return "", err
	}
	if a.Status == store.AppointmentCancelled {
		return ReasonAppointmentGone, nil
	}
	if a.AllDay {
		return "", nil // all-day reminders carry local midnight, not the stored instant
	}
	var data struct {
		Start string `json:"start"`
	}
	if json.Unmarshal(n.Data, &data) == nil {
		if t, err := time.Parse(time.RFC3339, data.Start); err == nil && !t.Equal(a.Start) {
			return ReasonAppointmentMoved, nil
		}
	}
	return "", nil
}

// failed is a final failure that no retry can mend.
func failed(reason, code, text string) store.AttemptResult {
	return store.AttemptResult{
		Status:  store.StatusFailed,
		Reason:  reason,
		Attempt: store.Attempt{Outcome: outcomeFailed, ErrorCode: code, Error: text},
	}
}

// providerFailed turns a provider's refusal into the result to record:
// final for permanent errors or when attempts are used up, else a retry.
func (nt *Notifier) providerFailed(ctx context.Context, n store.Notification, provider string, sendErr error) store.AttemptResult {
	f := classify(sendErr)
	code := f.code
	if code == "" {
		code = "error"
	}
	reason := provider + " " + code
	// The error text goes to the store only: it may hold the address.
	attempt := store.Attempt{Outcome: outcomeFailed, ErrorCode: f.code, Error: sendErr.Error()}

	if !f.temporary {
		if n.Channel == store.ChannelSMS && f.code == twilioCodeOptedOut && n.SubjectID != "" {
			if err := nt.cfg.Store.SetSMSOptedOut(ctx, n.TenantID, n.SubjectID); err != nil {
				// Still record the failure; the next SMS will get 21610 again.
				nt.log.Error("notify: recording sms opt-out failed", "notification_id", n.ID, "err", err)
			}
		}
		return store.AttemptResult{Status: store.StatusFailed, Reason: reason, Attempt: attempt}
	}
	return nt.retryOrFail(n, reason, attempt, f.retryAfter)
}

// retryOrFail is the result of a temporary failure: a retry at the next
// backoff step (at least the provider's Retry-After), or a final failure
// once the attempts are used up.
func (nt *Notifier) retryOrFail(n store.Notification, reason string, attempt store.Attempt, retryAfter time.Duration) store.AttemptResult {
	done := len(n.Attempts) // attempts before this one
	if done+1 >= nt.cfg.MaxAttempts {
		return store.AttemptResult{Status: store.StatusFailed, Reason: reason, Attempt: attempt}
	}
	attempt.Outcome = outcomeRetry
	return store.AttemptResult{
		Status:  store.StatusScheduled,
		Reason:  reason,
		RetryAt: nt.cfg.Now().Add(max(nt.cfg.Backoff(done), retryAfter)),
		Attempt: attempt,
	}
}

// record stores the result of one claimed row and, for a retry, enqueues
// the next attempt under its own task id.
func (nt *Notifier) record(ctx context.Context, n store.Notification, r store.AttemptResult) error {
	if err := nt.finish(ctx, n, r); err != nil {
		return err
	}
	nt.enqueueRetry(ctx, n, r)
	return nil
}

func (nt *Notifier) enqueueRetry(ctx context.Context, n store.Notification, r store.AttemptResult) {
	if r.Status != store.StatusScheduled {
		return
	}
	if err := nt.cfg.Queue.EnqueueNotification(ctx, n.ID, len(n.Attempts)+1, r.RetryAt); err != nil {
		nt.log.Warn("notify: enqueue retry failed, left to the sweeper", "notification_id", n.ID, "err", err)
	}
}

// finish records the outcome. After a successful send the record matters
// most (a lost record later reads as "outcome unknown"), so transient store
// errors are retried a few times before giving up.
func (nt *Notifier) finish(ctx context.Context, n store.Notification, r store.AttemptResult) error {
	// The provider may already have the message: record it even if the
	// task's context ends now (server shutdown, task timeout).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var err error
	for delay := recordRetryFirst; ; delay = min(2*delay, recordRetryMax) {
		_, err = nt.cfg.Store.FinishAttempt(ctx, n.ID, nt.cfg.Now(), r)
		if err == nil {
			nt.cfg.Metrics.NotificationState(n.Channel, n.Template, r.Status)
			nt.log.Info("notify: done", "notification_id", n.ID, "tenant_id", n.TenantID,
				"channel", n.Channel, "status", r.Status, "reason", r.Reason, "attempt", len(n.Attempts)+1)
			return nil
		}
		if errors.Is(err, store.ErrConflict) {
			// Our claim ended (lease expired and the row was marked
			// interrupted): nothing left to record.
			nt.log.Warn("notify: claim lost before recording", "notification_id", n.ID, "status", r.Status)
			return nil
		}
		if serr := sleep(ctx, delay); serr != nil {
			break
		}
	}
	nt.log.Error("notify: recording the outcome failed", "notification_id", n.ID, "status", r.Status)
	return fmt.Errorf("notify: record outcome: %w", err)
}
