package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/internal/store"
)

const (
	// oauthStateTTL is how long a person has on Google's consent screen.
	oauthStateTTL = 15 * time.Minute
	// googleCalendarID is the calendar a Google connection syncs.
	googleCalendarID = "primary"
	// tokenRevokeTimeout bounds revoking a token the callback will not keep.
	tokenRevokeTimeout = 10 * time.Second
)

// Outcomes of the callback, sent to redirect_after as ?status=.
const (
	statusConnected         = "connected"
	statusDenied            = "denied"
	statusInsufficientScope = "insufficient_scope"
	statusError             = "error"
)

// oauthErrorCode is what Google's error parameter looks like; anything
// else is not copied into the audit log.
var oauthErrorCode = regexp.MustCompile(`^[a-z_]{1,40}$`)

// googleAuthorizeRequest is the body of POST /v1/connections/google/authorize.
type googleAuthorizeRequest struct {
	SubjectID     string          `json:"subject_id"`
	Privacy       string          `json:"privacy"`
	Direction     string          `json:"direction"`
	Consent       calendarConsent `json:"consent"`
	RedirectAfter string          `json:"redirect_after"`
	Blocking      bool            `json:"blocking"`
}

type googleAuthorizeResponse struct {
	AuthURL   string `json:"auth_url"`
	ExpiresAt string `json:"expires_at"`
}

// googleCredentials is what a Google connection stores, sealed.
type googleCredentials struct {
	RefreshToken string    `json:"refresh_token"`
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry"`
	Scopes       []string  `json:"scopes,omitempty"`
}

// tokenRevoker is implemented by *google.OAuth. The callback uses it, when
// there, to give back a token it does not keep.
type tokenRevoker interface {
	Revoke(ctx context.Context, token string) error
}

// googleConfigured says whether the Google routes can run.
func (s *server) googleConfigured() *apiError {
	if s.google == nil || len(s.cfg.OAuthStateKey) < google.MinStateKeyLen {
		return notConfigured("Google")
	}
	return nil
}

func validateGoogleAuthorize(req googleAuthorizeRequest) *apiError {
	if msg := checkSubjectID(req.SubjectID); msg != "" {
		return invalidField("subject_id", "is required and "+msg)
	}
	if aerr := validateCalendarUse(req.Privacy, req.Direction, req.Consent); aerr != nil {
		return aerr
	}
	if aerr := validateRedirectAfter(req.RedirectAfter); aerr != nil {
		return aerr
	}
	return validateBlocking(req.Blocking, req.Direction)
}

