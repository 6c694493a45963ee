-- Appointments, reminder rules, notifications linked to appointments and
-- the sync state of connections.
-- Times are Unix milliseconds; 0 means "not set".

-- JSON array of minutes before an appointment's start; 1440 = 24 hours.
ALTER TABLE tenants ADD COLUMN reminder_rules TEXT NOT NULL DEFAULT '[1440]';

ALTER TABLE notifications ADD COLUMN appointment_id TEXT NOT NULL DEFAULT '';
CREATE INDEX notifications_appointment ON notifications (tenant_id, appointment_id) WHERE appointment_id <> '';

-- The booking system's appointments (single writer: the booking system).
CREATE TABLE appointments (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    id          TEXT NOT NULL,
    start_at    BIGINT NOT NULL,
    end_at      BIGINT NOT NULL,
    time_zone   TEXT NOT NULL DEFAULT '',
    all_day     BOOLEAN NOT NULL DEFAULT FALSE,
    start_date  TEXT NOT NULL DEFAULT '', -- YYYY-MM-DD, all-day only
    end_date    TEXT NOT NULL DEFAULT '', -- exclusive
    title       TEXT NOT NULL DEFAULT '',
    location    TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    reminders   TEXT NOT NULL DEFAULT '', -- JSON array of minutes; '' = the tenant's rules
    version     BIGINT NOT NULL,
    sync_error  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE appointment_subjects (
    tenant_id      TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, appointment_id, subject_id),
    FOREIGN KEY (tenant_id, appointment_id) REFERENCES appointments (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX appointment_subjects_subject ON appointment_subjects (tenant_id, subject_id);

-- Sync state of a connection (last_sync_at and last_error exist since 0002;
-- last_sync_at is the time of the last successful run).
ALTER TABLE connections ADD COLUMN last_full_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN attention TEXT NOT NULL DEFAULT '';
ALTER TABLE connections ADD COLUMN last_run TEXT NOT NULL DEFAULT ''; -- JSON of the last run, '' before the first
CREATE INDEX connections_due ON connections (state, last_sync_at, id);

-- Busy time is read by window.
CREATE INDEX external_events_window ON external_events (connection_id, start_at);
