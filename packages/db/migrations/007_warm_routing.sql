-- The runner an invocation was sent to because it had a warm instance free (NULL: the shared
-- queue). Its job waits in that runner's own queue, where the reconciler looks for it.
ALTER TABLE invocations ADD COLUMN routed_to text;