// validateRedirectAfter accepts an absolute https URL, or http for a
// loopback host (a platform's development setup). The callback appends
// its outcome to the query, so a fragment is refused.
func validateRedirectAfter(raw string) *apiError {
	const rule = "must be an absolute https URL (http only for localhost) without credentials or fragment, at most 2048 characters"
	if raw == "" || len(raw) > maxURLLen || !printableText(raw) {
		return invalidField("redirect_after", rule)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return invalidField("redirect_after", rule)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			return invalidField("redirect_after", rule)
		}
	default:
		return invalidField("redirect_after", rule)
	}
	return nil
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// authorizeGoogle starts a Google connection: it keeps the PKCE verifier
// and the request server-side under a fresh nonce, signs a state that
// carries the nonce, and returns the consent screen's URL. The platform
// sends the person's browser there; Google sends it back to the callback.
func (s *server) authorizeGoogle(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	if aerr := s.googleConfigured(); aerr != nil {
		writeError(w, aerr)
		return
	}
	var req googleAuthorizeRequest
	if !readJSON(w, r, maxBodyBytes, &req, false) {
		return
	}
	if aerr := validateGoogleAuthorize(req); aerr != nil {
		writeError(w, aerr)
		return
	}
	scopes, err := google.Scopes(req.Consent.Purposes)
	if err != nil {
		// Validation admits calendar purposes only, which all map.
		writeError(w, invalidField("consent.purposes", "has a purpose Google calendars cannot grant"))
		return
	}

	now := s.now()
	expires := now.Add(oauthStateTTL).Truncate(time.Second)
	nonce := google.NewNonce()
	verifier := google.NewVerifier()
	actor := actorOf(key)
	err = s.store.SaveOAuthState(r.Context(), store.OAuthState{
		Nonce:         nonce,
		TenantID:      key.TenantID,
		SubjectID:     req.SubjectID,
		Verifier:      verifier,
		Purposes:      req.Consent.Purposes,
		Privacy:       req.Privacy,
		Direction:     req.Direction,
		PolicyVersion: req.Consent.PolicyVersion,
		SourceIP:      req.Consent.Source.IP,
		UserAgent:     req.Consent.Source.UserAgent,
		RedirectAfter: req.RedirectAfter,
		Actor:         actor,
		ExpiresAt:     expires,
		Blocking:      req.Blocking,
	})
	if err != nil {
		s.internalError(w, r, "save oauth state", err)
		return
	}
	state, err := google.SignState(s.cfg.OAuthStateKey, google.State{
		TenantID:      key.TenantID,
		SubjectID:     req.SubjectID,
		Nonce:         nonce,
		Purposes:      req.Consent.Purposes,
		RedirectAfter: req.RedirectAfter,
		Expires:       expires,
	})
	if err != nil {
		s.internalError(w, r, "sign oauth state", err)
		return
	}
	err = s.audit(r.Context(), store.AuditEntry{
		TenantID:   key.TenantID,
		Actor:      actor,
		Action:     auditConnectionAuthorize,
		TargetKind: targetSubject,
		TargetID:   req.SubjectID,
		SubjectID:  req.SubjectID,
		SourceIP:   sourceIP(req.Consent.Source.IP, r),
		Detail:     "provider=google purposes=" + strings.Join(req.Consent.Purposes, ","),
	})
	if err != nil {
		s.internalError(w, r, "audit authorize", err)
		return
	}
	writeJSON(w, http.StatusOK, googleAuthorizeResponse{
		AuthURL:   s.google.AuthCodeURL(state, verifier, scopes),
		ExpiresAt: expires.UTC().Format(time.RFC3339),
	})
}

