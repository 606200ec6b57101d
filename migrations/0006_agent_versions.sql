-- Issue 16: what each agent says of itself (GET /v1/info), read once per agent instance, so the
-- fleet can show it and mark agents older than the collector.
ALTER TABLE hosts ADD COLUMN agent_version TEXT;
ALTER TABLE hosts ADD COLUMN wire_version INTEGER;
