-- What operators of a cluster list in one place, whichever node it happened on: alarms that were
-- dead-lettered and actor files that were quarantined. Kept when an actor is deleted (history).
CREATE TABLE burrow_log_incident (
    id         bigserial   PRIMARY KEY,
    namespace  text        NOT NULL,
    actor_id   text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('dead_alarm', 'quarantined')),
    -- dead_alarm: the alarm, when it was due, the attempts made.
    alarm_name text,
    due_ms     bigint,
    attempts   integer,
    -- dead_alarm: the last error; quarantined: the reason.
    detail     text        NOT NULL,
    -- quarantined: where the file went, on the node that moved it.
    moved_to   text,
    -- The node it happened on (NULL outside a cluster).
    node_id    text,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX burrow_log_incident_by_kind ON burrow_log_incident (kind, id);
