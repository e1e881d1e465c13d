-- The embedded registry: the same tables as PostgreSQL's, with text ids and ms timestamps.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL CHECK (trim(name) <> ''),
    created_at_ms INTEGER NOT NULL,
    deleted_at_ms INTEGER
);

CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    sandbox_id TEXT NOT NULL,
    organization_id TEXT REFERENCES organizations (id),
    name TEXT,
    created_at_ms INTEGER NOT NULL,
    destroyed_at_ms INTEGER
);

CREATE UNIQUE INDEX instances_active_user_sandbox ON instances (user_id, sandbox_id)
    WHERE destroyed_at_ms IS NULL;
CREATE INDEX instances_by_sandbox ON instances (sandbox_id);
