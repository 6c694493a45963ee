-- Retention policy per tenant (beside notification_retention_ms and
-- audit_retention_ms), the inactivity rule, and legal holds.
-- Times are Unix milliseconds; 0 means "not set".

-- How long an imported event is kept after it ended (default 30 days).
ALTER TABLE tenants ADD COLUMN imported_event_retention_ms INTEGER NOT NULL DEFAULT 2592000000;
-- How long a broken connection is kept before it is revoked (default 30 days).
ALTER TABLE tenants ADD COLUMN broken_connection_retention_ms INTEGER NOT NULL DEFAULT 2592000000;
-- A subject without activity for this long is erased or anonymised (default 1825 days).
ALTER TABLE tenants ADD COLUMN inactivity_ms INTEGER NOT NULL DEFAULT 157680000000;
ALTER TABLE tenants ADD COLUMN inactivity_action TEXT NOT NULL DEFAULT 'erase'; -- erase | anonymise

-- When the connection last became broken; 0 unless broken. Rows already
-- broken count from their last change.
ALTER TABLE connections ADD COLUMN broken_since INTEGER NOT NULL DEFAULT 0;
UPDATE connections SET broken_since = updated_at WHERE state = 'broken';

-- Set when the subject id was replaced by an opaque one.
ALTER TABLE subjects ADD COLUMN anonymised_at INTEGER NOT NULL DEFAULT 0;

-- A legal hold keeps a subject's records (or, with subject_id '', the whole
-- tenant's) from every purge and erasure until it is released or until_at.
CREATE TABLE legal_holds (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    subject_id  TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    until_at    INTEGER NOT NULL,
    ended_at    INTEGER NOT NULL DEFAULT 0,
    end_reason  TEXT NOT NULL DEFAULT '', -- released | expired
    ended_by    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX legal_holds_active ON legal_holds (tenant_id, subject_id) WHERE ended_at = 0;
