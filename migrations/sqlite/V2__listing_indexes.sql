CREATE INDEX instances_active_by_user ON instances (user_id, created_at_ms, id)
    WHERE destroyed_at_ms IS NULL;
CREATE INDEX instances_active_by_org ON instances (organization_id, created_at_ms, id)
    WHERE destroyed_at_ms IS NULL;
