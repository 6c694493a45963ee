-- Connections, the audit log, OAuth states and calendar sync tables.
-- Times are Unix milliseconds; 0 means "not set".

ALTER TABLE tenants ADD COLUMN audit_retention_ms BIGINT NOT NULL DEFAULT 31536000000; -- 365 days

-- Append-only: rows are never updated; purged at expires_at.
CREATE TABLE audit (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    actor       TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    target_kind TEXT NOT NULL DEFAULT '',
    target_id   TEXT NOT NULL DEFAULT '',
    subject_id  TEXT NOT NULL DEFAULT '',
    source_ip   TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX audit_subject ON audit (tenant_id, subject_id, created_at);
CREATE INDEX audit_expires ON audit (expires_at);

CREATE TABLE connections (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id),
    subject_id            TEXT NOT NULL,
    provider              TEXT NOT NULL,
    calendar_url          TEXT NOT NULL DEFAULT '',
    calendar_name         TEXT NOT NULL DEFAULT '',
    privacy               TEXT NOT NULL,
    direction             TEXT NOT NULL,
    credentials           TEXT NOT NULL DEFAULT '', -- sealed envelope; '' once deleted
    state                 TEXT NOT NULL,
    state_reason          TEXT NOT NULL DEFAULT '',
    sync_cursor           TEXT NOT NULL DEFAULT '',
    keep_copies_on_revoke BOOLEAN NOT NULL DEFAULT FALSE,
    erase_on_revoke       BOOLEAN NOT NULL DEFAULT FALSE,
    last_sync_at          BIGINT NOT NULL DEFAULT 0,
    last_error            TEXT NOT NULL DEFAULT '',
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    revoke_requested_at   BIGINT NOT NULL DEFAULT 0,
    revoked_at            BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX connections_subject ON connections (tenant_id, subject_id);
CREATE INDEX connections_revoking ON connections (state, revoke_requested_at);

-- Pending OAuth authorizations; single use, deleted when consumed or expired.
CREATE TABLE oauth_states (
    nonce          TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    subject_id     TEXT NOT NULL,
    verifier       TEXT NOT NULL, -- sealed PKCE verifier
    purposes       TEXT NOT NULL DEFAULT '[]', -- JSON array of consent purposes
    privacy        TEXT NOT NULL DEFAULT '',
    direction      TEXT NOT NULL DEFAULT '',
    policy_version TEXT NOT NULL DEFAULT '',
    source_ip      TEXT NOT NULL DEFAULT '',
    user_agent     TEXT NOT NULL DEFAULT '',
    redirect_after TEXT NOT NULL DEFAULT '',
    actor          TEXT NOT NULL DEFAULT '',
    expires_at     BIGINT NOT NULL
);
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);
CREATE INDEX oauth_states_subject ON oauth_states (tenant_id, subject_id);

-- Events imported from a connection, at its privacy level only.
CREATE TABLE external_events (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    uid           TEXT NOT NULL,
    recurrence_id TEXT NOT NULL DEFAULT '',
    start_at      BIGINT NOT NULL,
    end_at        BIGINT NOT NULL,
    all_day       BOOLEAN NOT NULL DEFAULT FALSE,
    time_zone     TEXT NOT NULL DEFAULT '',
    transparent   BOOLEAN NOT NULL DEFAULT FALSE,
    title         TEXT NOT NULL DEFAULT '',
    location      TEXT NOT NULL DEFAULT '',
    description   TEXT NOT NULL DEFAULT '',
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (connection_id, uid, recurrence_id)
);

-- Sync status: one row per (connection, item) that was synced.
CREATE TABLE links (
    connection_id  TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    item_kind      TEXT NOT NULL,
    item_id        TEXT NOT NULL,
    remote_id      TEXT NOT NULL DEFAULT '',
    remote_href    TEXT NOT NULL DEFAULT '',
    remote_etag    TEXT NOT NULL DEFAULT '',
    content_hash   TEXT NOT NULL DEFAULT '',
    synced_version BIGINT NOT NULL DEFAULT 0,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (connection_id, item_kind, item_id)
);