// googleCallback is where Google sends the browser back. It is not bearer
// authenticated: the signed state and the single-use server-side record
// behind its nonce prove that the flow started here, for which tenant and
// subject. A bad state is a 400 and stores nothing. Once the state is
// used, every outcome is a 303 to the platform's redirect_after with
// ?status=connected|denied|insufficient_scope|error:
//
//   - access_denied on Google's screen: a refused decision per purpose;
//   - scopes unticked on the screen: refused for the purposes not covered,
//     and the token is given back to Google;
//   - a code Google does not accept (invalid_grant) or no answer from
//     Google: status=error, recorded in the audit log only — the person
//     starts again from the platform, which a 400 page here could not offer;
//   - success: the connection, its sealed token and the granted decisions,
//     in one transaction; status=connected&connection_id=….
func (s *server) googleCallback(w http.ResponseWriter, r *http.Request) {
	if aerr := s.googleConfigured(); aerr != nil {
		writeError(w, aerr)
		return
	}
	q := r.URL.Query()
	now := s.now()
	signed, err := google.VerifyState(s.cfg.OAuthStateKey, q.Get("state"), now)
	if errors.Is(err, google.ErrStateExpired) {
		writeError(w, invalidState("has expired; start the connection again"))
		return
	}
	if err != nil {
		writeError(w, invalidState("is not valid"))
		return
	}
	st, err := s.store.ConsumeOAuthState(r.Context(), signed.Nonce, now)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, invalidState("is unknown, expired or already used; start the connection again"))
		return
	}
	if err != nil {
		s.internalError(w, r, "consume oauth state", err)
		return
	}
	if st.TenantID != signed.TenantID || st.SubjectID != signed.SubjectID {
		writeError(w, invalidState("is not valid"))
		return
	}
	ip := sourceIP(st.SourceIP, r)
	log := s.log.With(slog.String("tenant_id", st.TenantID))

	if e := q.Get("error"); e != "" || q.Get("code") == "" {
		if e == "access_denied" {
			if err := s.recordRefusals(r.Context(), st, st.Purposes, ip); err != nil {
				log.LogAttrs(r.Context(), slog.LevelError, "record refusal failed", slog.String("err", err.Error()))
				s.redirectAfter(w, r, st, statusError, "")
				return
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "google consent denied")
			s.redirectAfter(w, r, st, statusDenied, "")
			return
		}
		detail := "google answered without a code"
		if oauthErrorCode.MatchString(e) {
			detail = "google error " + e
		}
		s.authorizeFailed(r, st, ip, detail)
		s.redirectAfter(w, r, st, statusError, "")
		return
	}

	tok, err := s.google.Exchange(r.Context(), q.Get("code"), st.Verifier)
	if err != nil {
		detail := "token exchange failed"
		if errors.Is(err, google.ErrInvalidGrant) {
			detail = "invalid_grant"
		}
		log.LogAttrs(r.Context(), slog.LevelWarn, "google code exchange failed", slog.String("err", err.Error()))
		s.authorizeFailed(r, st, ip, detail)
		s.redirectAfter(w, r, st, statusError, "")
		return
	}

	if missing := uncovered(tok.Scopes, st.Purposes); len(missing) > 0 {
		s.giveBack(r, tok)
		if err := s.recordRefusals(r.Context(), st, missing, ip); err != nil {
			log.LogAttrs(r.Context(), slog.LevelError, "record refusal failed", slog.String("err", err.Error()))
			s.redirectAfter(w, r, st, statusError, "")
			return
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "google consent lacks scopes", slog.Int("missing_purposes", len(missing)))
		s.redirectAfter(w, r, st, statusInsufficientScope, "")
		return
	}

	creds, err := json.Marshal(googleCredentials{
		RefreshToken: tok.RefreshToken,
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		Expiry:       tok.Expiry.UTC(),
		Scopes:       tok.Scopes,
	})
	if err != nil {
		s.giveBack(r, tok)
		log.LogAttrs(r.Context(), slog.LevelError, "encode google token failed", slog.String("err", err.Error()))
		s.redirectAfter(w, r, st, statusError, "")
		return
	}
	consent := calendarConsent{
		Purposes:      st.Purposes,
		PolicyVersion: st.PolicyVersion,
		Source:        consentSource{IP: st.SourceIP, UserAgent: st.UserAgent},
	}
	conn, err := s.store.CreateConnection(r.Context(), store.Connection{
		TenantID:    st.TenantID,
		SubjectID:   st.SubjectID,
		Provider:    store.ProviderGoogle,
		CalendarURL: googleCalendarID,
		Privacy:     st.Privacy,
		Direction:   st.Direction,
		Blocking:    st.Blocking,
	}, creds, grantedConsents(st.TenantID, st.SubjectID, st.Actor, consent), store.AuditEntry{
		TenantID:   st.TenantID,
		Actor:      st.Actor,
		Action:     auditConnectionCreate,
		TargetKind: targetConnection,
		SubjectID:  st.SubjectID,
		SourceIP:   ip,
		Detail:     "provider=google",
	})
	if err != nil {
		s.giveBack(r, tok)
		log.LogAttrs(r.Context(), slog.LevelError, "create google connection failed", slog.String("err", err.Error()))
		s.redirectAfter(w, r, st, statusError, "")
		return
	}
	log.LogAttrs(r.Context(), slog.LevelInfo, "connection created",
		slog.String("connection_id", conn.ID), slog.String("provider", conn.Provider))
	s.startGoogleSync(r, conn.ID)
	s.redirectAfter(w, r, st, statusConnected, conn.ID)
}

