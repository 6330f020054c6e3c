-- What a deployment runs: asked for at deploy (NULL: let the builder choose from the archive),
-- then what the builder found. `handler` is what the runtime starts (class, bootstrap, run).
ALTER TABLE deployments ADD COLUMN runtime text CHECK (runtime IN ('node', 'custom', 'isolated-files'));
ALTER TABLE deployments ADD COLUMN handler text;

-- Warm instances are the default from now on; functions created before keep the mode they had.
ALTER TABLE functions ALTER COLUMN mode SET DEFAULT 'warm';
ALTER TABLE functions ADD COLUMN concurrency integer NOT NULL DEFAULT 1 CHECK (concurrency >= 1);
ALTER TABLE functions ADD COLUMN min_instances integer NOT NULL DEFAULT 0 CHECK (min_instances >= 0);
