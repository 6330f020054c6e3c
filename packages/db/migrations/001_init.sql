CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- Only a hash of each token is stored: a leaked table does not leak sessions.
CREATE TABLE api_tokens (
  token_hash text PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE functions (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id        uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name           text NOT NULL,
  status         text NOT NULL DEFAULT 'init' CHECK (status IN ('init', 'building', 'active', 'failed')),
  active_version integer,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, name)
);

CREATE TABLE deployments (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  function_id    uuid NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
  version        integer NOT NULL,
  status         text NOT NULL DEFAULT 'building' CHECK (status IN ('building', 'active', 'failed')),
  image_tag      text,
  env            jsonb NOT NULL DEFAULT '{}',
  archive        bytea NOT NULL,
  archive_sha256 text NOT NULL,
  error_code     text,
  error_message  text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz,
  UNIQUE (function_id, version)
);

CREATE TABLE invocations (
  id            uuid PRIMARY KEY,
  function_id   uuid NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
  version       integer NOT NULL,
  status        text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out')),
  response      jsonb,
  error_code    text,
  error_message text,
  logs          jsonb NOT NULL DEFAULT '[]',
  runner_id     text,
  queued_at     timestamptz NOT NULL DEFAULT now(),
  started_at    timestamptz,
  finished_at   timestamptz,
  duration_ms   integer
);
CREATE INDEX invocations_function_queued ON invocations (function_id, queued_at DESC);
