-- How a function's invocations run: a fresh container each (isolated) or live instances reused (warm).
ALTER TABLE functions ADD COLUMN mode text NOT NULL DEFAULT 'isolated' CHECK (mode IN ('isolated', 'warm'));
