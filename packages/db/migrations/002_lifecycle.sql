-- Deletion is two-step: pending (cancellable, nothing removed), then deleted (a tombstone row;
-- its deployments, archives, invocations and keys are gone, and its name is free again).
ALTER TABLE functions DROP CONSTRAINT functions_status_check;
ALTER TABLE functions ADD CONSTRAINT functions_status_check
  CHECK (status IN ('init', 'building', 'active', 'failed', 'pending_deletion', 'deleted'));
ALTER TABLE functions DROP CONSTRAINT functions_user_id_name_key;
CREATE UNIQUE INDEX functions_user_name_live ON functions (user_id, name) WHERE status <> 'deleted';

-- Per-function settings; NULL means the platform default at invocation time.
ALTER TABLE functions
  ADD COLUMN skip_signing boolean NOT NULL DEFAULT false,
  ADD COLUMN timeout_ms   integer CHECK (timeout_ms > 0),
  ADD COLUMN memory_mb    integer CHECK (memory_mb > 0),
  ADD COLUMN cpus         real CHECK (cpus > 0),
  ADD COLUMN env          jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN deleted_at   timestamptz;

-- Which build serves is the function's active_version; a deployment only says whether it built.
ALTER TABLE deployments DROP CONSTRAINT deployments_status_check;
UPDATE deployments SET status = 'succeeded' WHERE status = 'active';
ALTER TABLE deployments ADD CONSTRAINT deployments_status_check CHECK (status IN ('building', 'succeeded', 'failed'));
CREATE INDEX deployments_function_version ON deployments (function_id, version DESC);

CREATE TABLE function_deletions (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  function_id   uuid NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
  reason        text NOT NULL,
  deletion_date timestamptz NOT NULL,
  scheduled_at  timestamptz NOT NULL DEFAULT now(),
  state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'cancelled', 'completed')),
  finished_at   timestamptz
);
CREATE UNIQUE INDEX function_deletions_one_pending ON function_deletions (function_id) WHERE state = 'pending';
CREATE INDEX function_deletions_due ON function_deletions (deletion_date) WHERE state = 'pending';

-- Only a hash of each key's secret is stored; the secret itself is derived from the platform's
-- signing secret when a signature has to be checked (HMAC needs the key on both sides).
CREATE TABLE function_api_keys (
  id           text PRIMARY KEY,
  function_id  uuid NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
  secret_hash  text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz
);
CREATE INDEX function_api_keys_function ON function_api_keys (function_id);

-- Platform-wide secrets generated at first start (used when no WHARF_SIGNING_SECRET is configured).
CREATE TABLE platform_secrets (
  name       text PRIMARY KEY,
  value      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