func invalidState(message string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalidState, Message: "the state parameter " + message, Field: "state"}
}

// uncovered lists the purposes the granted scopes do not allow.
func uncovered(scopes, purposes []string) []string {
	var missing []string
	for _, p := range purposes {
		if !google.Covers(scopes, []string{p}) {
			missing = append(missing, p)
		}
	}
	return missing
}

// recordRefusals writes a refused decision, and its audit entry, for each
// purpose.
func (s *server) recordRefusals(ctx context.Context, st store.OAuthState, purposes []string, ip string) error {
	for _, p := range purposes {
		c, err := s.store.RecordConsent(ctx, store.Consent{
			TenantID:      st.TenantID,
			SubjectID:     st.SubjectID,
			Purpose:       p,
			Decision:      store.DecisionRefused,
			PolicyVersion: st.PolicyVersion,
			Actor:         st.Actor,
			SourceIP:      st.SourceIP,
			UserAgent:     st.UserAgent,
		})
		if err != nil {
			return err
		}
		if err := s.audit(ctx, consentAudit(c, ip)); err != nil {
			return err
		}
	}
	return nil
}

// authorizeFailed audits a flow that ended without a decision by the
// person (an error from Google, a code it did not accept).
func (s *server) authorizeFailed(r *http.Request, st store.OAuthState, ip, detail string) {
	err := s.audit(r.Context(), store.AuditEntry{
		TenantID:   st.TenantID,
		Actor:      st.Actor,
		Action:     auditAuthorizeFailed,
		TargetKind: targetSubject,
		TargetID:   st.SubjectID,
		SubjectID:  st.SubjectID,
		SourceIP:   ip,
		Detail:     "provider=google " + detail,
	})
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "audit failed",
			slog.String("tenant_id", st.TenantID), slog.String("err", err.Error()))
	}
}

// giveBack revokes a token the callback does not keep, so no grant is left
// at Google that nothing here records. Best effort: the grant is useless
// without the stored token.
func (s *server) giveBack(r *http.Request, tok google.Token) {
	rv, ok := s.google.(tokenRevoker)
	if !ok {
		return
	}
	t := tok.RefreshToken
	if t == "" {
		t = tok.AccessToken
	}
	if t == "" {
		return
	}
	ctx, cancel := detached(r.Context(), tokenRevokeTimeout)
	defer cancel()
	if err := rv.Revoke(ctx, t); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "revoking an unused google token failed", slog.String("err", err.Error()))
	}
}

// redirectAfter sends the browser back to the platform with the outcome.
// redirect_after was validated when the flow started.
func (s *server) redirectAfter(w http.ResponseWriter, r *http.Request, st store.OAuthState, status, connectionID string) {
	u, err := url.Parse(st.RedirectAfter)
	if err != nil {
		s.internalError(w, r, "parse redirect_after", err)
		return
	}
	q := u.Query()
	q.Set("status", status)
	if connectionID != "" {
		q.Set("connection_id", connectionID)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// watchEnqueuer is implemented by queues that carry push channel
// renewals (queue.Client).
type watchEnqueuer interface {
	EnqueueWatchRenew(ctx context.Context, connectionID string) error
}

// startGoogleSync asks for the first pull and a push channel of a new
// connection right away. Best effort: the poller and the watch schedule
// find a connection without either on their next round.
func (s *server) startGoogleSync(r *http.Request, connectionID string) {
	ctx, cancel := detached(r.Context(), enqueueTimeout)
	defer cancel()
	if q, ok := s.queue.(pullEnqueuer); ok {
		if err := q.EnqueuePull(ctx, connectionID, true); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "first pull not queued", slog.String("connection_id", connectionID), slog.String("err", err.Error()))
		}
	}
	if q, ok := s.queue.(watchEnqueuer); ok {
		if err := q.EnqueueWatchRenew(ctx, connectionID); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "push channel not queued", slog.String("connection_id", connectionID), slog.String("err", err.Error()))
		}
	}
}
