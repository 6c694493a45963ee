-- Cross-calendar blocking: a connection with blocking set gets a
-- detail-free "Busy" event for each busy period of the subject's other
-- connections (links of kind 'blocker').
ALTER TABLE connections ADD COLUMN blocking BOOLEAN NOT NULL DEFAULT FALSE;

-- A Google authorization in progress carries the setting to the callback.
ALTER TABLE oauth_states ADD COLUMN blocking BOOLEAN NOT NULL DEFAULT FALSE;
