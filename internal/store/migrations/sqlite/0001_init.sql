-- Times are Unix milliseconds; 0 means "not set".

CREATE TABLE tenants (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    default_locale            TEXT NOT NULL DEFAULT 'en',
    notification_retention_ms INTEGER NOT NULL,
    created_at                INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL, -- hex sha256 of the secret part of the token
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE subjects (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    id            TEXT NOT NULL,
    restricted    BOOLEAN NOT NULL DEFAULT FALSE,
    sms_opted_out BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Append-only: rows are never updated.
CREATE TABLE consents (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    subject_id     TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    decision       TEXT NOT NULL,
    policy_version TEXT NOT NULL DEFAULT '',
    actor          TEXT NOT NULL DEFAULT '',
    source_ip      TEXT NOT NULL DEFAULT '',
    user_agent     TEXT NOT NULL DEFAULT '',
    connection_id  TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL
);
CREATE INDEX consents_subject ON consents (tenant_id, subject_id, purpose, created_at);

CREATE TABLE notifications (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    subject_id           TEXT NOT NULL DEFAULT '',
    idempotency_key      TEXT NOT NULL,
    request_hash         TEXT NOT NULL,
    purpose              TEXT NOT NULL,
    channel              TEXT NOT NULL,
    recipient            TEXT NOT NULL,
    locale               TEXT NOT NULL,
    template             TEXT NOT NULL,
    data                 TEXT NOT NULL DEFAULT '',
    status               TEXT NOT NULL,
    status_reason        TEXT NOT NULL DEFAULT '',
    send_at              INTEGER NOT NULL,
    attempts             TEXT NOT NULL DEFAULT '[]', -- JSON array of store.Attempt
    provider_id          TEXT NOT NULL DEFAULT '',
    claimed_until        INTEGER NOT NULL DEFAULT 0,
    needs_reconciliation BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           INTEGER NOT NULL,
    created_day          TEXT NOT NULL, -- UTC YYYY-MM-DD of created_at, for delivery_stats
    updated_at           INTEGER NOT NULL,
    final_at             INTEGER NOT NULL DEFAULT 0,
    expires_at           INTEGER NOT NULL
);
CREATE UNIQUE INDEX notifications_idempotency ON notifications (tenant_id, idempotency_key);
-- Partial indexes: a row is in at most one of them, so a status change
-- touches fewer index pages on the hot path.
CREATE INDEX notifications_due ON notifications (send_at, id) WHERE status = 'scheduled';
CREATE INDEX notifications_stale ON notifications (claimed_until, id) WHERE status = 'sending';
-- id makes the purge order total, so that the count and the delete of one
-- batch pick the same rows.
CREATE INDEX notifications_expires ON notifications (expires_at, id);
CREATE INDEX notifications_provider ON notifications (provider_id) WHERE provider_id <> '';
CREATE INDEX notifications_subject ON notifications (tenant_id, subject_id);

-- Anonymous daily counters that outlive purges.
CREATE TABLE delivery_stats (
    tenant_id TEXT NOT NULL,
    day       TEXT NOT NULL,
    channel   TEXT NOT NULL,
    template  TEXT NOT NULL,
    status    TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, channel, template, status)
);
