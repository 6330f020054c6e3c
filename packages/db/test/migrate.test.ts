import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { createDatabase, dropDatabase } from '../../../test/helpers/stack.js';
import { MIGRATIONS_DIR, createPool, migrate, type Pool } from '../src/index.js';

const name = `wharf_test_migrate_${process.pid}`;
let pool: Pool;

before(async () => {
  pool = createPool(await createDatabase(name), pino({ level: 'silent' }));
});
after(async () => {
  await pool?.end();
  await dropDatabase(name);
});

test('applies every migration once, in order; running again, or twice at once, changes nothing', async () => {
  const files = (await fs.readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql')).sort();
  assert.deepEqual(await migrate(pool), files);
  const schema = async () =>
    (await pool.query(`SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2`)).rows;
  const before = await schema();
  assert.ok(before.some((c) => c.table_name === 'invocations'));
  const again = await Promise.all([migrate(pool), migrate(pool)]);
  assert.deepEqual(again, [[], []]);
  assert.deepEqual(await schema(), before);
  const ledger = await pool.query('SELECT name FROM wharf_migrations ORDER BY name');
  assert.deepEqual(ledger.rows.map((r) => r.name), files);
});
