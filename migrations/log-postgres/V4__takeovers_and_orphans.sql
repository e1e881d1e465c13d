-- The node a claim took the actor from (NULL when it was free or already the claimer's): counted
-- as a takeover, and shown to operators as where the actor came from.
ALTER TABLE burrow_log_actor ADD COLUMN previous_node_id text;

-- Nodes look for due alarms whose actors no live node holds (orphaned by a dead node).
CREATE INDEX burrow_log_alarm_due ON burrow_log_alarm (due_ms);
