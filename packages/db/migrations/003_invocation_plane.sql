-- The invocation record is the source of truth (Redis only carries the work): it keeps the
-- request, so that a job Redis lost can be enqueued again, and counts the runs it took.
ALTER TABLE invocations DROP CONSTRAINT invocations_status_check;
ALTER TABLE invocations ADD CONSTRAINT invocations_status_check
  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled'));
ALTER TABLE invocations
  ADD COLUMN request        jsonb,
  ADD COLUMN attempts       integer NOT NULL DEFAULT 0,
  ADD COLUMN callback_url   text,
  ADD COLUMN logs_truncated boolean NOT NULL DEFAULT false,
  ADD COLUMN updated_at     timestamptz NOT NULL DEFAULT now();
CREATE INDEX invocations_in_flight ON invocations (updated_at) WHERE status IN ('queued', 'running');
CREATE INDEX invocations_finished ON invocations (finished_at);
CREATE INDEX invocations_function_status ON invocations (function_id, status, queued_at DESC);

-- The same Idempotency-Key for the same function within its window returns the first invocation.
CREATE TABLE invocation_idempotency_keys (
  function_id   uuid NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
  key           text NOT NULL,
  invocation_id uuid NOT NULL REFERENCES invocations(id) ON DELETE CASCADE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (function_id, key)
);

-- A public function is reachable at /fn/<name> without credentials, so its name must be unique
-- among public functions of every user.
ALTER TABLE functions ADD COLUMN public boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX functions_public_name ON functions (name) WHERE public AND status <> 'deleted';
