-- The registry: organisations and the instances they and users own.
CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (btrim(name) <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE instances (
    id uuid PRIMARY KEY,
    user_id text NOT NULL,
    sandbox_id text NOT NULL,
    organization_id uuid REFERENCES organizations (id),
    name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz
);

-- One active row per user and sandbox.
CREATE UNIQUE INDEX instances_active_user_sandbox ON instances (user_id, sandbox_id)
    WHERE destroyed_at IS NULL;
CREATE INDEX instances_by_sandbox ON instances (sandbox_id);
