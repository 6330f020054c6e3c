import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, apiEnvSchema, builderEnvSchema, formatEnvConfig, parseEnv, parseEnvConfig, runnerEnvSchema } from '../src/index.js';

test('defaults work on one machine', () => {
  const env = parseEnv(apiEnvSchema, {});
  assert.equal(env.WHARF_API_PORT, 8080);
  assert.equal(env.REDIS_URL, 'redis://127.0.0.1:6379');
  assert.equal(env.WHARF_FUNCTION_TIMEOUT_MS, 5000);
  assert.equal(env.WHARF_FUNCTION_MEMORY_MB, 128);
  assert.equal(env.WHARF_FUNCTION_CPUS, 0.5);
  assert.equal(env.WHARF_MAX_TIMEOUT_MS, 300_000);
  assert.equal(env.WHARF_MAX_MEMORY_MB, 2048);
  assert.equal(env.WHARF_DELETION_GRACE_DAYS, 7);
  const runner = parseEnv(runnerEnvSchema, {});
  assert.equal(runner.WHARF_MAX_MEMORY_MB, 2048);
  assert.equal(runner.WHARF_FUNCTION_PIDS, 64);
});

test('a default above its platform maximum is refused, naming the variable', () => {
  assert.throws(
    () => parseEnv(apiEnvSchema, { WHARF_FUNCTION_MEMORY_MB: '512', WHARF_MAX_MEMORY_MB: '256' }),
    (err: unknown) => err instanceof ConfigError && /WHARF_FUNCTION_MEMORY_MB="512": must not exceed WHARF_MAX_MEMORY_MB/.test(err.message),
  );
  assert.throws(() => parseEnv(apiEnvSchema, { WHARF_SIGNING_SECRET: 'short' }), /WHARF_SIGNING_SECRET/);
});

test('numbers are coerced from strings', () => {
  assert.equal(parseEnv(apiEnvSchema, { WHARF_API_PORT: '9090' }).WHARF_API_PORT, 9090);
});

test('a bad value names the variable and the value', () => {
  assert.throws(
    () => parseEnv(apiEnvSchema, { WHARF_API_PORT: 'eighty' }),
    (err: unknown) => err instanceof ConfigError && /WHARF_API_PORT="eighty"/.test(err.message),
  );
  assert.throws(
    () => parseEnv(runnerEnvSchema, { WHARF_MAX_MEMORY_MB: '4', WHARF_RUNNER_ID: 'has space' }),
    (err: unknown) => err instanceof ConfigError && /WHARF_MAX_MEMORY_MB/.test(err.message) && /WHARF_RUNNER_ID/.test(err.message),
  );
});

test("the builder's step time limits: defaults, and a bad one names the variable", () => {
  const builder = parseEnv(builderEnvSchema, {});
  assert.deepEqual([builder.WHARF_ANALYSIS_TIMEOUT_MS, builder.WHARF_INSTALL_TIMEOUT_MS, builder.WHARF_BUNDLE_TIMEOUT_MS, builder.WHARF_IMAGE_TIMEOUT_MS], [30_000, 120_000, 60_000, 300_000]);
  for (const [name, value] of [['WHARF_BUNDLE_TIMEOUT_MS', '0'], ['WHARF_IMAGE_TIMEOUT_MS', '-5'], ['WHARF_BUNDLE_TIMEOUT_MS', '1e999999'], ['WHARF_IMAGE_TIMEOUT_MS', 'soon']]) {
    assert.throws(() => parseEnv(builderEnvSchema, { [name]: value }), (err: unknown) => err instanceof ConfigError && err.message.includes(`${name}=${JSON.stringify(value)}`), `${name}=${value}`);
  }
});

test('.env.config round-trips values with newlines, quotes and = signs', () => {
  const vars = { A: 'plain', B: 'line one\nline two', C: 'x="y"', D: '' };
  assert.deepEqual(parseEnvConfig(formatEnvConfig(vars)), vars);
});
