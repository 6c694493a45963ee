-- Operator pages: sign-in sessions, and a record of retention purge runs.
-- Times are Unix milliseconds; 0 means "not set".

-- A signed-in admin page session. Only a hash of the cookie's session id is
-- kept, so a copy of this table signs nobody in. A session ends at
-- expires_at, on sign-out, or as soon as its API key is disabled.
CREATE TABLE admin_sessions (
    id_hash    TEXT PRIMARY KEY, -- hex sha256 of the session id
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    key_id     TEXT NOT NULL REFERENCES api_keys (id),
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

-- One row per finished retention purge (all tenants): what it deleted.
CREATE TABLE purge_runs (
    id            TEXT PRIMARY KEY,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL,
    notifications INTEGER NOT NULL,
    audit         INTEGER NOT NULL,
    oauth_states  INTEGER NOT NULL,
    batches       INTEGER NOT NULL
);
CREATE INDEX purge_runs_finished ON purge_runs (finished_at);

-- The notifications page lists a tenant's newest first.
CREATE INDEX notifications_tenant_created ON notifications (tenant_id, created_at);
