-- Cluster membership (`burrow serve --cluster`): one row per node id. Each start of a node takes
-- a new incarnation, which invalidates everything its previous incarnation held; its lease is
-- judged by PostgreSQL's clock only.
CREATE TABLE burrow_node (
    node_id          text        PRIMARY KEY,
    incarnation      bigint      NOT NULL,
    advertise_url    text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('alive', 'draining', 'left')),
    lease_expires_at timestamptz NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Which node (and which of its incarnations) holds the actor's activation, in cluster mode;
-- NULL when none does. A claim takes it over only when it is free, its holder's incarnation is
-- gone, or its holder's lease has run out, and raises the epoch as every claim does.
ALTER TABLE burrow_log_actor
    ADD COLUMN node_id          text,
    ADD COLUMN node_incarnation bigint;
