package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// OAuthState is the server side of a Google authorization in progress,
// keyed by the nonce carried in the signed state parameter.
type OAuthState struct {
	Nonce         string
	TenantID      string
	SubjectID     string
	Verifier      string // PKCE verifier: sealed at rest
	Purposes      []string
	Privacy       string
	Direction     string
	PolicyVersion string
	SourceIP      string
	UserAgent     string
	RedirectAfter string
	Actor         string
	ExpiresAt     time.Time
	Blocking      bool // the connection's blocking setting
}

const oauthStateCols = `nonce, tenant_id, subject_id, verifier, purposes, privacy, direction, policy_version,
	source_ip, user_agent, redirect_after, actor, expires_at, blocking`

// SaveOAuthState stores a pending authorization. Nonce, tenant, subject,
// verifier and ExpiresAt are required; a nonce already stored gives
// ErrConflict. Expired states are deleted by PurgeExpired.
func (s *Store) SaveOAuthState(ctx context.Context, st OAuthState) error {
	if st.Nonce == "" || st.TenantID == "" || st.SubjectID == "" || st.Verifier == "" || st.ExpiresAt.IsZero() {
		return errors.New("save oauth state: nonce, tenant, subject, verifier and expiry are required")
	}
	sealer, err := s.currentSealer()
	if err != nil {
		return fmt.Errorf("save oauth state: %w", err)
	}
	sealed, err := sealer.Encrypt([]byte(st.Verifier), oauthStateAAD(st.Nonce))
	if err != nil {
		return fmt.Errorf("save oauth state: seal: %w", err)
	}
	purposes := st.Purposes
	if purposes == nil {
		purposes = []string{}
	}
	pj, err := json.Marshal(purposes)
	if err != nil {
		return fmt.Errorf("save oauth state: %w", err)
	}
	res, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO oauth_states (`+oauthStateCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (nonce) DO NOTHING`),
		st.Nonce, st.TenantID, st.SubjectID, sealed, string(pj), st.Privacy, st.Direction, st.PolicyVersion,
		st.SourceIP, st.UserAgent, st.RedirectAfter, st.Actor, ms(st.ExpiresAt), st.Blocking)
	if err != nil {
		return fmt.Errorf("save oauth state: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("save oauth state: nonce taken: %w", ErrConflict)
	}
	return nil
}

// ConsumeOAuthState returns and deletes the state (single use). Unknown,
// already used or expired → ErrNotFound. The delete and the read are one
// statement, so of two concurrent callers exactly one gets the state.
func (s *Store) ConsumeOAuthState(ctx context.Context, nonce string, now time.Time) (OAuthState, error) {
	var st OAuthState
	var purposes string
	var expires int64
	err := s.db.QueryRowContext(ctx, s.rebind("DELETE FROM oauth_states WHERE nonce = ? RETURNING "+oauthStateCols), nonce).Scan(
		&st.Nonce, &st.TenantID, &st.SubjectID, &st.Verifier, &purposes, &st.Privacy, &st.Direction, &st.PolicyVersion,
		&st.SourceIP, &st.UserAgent, &st.RedirectAfter, &st.Actor, &expires, &st.Blocking)
	if err != nil {
		return OAuthState{}, fmt.Errorf("consume oauth state: %w", notFound(err))
	}
	st.ExpiresAt = fromMS(expires)
	if expires <= ms(now) {
		return OAuthState{}, fmt.Errorf("consume oauth state: expired: %w", ErrNotFound)
	}
	if err := json.Unmarshal([]byte(purposes), &st.Purposes); err != nil {
		return OAuthState{}, fmt.Errorf("consume oauth state: purposes: %w", err)
	}
	sealer, err := s.currentSealer()
	if err != nil {
		return OAuthState{}, fmt.Errorf("consume oauth state: %w", err)
	}
	verifier, err := sealer.Decrypt(st.Verifier, oauthStateAAD(nonce))
	if err != nil {
		return OAuthState{}, fmt.Errorf("consume oauth state: %w", err)
	}
	st.Verifier = string(verifier)
	return st, nil
}
