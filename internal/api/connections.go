package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/internal/store"
)

// Limits of the connection requests.
const (
	maxURLLen          = 2048
	maxUsernameLen     = 256
	maxPasswordLen     = 1024
	maxCalendarRef     = 2048 // a display name, a path or a URL
	maxCalendarName    = 200
	maxRevokeReasonLen = 200
)

// Cleanup states of a connection's view.
const (
	cleanupPending = "pending"
	cleanupDone    = "done"
)

// revokeEnqueueTimeout bounds handing a revocation to the queue after the
// commit; the sweeper re-enqueues what this misses.
const revokeEnqueueTimeout = 5 * time.Second

// NewCalDAVConnector returns the CalDAVConnector that the daemon passes in
// Deps: caldav.Connect over c, which should come from caldav.NewHTTPClient
// so that the address rules (no loopback or private servers unless
// allowed) hold for URLs typed in by end users.
func NewCalDAVConnector(c *http.Client) CalDAVConnector { return caldavConnector{client: c} }

type caldavConnector struct{ client *http.Client }

func (c caldavConnector) Connect(ctx context.Context, p caldav.ConnectParams) (caldav.Calendar, error) {
	return caldav.Connect(ctx, c.client, p)
}

// connectionView is a connection on the wire: what it syncs and how it
// stands, never its credentials or sync cursor.
type connectionView struct {
	ID                string `json:"id"`
	SubjectID         string `json:"subject_id"`
	Provider          string `json:"provider"`
	CalendarURL       string `json:"calendar_url"`
	CalendarName      string `json:"calendar_name"`
	Privacy           string `json:"privacy"`
	Direction         string `json:"direction"`
	State             string `json:"state"`
	StateReason       string `json:"state_reason"`
	LastSyncAt        string `json:"last_sync_at"`
	LastError         string `json:"last_error"`
	CreatedAt         string `json:"created_at"`
	UpdatedAt         string `json:"updated_at"`
	RevokeRequestedAt string `json:"revoke_requested_at"`
	RevokedAt         string `json:"revoked_at"`
	// PausedUntil: when a connection the system paused (quota) resumes.
	PausedUntil string `json:"paused_until,omitempty"`
	// Cleanup tells how removing synced data stands after a revocation:
	// "pending" while revoking, "done" once revoked, "" before.
	Cleanup string `json:"cleanup"`
	// Sync is shown by GET /v1/connections/{id} and the list.
	Sync *connectionSyncView `json:"sync,omitempty"`
	// Blocking: busy time of the subject's other calendars is written
	// into this one as detail-free blockers.
	Blocking bool `json:"blocking"`
}

func viewConnection(c store.Connection) connectionView {
	v := connectionView{
		ID:                c.ID,
		SubjectID:         c.SubjectID,
		Provider:          c.Provider,
		CalendarURL:       c.CalendarURL,
		CalendarName:      c.CalendarName,
		Privacy:           c.Privacy,
		Direction:         c.Direction,
		State:             c.State,
		StateReason:       c.StateReason,
		LastSyncAt:        rfc3339(c.LastSyncAt),
		LastError:         c.LastError,
		CreatedAt:         rfc3339(c.CreatedAt),
		UpdatedAt:         rfc3339(c.UpdatedAt),
		RevokeRequestedAt: rfc3339(c.RevokeRequestedAt),
		RevokedAt:         rfc3339(c.RevokedAt),
		PausedUntil:       rfc3339(c.PausedUntil),
		Blocking:          c.Blocking,
	}
	switch c.State {
	case store.ConnRevoking:
		v.Cleanup = cleanupPending
	case store.ConnRevoked:
		v.Cleanup = cleanupDone
	}
	return v
}

