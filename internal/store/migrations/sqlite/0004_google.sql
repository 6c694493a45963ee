-- Google Calendar sync: push channels and quota pauses.

-- Push notification channels (Google events.watch) of a connection: one,
-- or two while a renewal overlaps the channel it replaces. The channel
-- token is a secret Google echoes in every notification; only its
-- SHA-256 is kept, so the table cannot be used to forge notifications.
CREATE TABLE watch_channels (
    id            TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    resource_id   TEXT NOT NULL DEFAULT '',
    token_hash    TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX watch_channels_connection ON watch_channels (connection_id, expires_at);

-- A connection paused by the system (Google quota used up) comes back by
-- itself at paused_until; 0 for pauses a person must lift.
ALTER TABLE connections ADD COLUMN paused_until INTEGER NOT NULL DEFAULT 0;
CREATE INDEX connections_paused ON connections (state, paused_until);
