package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/termind/termind/internal/store"
)

// Audit actions written by the API. They are part of what operators search
// for: once shipped, they do not change.
const (
	auditConnectionCreate    = "connection.create"
	auditConnectionAuthorize = "connection.authorize"
	auditAuthorizeFailed     = "connection.authorize_failed"
	auditSubjectExport       = "subject.export"
	auditSubjectRestrict     = "subject.restrict"
	auditSubjectUnrestrict   = "subject.unrestrict"
	// Consent decisions are audited as "consent.<decision>", e.g.
	// "consent.granted"; revocation and erasure are audited by the store in
	// the same transaction as the change.
	auditConsentPrefix = "consent."
)

// Audit target kinds.
const (
	targetSubject    = "subject"
	targetConnection = "connection"
)

// actorOf names the API key that made a change, as the ledger and the audit
// log record it.
func actorOf(key store.APIKey) string { return "api_key:" + key.ID }

// sourceIP is the address an audit entry records: the one the platform
// reports about the person's own request where the body carries it, else
// the TCP peer. Forwarded headers are not read: any client can set them.
func sourceIP(reported string, r *http.Request) string {
	if reported != "" {
		return reported
	}
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

// audit appends one entry to the tenant's audit log. Entries hold ids,
// actions and short non-personal details only.
func (s *server) audit(ctx context.Context, e store.AuditEntry) error {
	if _, err := s.store.Audit(ctx, e); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}