// caldavRequest is the body of POST /v1/connections/caldav.
type caldavRequest struct {
	SubjectID          string          `json:"subject_id"`
	URL                string          `json:"url"`
	Username           string          `json:"username"`
	Password           string          `json:"password"`
	Calendar           string          `json:"calendar"`
	CreateCalendar     string          `json:"create_calendar"`
	Privacy            string          `json:"privacy"`
	Direction          string          `json:"direction"`
	KeepCopiesOnRevoke bool            `json:"keep_copies_on_revoke"`
	Consent            calendarConsent `json:"consent"`
	Blocking           bool            `json:"blocking"`
}

// caldavCredentials is what a CalDAV connection stores, sealed.
type caldavCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// validateCalDAV checks every rule that needs no I/O, in field order. The
// URL's scheme and address are the CalDAV client's to judge: it refuses
// them before dialing.
func validateCalDAV(req caldavRequest) *apiError {
	if msg := checkSubjectID(req.SubjectID); msg != "" {
		return invalidField("subject_id", "is required and "+msg)
	}
	if req.URL == "" || len(req.URL) > maxURLLen || !printableText(req.URL) {
		return invalidField("url", "is required: the CalDAV server's https URL, at most 2048 characters")
	}
	if u, err := url.Parse(req.URL); err != nil || !u.IsAbs() || u.Host == "" {
		return invalidField("url", "must be an absolute URL such as https://dav.example.com/")
	}
	if req.Username == "" || len(req.Username) > maxUsernameLen || !printableText(req.Username) {
		return invalidField("username", "is required: 1 to 256 printable characters")
	}
	if req.Password == "" || len(req.Password) > maxPasswordLen || !printableText(req.Password) {
		return invalidField("password", "is required: 1 to 1024 printable characters")
	}
	if len(req.Calendar) > maxCalendarRef || !printableText(req.Calendar) {
		return invalidField("calendar", "must be a calendar's name, path or URL of at most 2048 characters")
	}
	if utf8.RuneCountInString(req.CreateCalendar) > maxCalendarName || !printableText(req.CreateCalendar) {
		return invalidField("create_calendar", "must be a calendar name of at most 200 printable characters")
	}
	if aerr := validateCalendarUse(req.Privacy, req.Direction, req.Consent); aerr != nil {
		return aerr
	}
	return validateBlocking(req.Blocking, req.Direction)
}

// printableText accepts valid UTF-8 without control characters ("" too).
func printableText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// boundedText accepts at most max characters of printable text. Control
// characters are refused here because PostgreSQL text cannot hold NUL: the
// store would fail with a 500 instead of a 400 naming the field.
func boundedText(s string, max int) bool {
	return utf8.RuneCountInString(s) <= max && printableText(s)
}

// connectCalDAV validates the request, checks URL, credentials and calendar
// against the server, and only then stores the connection with its sealed
// credentials, the granted consents and an audit entry, in one
// transaction. No failure stores anything.
func (s *server) connectCalDAV(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	if s.caldav == nil {
		writeError(w, notConfigured("CalDAV"))
		return
	}
	var req caldavRequest
	if !readJSON(w, r, maxBodyBytes, &req, false) {
		return
	}
	if aerr := validateCalDAV(req); aerr != nil {
		writeError(w, aerr)
		return
	}

	cal, err := s.caldav.Connect(r.Context(), caldav.ConnectParams{
		URL:        req.URL,
		Username:   req.Username,
		Password:   req.Password,
		Calendar:   req.Calendar,
		CreateName: req.CreateCalendar,
	})
	if err != nil {
		s.caldavFailed(w, r, key, err)
		return
	}

	creds, err := json.Marshal(caldavCredentials{Username: req.Username, Password: req.Password})
	if err != nil {
		s.internalError(w, r, "encode credentials", err)
		return
	}
	actor := actorOf(key)
	conn, err := s.store.CreateConnection(r.Context(), store.Connection{
		TenantID:           key.TenantID,
		SubjectID:          req.SubjectID,
		Provider:           store.ProviderCalDAV,
		CalendarURL:        cal.URL,
		CalendarName:       cal.Name,
		Privacy:            req.Privacy,
		Direction:          req.Direction,
		KeepCopiesOnRevoke: req.KeepCopiesOnRevoke,
		Blocking:           req.Blocking,
	}, creds, grantedConsents(key.TenantID, req.SubjectID, actor, req.Consent), store.AuditEntry{
		TenantID:   key.TenantID,
		Actor:      actor,
		Action:     auditConnectionCreate,
		TargetKind: targetConnection,
		SubjectID:  req.SubjectID,
		SourceIP:   sourceIP(req.Consent.Source.IP, r),
		Detail:     "provider=caldav",
	})
	if err != nil {
		s.internalError(w, r, "create connection", err)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "connection created",
		slog.String("tenant_id", conn.TenantID), slog.String("connection_id", conn.ID),
		slog.String("provider", conn.Provider), slog.Bool("calendar_created", cal.Created))
	writeJSON(w, http.StatusCreated, viewConnection(conn))
}

