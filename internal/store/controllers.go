package store

// The controller details a consent receipt names, and single ledger
// entries for receipts.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Controller is how a tenant (the controller under GDPR) is named on
// consent receipts: contact person, postal address, e-mail, phone, the
// privacy policy's URL and the jurisdiction (an ISO 3166 country code).
// A tenant that set none has all fields empty.
type Controller struct {
	TenantID     string
	Contact      string
	Address      string
	Email        string
	Phone        string
	PolicyURL    string
	Jurisdiction string
	UpdatedAt    time.Time
}

// SetTenantController stores the tenant's controller details, replacing
// earlier ones. ErrNotFound for an unknown tenant.
func (s *Store) SetTenantController(ctx context.Context, c Controller) error {
	now := truncMS(time.Now())
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, s.rebind("SELECT 1 FROM tenants WHERE id = ?"), c.TenantID).Scan(&one); err != nil {
			return notFound(err)
		}
		_, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO tenant_controllers
			(tenant_id, contact, address, email, phone, policy_url, jurisdiction, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET contact = excluded.contact, address = excluded.address, email = excluded.email,
				phone = excluded.phone, policy_url = excluded.policy_url, jurisdiction = excluded.jurisdiction,
				updated_at = excluded.updated_at`),
			c.TenantID, c.Contact, c.Address, c.Email, c.Phone, c.PolicyURL, c.Jurisdiction, ms(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("set tenant controller: %w", err)
	}
	return nil
}

// GetTenantController returns the tenant's controller details; a tenant
// that set none gets empty fields.
func (s *Store) GetTenantController(ctx context.Context, tenantID string) (Controller, error) {
	c := Controller{TenantID: tenantID}
	var updated int64
	err := s.read.QueryRowContext(ctx, s.rebind(`SELECT contact, address, email, phone, policy_url, jurisdiction, updated_at
		FROM tenant_controllers WHERE tenant_id = ?`), tenantID).
		Scan(&c.Contact, &c.Address, &c.Email, &c.Phone, &c.PolicyURL, &c.Jurisdiction, &updated)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Controller{}, fmt.Errorf("get tenant controller: %w", err)
	}
	c.UpdatedAt = fromMS(updated)
	return c, nil
}

// GetConsent returns one entry of a subject's ledger by its id (the
// consent receipt's id). ErrNotFound if the subject has no such entry.
func (s *Store) GetConsent(ctx context.Context, tenantID, subjectID, id string) (Consent, error) {
	var c Consent
	var created int64
	err := s.read.QueryRowContext(ctx, s.rebind("SELECT "+consentCols+" FROM consents WHERE tenant_id = ? AND subject_id = ? AND id = ?"),
		tenantID, subjectID, id).Scan(&c.ID, &c.TenantID, &c.SubjectID, &c.Purpose, &c.Decision, &c.PolicyVersion,
		&c.Actor, &c.SourceIP, &c.UserAgent, &c.ConnectionID, &created)
	if err != nil {
		return Consent{}, fmt.Errorf("get consent: %w", notFound(err))
	}
	c.CreatedAt = fromMS(created)
	return c, nil
}
