-- Listing a user's or an organisation's active instances, oldest first.
CREATE INDEX instances_active_by_user ON instances (user_id, created_at, id)
    WHERE destroyed_at IS NULL;
CREATE INDEX instances_active_by_org ON instances (organization_id, created_at, id)
    WHERE destroyed_at IS NULL;