// caldavFailed maps a failed Connect to the answer. The *caldav.Error text
// is safe to show: no credentials, addresses or server content. It is not
// logged, since it may name the user's host.
func (s *server) caldavFailed(w http.ResponseWriter, r *http.Request, key store.APIKey, err error) {
	reason := "the server could not be used"
	var cerr *caldav.Error
	if errors.As(err, &cerr) {
		reason = strings.TrimPrefix(cerr.Error(), "caldav: ")
	}
	kind := "other"
	var aerr *apiError
	switch {
	case errors.Is(err, caldav.ErrCredentialsRejected):
		kind, aerr = "credentials_rejected", invalidField("password", "credentials rejected by the server")
	case errors.Is(err, caldav.ErrUnreachable):
		kind, aerr = "unreachable", &apiError{Status: http.StatusBadGateway, Code: codeUpstreamUnreachable, Message: reason, Field: "url"}
	case errors.Is(err, caldav.ErrNotCalDAV):
		msg := "not a CalDAV server"
		if cerr != nil && cerr.Reason != "" {
			msg += ": " + cerr.Reason
		}
		kind, aerr = "not_caldav", invalidField("url", msg)
	case errors.Is(err, caldav.ErrForbiddenAddress):
		kind, aerr = "forbidden_address", invalidField("url", reason)
	case errors.Is(err, caldav.ErrInvalidURL):
		kind, aerr = "invalid_url", invalidField("url", reason)
	case errors.Is(err, caldav.ErrCalendarNotFound):
		kind, aerr = "calendar_not_found", invalidField("calendar", reason)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		kind, aerr = "timeout", &apiError{Status: http.StatusBadGateway, Code: codeUpstreamUnreachable, Message: "the CalDAV server did not answer in time", Field: "url"}
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "caldav connect refused",
		slog.String("tenant_id", key.TenantID), slog.String("kind", kind))
	if aerr == nil {
		s.internalError(w, r, "caldav connect", errors.New("unclassified connect failure"))
		return
	}
	writeError(w, aerr)
}

type connectionList struct {
	Items []connectionView `json:"items"`
}

