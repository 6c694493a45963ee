-- Tenant offboarding, anonymous usage counters and the controller details
-- that consent receipts name. Times are Unix milliseconds; 0 means "not set".

-- One row per tenant that is being (or was) offboarded. Deleted when the
-- offboarding is cancelled; after the purge it stays as the non-personal
-- trace that the tenant existed and was erased.
CREATE TABLE tenant_offboarding (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants (id),
    requested_at BIGINT NOT NULL,
    purge_at     BIGINT NOT NULL,
    purged_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tenant_offboarding_due ON tenant_offboarding (purged_at, purge_at);

-- Keys of an offboarding tenant are suspended, not disabled, so that a
-- cancelled offboarding restores exactly the keys that worked before.
ALTER TABLE api_keys ADD COLUMN suspended_at BIGINT NOT NULL DEFAULT 0;

-- Anonymous daily counters of events (appointment created, rescheduled,
-- cancelled): tenant, day, kind and a dimension value, never a person.
-- They outlive purges, erasures and offboarding.
CREATE TABLE usage_stats (
    tenant_id TEXT NOT NULL,
    day       TEXT NOT NULL, -- UTC YYYY-MM-DD
    kind      TEXT NOT NULL,
    dimension TEXT NOT NULL DEFAULT '',
    count     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, kind, dimension)
);

-- The controller as a consent receipt names it (Kantara CR v1.1
-- piiControllers, policyUrl, jurisdiction). Contact data of the business,
-- erased with the tenant at the end of an offboarding.
CREATE TABLE tenant_controllers (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants (id),
    contact      TEXT NOT NULL DEFAULT '',
    address      TEXT NOT NULL DEFAULT '',
    email        TEXT NOT NULL DEFAULT '',
    phone        TEXT NOT NULL DEFAULT '',
    policy_url   TEXT NOT NULL DEFAULT '',
    jurisdiction TEXT NOT NULL DEFAULT '',
    updated_at   BIGINT NOT NULL
);
