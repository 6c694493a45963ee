package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Tenant defaults.
const (
	DefaultLocale                = "en"
	DefaultNotificationRetention = 30 * 24 * time.Hour
	DefaultAuditRetention        = 365 * 24 * time.Hour
)

// DefaultReminderRules are a new tenant's reminder rules: one reminder 24
// hours before the appointment.
func DefaultReminderRules() []time.Duration { return []time.Duration{24 * time.Hour} }

// tokenPrefix starts every API token: "tmd_<key id>_<64 hex chars>".
const tokenPrefix = "tmd_"

const tenantCols = "id, name, default_locale, notification_retention_ms, audit_retention_ms, reminder_rules, created_at"

func scanTenant(r rowScanner) (Tenant, error) {
	var t Tenant
	var retention, auditRetention, created int64
	var rules string
	if err := r.Scan(&t.ID, &t.Name, &t.DefaultLocale, &retention, &auditRetention, &rules, &created); err != nil {
		return Tenant{}, err
	}
	t.NotificationRetention = time.Duration(retention) * time.Millisecond
	t.AuditRetention = time.Duration(auditRetention) * time.Millisecond
	var err error
	if t.ReminderRules, err = parseMinutes(rules); err != nil {
		return Tenant{}, fmt.Errorf("tenant %s: reminder rules: %w", t.ID, err)
	}
	if t.ReminderRules == nil {
		t.ReminderRules = []time.Duration{}
	}
	t.CreatedAt = fromMS(created)
	return t, nil
}

// CreateTenant stores a tenant with default settings.
func (s *Store) CreateTenant(ctx context.Context, name string) (Tenant, error) {
	if strings.TrimSpace(name) == "" {
		return Tenant{}, errors.New("create tenant: empty name")
	}
	t := Tenant{
		ID:                    newID("tnt_"),
		Name:                  name,
		DefaultLocale:         DefaultLocale,
		NotificationRetention: DefaultNotificationRetention,
		AuditRetention:        DefaultAuditRetention,
		ReminderRules:         DefaultReminderRules(),
		CreatedAt:             truncMS(time.Now()),
	}
	rules, err := formatMinutes(t.ReminderRules)
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	_, err = s.db.ExecContext(ctx, s.rebind("INSERT INTO tenants ("+tenantCols+") VALUES (?, ?, ?, ?, ?, ?, ?)"),
		t.ID, t.Name, t.DefaultLocale, t.NotificationRetention.Milliseconds(), t.AuditRetention.Milliseconds(), rules, ms(t.CreatedAt))
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	return t, nil
}

// GetTenant returns ErrNotFound for an unknown id.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	t, err := scanTenant(s.read.QueryRowContext(ctx, s.rebind("SELECT "+tenantCols+" FROM tenants WHERE id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, fmt.Errorf("get tenant: %w", ErrNotFound)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant: %w", err)
	}
	return t, nil
}

// SetTenantReminderRules replaces a tenant's reminder rules: how long
// before an appointment's start its reminders are sent (whole minutes,
// positive; normalised to ascending order without duplicates). An empty
// list means no reminders. ErrNotFound for an unknown tenant.
func (s *Store) SetTenantReminderRules(ctx context.Context, tenantID string, rules []time.Duration) (Tenant, error) {
	norm, err := normaliseReminders(rules)
	if err != nil {
		return Tenant{}, fmt.Errorf("set reminder rules: %w", err)
	}
	if norm == nil {
		norm = []time.Duration{}
	}
	text, err := formatMinutes(norm)
	if err != nil {
		return Tenant{}, fmt.Errorf("set reminder rules: %w", err)
	}
	t, err := scanTenant(s.db.QueryRowContext(ctx, s.rebind("UPDATE tenants SET reminder_rules = ? WHERE id = ? RETURNING "+tenantCols),
		text, tenantID))
	if err != nil {
		return Tenant{}, fmt.Errorf("set reminder rules: %w", notFound(err))
	}
	return t, nil
}

// ListTenants lists all tenants, oldest first.
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) {
	out, err := queryAll(ctx, s.read, scanTenant, "SELECT "+tenantCols+" FROM tenants ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// CreateAPIKey makes a new key for a tenant and returns its plaintext token
// (shown once; only a hash is stored).
func (s *Store) CreateAPIKey(ctx context.Context, tenantID, role string) (token string, key APIKey, err error) {
	if role != RoleIngest && role != RoleAdmin {
		return "", APIKey{}, fmt.Errorf("create api key: unknown role %q", role)
	}
	if _, err := s.GetTenant(ctx, tenantID); err != nil {
		return "", APIKey{}, fmt.Errorf("create api key: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", APIKey{}, fmt.Errorf("create api key: %w", err)
	}
	secret := hex.EncodeToString(raw[:])
	key = APIKey{ID: newID("key_"), TenantID: tenantID, Role: role, CreatedAt: truncMS(time.Now())}
	_, err = s.db.ExecContext(ctx, s.rebind("INSERT INTO api_keys (id, tenant_id, role, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)"),
		key.ID, key.TenantID, key.Role, hashSecret(secret), ms(key.CreatedAt))
	if err != nil {
		return "", APIKey{}, fmt.Errorf("create api key: %w", err)
	}
	return tokenPrefix + key.ID + "_" + secret, key, nil
}

// DisableAPIKey stops a key from authenticating. ErrNotFound if the tenant
// has no such key.
func (s *Store) DisableAPIKey(ctx context.Context, tenantID, keyID string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, s.rebind("UPDATE api_keys SET disabled_at = ? WHERE tenant_id = ? AND id = ? AND disabled_at = 0"),
		ms(now), tenantID, keyID)
	if err != nil {
		return fmt.Errorf("disable api key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("disable api key: %w", ErrNotFound)
	}
	return nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// parseToken splits "tmd_<key id>_<secret>"; the key id itself contains an
// underscore, the hex secret does not.
func parseToken(token string) (keyID, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	keyID, secret = rest[:i], rest[i+1:]
	if !strings.HasPrefix(keyID, "key_") || len(secret) != 64 {
		return "", "", false
	}
	return keyID, secret, true
}

// LookupAPIKey authenticates a token (constant-time comparison of hashes).
// Unknown or wrong tokens give ErrNotFound. A key of an offboarding tenant
// is returned with Suspended set: the caller refuses it everything but
// the offboarding itself.
func (s *Store) LookupAPIKey(ctx context.Context, token string) (APIKey, error) {
	keyID, secret, ok := parseToken(token)
	if !ok {
		return APIKey{}, fmt.Errorf("lookup api key: %w", ErrNotFound)
	}
	var k APIKey
	var hash string
	var created, suspended int64
	err := s.read.QueryRowContext(ctx, s.rebind("SELECT id, tenant_id, role, secret_hash, created_at, suspended_at FROM api_keys WHERE id = ? AND disabled_at = 0"), keyID).
		Scan(&k.ID, &k.TenantID, &k.Role, &hash, &created, &suspended)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("lookup api key: %w", ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("lookup api key: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(hash)) != 1 {
		return APIKey{}, fmt.Errorf("lookup api key: %w", ErrNotFound)
	}
	k.CreatedAt = fromMS(created)
	k.Suspended = suspended != 0
	return k, nil
}
