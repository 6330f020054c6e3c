-- What each build did (archive checks, analysis, npm install, bundle, docker build output),
-- appended phase by phase so that a client can follow a build while it runs.
ALTER TABLE deployments ADD COLUMN build_log text NOT NULL DEFAULT '';
