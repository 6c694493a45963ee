-- When a claimed notification was handed to the provider. A batch claims
-- many rows at once but sends them a few at a time; a row whose lease ran
-- out before it was dispatched was never sent and goes back to scheduled,
-- so only rows actually in flight end "outcome unknown".
ALTER TABLE notifications ADD COLUMN dispatched_at INTEGER NOT NULL DEFAULT 0;
-- Rows sending while this runs may be in flight: keep them in doubt.
UPDATE notifications SET dispatched_at = updated_at WHERE status = 'sending';