// listConnections lists the tenant's connections, of one subject when
// subject_id is given, oldest first.
func (s *server) listConnections(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	subjectID := r.URL.Query().Get("subject_id")
	if subjectID != "" {
		if msg := checkSubjectID(subjectID); msg != "" {
			writeError(w, invalidField("subject_id", msg))
			return
		}
	}
	cs, err := s.store.ListConnections(r.Context(), key.TenantID, subjectID)
	if err != nil {
		s.internalError(w, r, "list connections", err)
		return
	}
	out := connectionList{Items: make([]connectionView, 0, len(cs))}
	for _, c := range cs {
		v, err := s.viewConnectionWithSync(r.Context(), c)
		if err != nil {
			s.internalError(w, r, "list connections", err)
			return
		}
		out.Items = append(out.Items, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getConnection(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	id, ok := connectionID(w, r)
	if !ok {
		return
	}
	c, ok := s.loadConnection(w, r, key.TenantID, id)
	if !ok {
		return
	}
	v, err := s.viewConnectionWithSync(r.Context(), c)
	if err != nil {
		s.internalError(w, r, "get connection", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// revokeRequest is the optional body of POST /v1/connections/{id}/revoke:
// why, under which policy, and where the person was, as the platform
// reports it.
type revokeRequest struct {
	Reason        string        `json:"reason"`
	PolicyVersion string        `json:"policy_version"`
	Source        consentSource `json:"source"`
}

func validateRevoke(req revokeRequest) *apiError {
	if utf8.RuneCountInString(req.Reason) > maxRevokeReasonLen || !printableText(req.Reason) {
		return invalidField("reason", "must be at most 200 printable characters")
	}
	if !boundedText(req.PolicyVersion, maxPolicyVersion) {
		return invalidField("policy_version", "must be at most 100 characters, no control characters")
	}
	if req.Source.IP != "" {
		if _, err := netip.ParseAddr(req.Source.IP); err != nil {
			return invalidField("source.ip", "must be an IPv4 or IPv6 address such as 203.0.113.7")
		}
	}
	if !boundedText(req.Source.UserAgent, maxUserAgent) {
		return invalidField("source.user_agent", "must be at most 512 characters, no control characters")
	}
	return nil
}

type revokeAccepted struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// revokeConnection commits the revocation (state revoking, "revoked" in
// the ledger for each granted purpose, an audit entry) and hands the
// cleanup to the queue. An ingest key may revoke: the person revokes
// through the platform. A failed enqueue is logged and the answer is still
// 202: the revoking state is the record, and the sweeper re-enqueues it.
func (s *server) revokeConnection(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	id, ok := connectionID(w, r)
	if !ok {
		return
	}
	var req revokeRequest
	if !readJSON(w, r, maxBodyBytes, &req, true) {
		return
	}
	if aerr := validateRevoke(req); aerr != nil {
		writeError(w, aerr)
		return
	}
	c, err := RevokeConnection(r.Context(), s.store, s.queue, s.log, key.TenantID, id, store.Revocation{
		Actor:         actorOf(key),
		Reason:        req.Reason,
		PolicyVersion: req.PolicyVersion,
		SourceIP:      sourceIP(req.Source.IP, r),
		UserAgent:     req.Source.UserAgent,
	})
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFound("no such connection"))
		return
	}
	if err != nil {
		s.internalError(w, r, "begin revocation", err)
		return
	}
	if c.State == store.ConnRevoked {
		writeJSON(w, http.StatusOK, viewConnection(c))
		return
	}
	writeJSON(w, http.StatusAccepted, revokeAccepted{ID: c.ID, State: c.State})
}

// enqueueRevoke hands a committed revocation to the queue; a failure is
// logged and left to the sweeper.
func (s *server) enqueueRevoke(r *http.Request, tenantID, connectionID string) {
	ctx, cancel := detached(r.Context(), revokeEnqueueTimeout)
	defer cancel()
	if err := s.queue.EnqueueRevoke(ctx, connectionID); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "enqueue revoke failed; the sweeper will retry",
			slog.String("tenant_id", tenantID), slog.String("connection_id", connectionID), slog.String("err", err.Error()))
	}
}

// connectionID is the {id} of a connection route; one longer than any id
// termind issues is a 404 before anything else happens.
func connectionID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if len(id) > maxPathID {
		writeError(w, notFound("no such connection"))
		return "", false
	}
	return id, true
}

// loadConnection reads one of the tenant's connections; when it cannot,
// it has answered (404 or 500).
func (s *server) loadConnection(w http.ResponseWriter, r *http.Request, tenantID, id string) (store.Connection, bool) {
	c, err := s.store.GetConnection(r.Context(), tenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFound("no such connection"))
		return store.Connection{}, false
	}
	if err != nil {
		s.internalError(w, r, "get connection", err)
		return store.Connection{}, false
	}
	return c, true
}
