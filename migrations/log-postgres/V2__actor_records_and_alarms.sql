-- What the runtime's local catalog holds about a replicated actor, kept beside its log so that a
-- lost data directory loses neither the actor's name nor its alarms.

ALTER TABLE burrow_log_actor
    ADD COLUMN name       text,
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT clock_timestamp();

-- The actor's alarms, written in the same transaction as the entry that set or deleted them.
CREATE TABLE burrow_log_alarm (
    namespace text   NOT NULL,
    actor_id  text   NOT NULL,
    name      text   NOT NULL,
    due_ms    bigint NOT NULL,
    PRIMARY KEY (namespace, actor_id, name)
);
