package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/termind/termind/internal/store"
)

// Cookie names. Over https the session cookie takes the __Host- prefix:
// the browser then insists on Secure, Path=/ and no Domain.
const (
	sessionCookie       = "termind_admin"
	secureSessionCookie = "__Host-termind_admin"
	// signInCookie carries the sign-in form's CSRF token (double submit):
	// there is no session yet to keep it in.
	signInCookie       = "termind_admin_signin"
	secureSignInCookie = "__Host-termind_admin_signin"
	csrfField          = "csrf"
)

// Audit actions of the admin pages.
const (
	auditSignIn  = "admin.sign_in"
	auditSignOut = "admin.sign_out"
)

// session is the signed-in operator of a request.
type session struct {
	id     string // the cookie value
	key    string // API key id
	tenant string
	csrf   string
}

func (s *server) actor(sess session) string { return "admin:" + sess.key }

func (s *server) sessionCookieName() string {
	if s.secure {
		return secureSessionCookie
	}
	return sessionCookie
}

func (s *server) signInCookieName() string {
	if s.secure {
		return secureSignInCookie
	}
	return signInCookie
}

func (s *server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteStrictMode,
	})
}

// randomToken returns 32 random bytes, base64url: session ids and CSRF tokens.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokensEqual compares secrets in constant time; empty never matches.
func tokensEqual(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, sess session)

// authed runs next for a signed-in operator. Others are sent to the
// sign-in page (GET, HEAD) or refused (anything else). Every POST must
// carry the session's CSRF token.
func (s *server) authed(next sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.currentSession(w, r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/admin/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.errorPage(w, r, http.StatusUnauthorized, "Sign in first.")
			return
		}
		if r.Method == http.MethodPost && !isQueuesPath(r.URL.Path) {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				s.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if !tokensEqual(r.PostForm.Get(csrfField), sess.csrf) {
				s.log.LogAttrs(r.Context(), slog.LevelWarn, "admin: csrf token mismatch",
					slog.String("tenant_id", sess.tenant), slog.String("route", r.Pattern))
				s.errorPage(w, r, http.StatusForbidden, "This form has expired. Go back, reload the page and try again.")
				return
			}
		}
		next(w, r, sess)
	}
}

// currentSession finds the request's live session; a stale cookie is
// cleared.
func (s *server) currentSession(w http.ResponseWriter, r *http.Request) (session, bool) {
	c, err := r.Cookie(s.sessionCookieName())
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return session{}, false
	}
	st, err := s.store.GetAdminSession(r.Context(), c.Value, s.now())
	if errors.Is(err, store.ErrNotFound) {
		s.setCookie(w, s.sessionCookieName(), "", -1)
		return session{}, false
	}
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "admin: session lookup failed", slog.String("err", err.Error()))
		return session{}, false
	}
	return session{id: c.Value, key: st.KeyID, tenant: st.TenantID, csrf: st.CSRFToken}, true
}

type signInData struct {
	Next  string
	Error string
}

// signInForm shows the form with a fresh CSRF token in a cookie and a
// hidden field.
func (s *server) signInForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.currentSession(w, r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.renderSignIn(w, r, http.StatusOK, signInData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (s *server) renderSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) {
	token := randomToken()
	s.setCookie(w, s.signInCookieName(), token, int((15 * time.Minute).Seconds()))
	s.render(w, r, status, "signin.html", view{Title: "Sign in", CSRF: token, Data: d})
}

// signIn checks the key. Failed attempts count per client address; past
// the limit, attempts are answered 429 without looking at the key.
func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	now := s.now()
	if !s.limiter.allow(ip, now) {
		w.Header().Set("Retry-After", "60")
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "admin: sign-in rate limited")
		s.renderSignIn(w, r, http.StatusTooManyRequests, signInData{Error: "Too many failed sign-ins. Wait a minute and try again."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderSignIn(w, r, http.StatusBadRequest, signInData{Error: "The form could not be read."})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	c, err := r.Cookie(s.signInCookieName())
	if err != nil || !tokensEqual(c.Value, r.PostForm.Get(csrfField)) {
		s.renderSignIn(w, r, http.StatusForbidden, signInData{Next: next, Error: "The form has expired. Please try again."})
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("api_key"))
	key, err := s.store.LookupAPIKey(r.Context(), token)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && key.Role != store.RoleAdmin):
		failures := s.limiter.fail(ip, now)
		reason := "unknown_key"
		if err == nil {
			reason = "not_admin"
		}
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "admin: sign-in refused",
			slog.String("reason", reason), slog.Int("recent_failures", failures))
		s.renderSignIn(w, r, http.StatusUnauthorized, signInData{Next: next, Error: "This is not an admin API key."})
		return
	case err != nil:
		s.internalError(w, r, "look up api key", err)
		return
	}

	id := randomToken()
	err = s.store.CreateAdminSession(r.Context(), id, store.AdminSession{
		TenantID:  key.TenantID,
		KeyID:     key.ID,
		CSRFToken: randomToken(),
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.SessionTTL),
	})
	if err != nil {
		s.internalError(w, r, "create session", err)
		return
	}
	if _, err := s.store.Audit(r.Context(), store.AuditEntry{TenantID: key.TenantID, Actor: "admin:" + key.ID,
		Action: auditSignIn, TargetKind: "tenant", TargetID: key.TenantID, SourceIP: ip}); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "admin: audit sign-in failed", slog.String("err", err.Error()))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "admin: signed in",
		slog.String("tenant_id", key.TenantID), slog.String("key_id", key.ID))
	s.setCookie(w, s.signInCookieName(), "", -1)
	s.setCookie(w, s.sessionCookieName(), id, int(s.cfg.SessionTTL.Seconds()))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *server) signOut(w http.ResponseWriter, r *http.Request, sess session) {
	if err := s.store.DeleteAdminSession(r.Context(), sess.id); err != nil {
		s.internalError(w, r, "delete session", err)
		return
	}
	if _, err := s.store.Audit(r.Context(), store.AuditEntry{TenantID: sess.tenant, Actor: s.actor(sess),
		Action: auditSignOut, TargetKind: "tenant", TargetID: sess.tenant, SourceIP: clientIP(r)}); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "admin: audit sign-out failed", slog.String("err", err.Error()))
	}
	s.setCookie(w, s.sessionCookieName(), "", -1)
	http.Redirect(w, r, "/admin/signin", http.StatusSeeOther)
}

// safeNext keeps redirects after sign-in on these pages.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

// clientIP is the TCP peer's address. Forwarded headers are not read: any
// client can set them, and the failed sign-in limit must not be escapable.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	return addr.Unmap().WithZone("").String()
}
