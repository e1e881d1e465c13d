-- Sandbox machines of a cluster: which node hosts each, where it is reached, what it is labelled
-- with (for metadata recovery from any node), and what is wanted of it when its node could not
-- be asked (carried out when the node rejoins).
CREATE TABLE burrow_machine (
    machine_id    text        PRIMARY KEY,
    node_id       text        NOT NULL,
    volume_id     text        NOT NULL,
    user_id       text        NOT NULL,
    sandbox_id    text        NOT NULL,
    -- The provider's labels and record, as it serialises them (opaque here).
    record        text        NOT NULL,
    state         text        NOT NULL,
    address       text,
    created_at_ms bigint      NOT NULL,
    wanted        text        NOT NULL DEFAULT 'kept' CHECK (wanted IN ('kept', 'stopped', 'deleted')),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX burrow_machine_by_labels ON burrow_machine (user_id, sandbox_id);
CREATE INDEX burrow_machine_by_node ON burrow_machine (node_id);
