-- The replicated log of every actor (Durability::Replicated). Keyed by (namespace, actor id)
-- alone: no foreign key into the registry, so any actor type can be replicated.

-- One row per actor that was ever claimed; never deleted, so epochs never repeat.
CREATE TABLE burrow_log_actor (
    namespace  text        NOT NULL,
    actor_id   text        NOT NULL,
    -- Incremented by every claim (activation) and by deletion; appends are fenced on it.
    epoch      bigint      NOT NULL,
    -- The last entry's sequence number (0: none) and hash (32 zero bytes: none).
    head_seq   bigint      NOT NULL,
    head_hash  bytea       NOT NULL,
    -- The latest image (snapshot) entry at or before the head.
    image_seq  bigint,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (namespace, actor_id)
);

-- The entries: each a turn's patchset or a full image of the actor's database.
CREATE TABLE burrow_log_entry (
    namespace  text        NOT NULL,
    actor_id   text        NOT NULL,
    seq        bigint      NOT NULL,
    epoch      bigint      NOT NULL,
    hash       bytea       NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('patchset', 'image')),
    body       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (namespace, actor_id, seq)
);

CREATE INDEX burrow_log_entry_images ON burrow_log_entry (namespace, actor_id, seq)
    WHERE kind = 'image';
