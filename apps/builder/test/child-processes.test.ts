import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { createLogger } from '@wharf/shared';
import { ChildProcesses } from '../src/child-processes.js';
import { until } from '../../../test/helpers/poll.js';
import { isAlive } from '../../../test/helpers/proc.js';

const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-children-test-'));
after(() => fs.rm(scratch, { recursive: true, force: true }));
const logger = createLogger('test', 'silent');


test("a SIGKILLed parent's child dies at once; what the child started is ended by the parent's successor", async () => {
  const record = path.join(scratch, 'parent.children');
  const parent = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'fixtures', 'child-parent.ts'), record], { stdio: ['ignore', 'pipe', 'inherit'] });
  after(() => parent.kill('SIGKILL'));
  const pids = await new Promise<{ child: number; grandchild: number }>((resolve, reject) => {
    parent.stdout!.once('data', (line) => resolve(JSON.parse(String(line))));
    parent.once('exit', (code) => reject(new Error(`the parent exited with ${code}`)));
  });
  assert.ok(isAlive(pids.child) && isAlive(pids.grandchild));

  parent.kill('SIGKILL');
  assert.ok(await until(() => !isAlive(pids.child), 2000), 'the child died with its parent (parent-death signal)');
  // The grandchild is beyond the parent-death signal's reach: only the record finds it.
  assert.ok(isAlive(pids.grandchild), 'the grandchild outlived them both');
  const successor = await ChildProcesses.open(record, logger);
  assert.ok(await until(() => !isAlive(pids.grandchild), 2000), 'the successor ended it');
  await successor.killAll();
});

test('run: output collected; an abort kills the whole group; a successor finds nothing of a clean exit', async () => {
  const record = path.join(scratch, 'run.children');
  const children = await ChildProcesses.open(record, logger);
  const done = await children.run('sh', ['-c', 'echo out; echo err >&2; exit 3'], { cwd: scratch, env: process.env, maxBytes: 1024 });
  assert.deepEqual([done.code, done.stdout, done.stderr], [3, 'out\n', 'err\n']);

  const pidFile = path.join(scratch, 'grandchild.pid');
  const controller = new AbortController();
  const running = children.run('sh', ['-c', `sleep 300 & echo $! > ${pidFile}; wait`], { cwd: scratch, env: process.env, signal: controller.signal, maxBytes: 1024 });
  assert.ok(await until(() => written(pidFile), 2000));
  const grandchild = Number((await fs.readFile(pidFile, 'utf8')).trim());
  controller.abort();
  const aborted = await running;
  assert.equal(aborted.signal, 'SIGKILL');
  assert.ok(await until(() => !isAlive(grandchild), 2000), 'the grandchild went with the group');
  assert.equal((await fs.readFile(record, 'utf8')).trim().split('\n').length, 1, 'nothing left recorded but the scope line');
});

function written(file: string): boolean {
  return (statSync(file, { throwIfNoEntry: false })?.size ?? 0) > 0;
}

test("a record never kills a stranger: a reused pid, another boot's record, this process's own group", async () => {
  // A stranger leading its own group, as a process that got a recorded pid after the group died would.
  const stranger = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  after(() => stranger.kill('SIGKILL'));
  const record = path.join(scratch, 'stale.children');
  const scope = (await fs.readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim() + ' ' + (await fs.readlink('/proc/self/ns/pid'));
  const ownGroup = Number((await fs.readFile('/proc/self/stat', 'utf8')).split(') ')[1].split(' ')[2]);
  // The recorded leader started earlier than the stranger: same pid, another process.
  await fs.writeFile(record, `${scope}\n${stranger.pid} 1\n${ownGroup} 1\n${process.pid} 1\n`);
  await ChildProcesses.open(record, logger);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(isAlive(stranger.pid!), 'the stranger lives');
  // The same pid and start time, but recorded on another boot: ignored too.
  const ticks = Number((await fs.readFile(`/proc/${stranger.pid}/stat`, 'utf8')).split(') ')[1].split(' ')[19]);
  await fs.writeFile(record, `another-boot ${scope.split(' ')[1]}\n${stranger.pid} ${ticks}\n`);
  await ChildProcesses.open(record, logger);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(isAlive(stranger.pid!), 'a record of another boot is not acted on');
  // And with this boot's scope it is ours: ended.
  await fs.writeFile(record, `${scope}\n${stranger.pid} ${ticks}\n`);
  const children = await ChildProcesses.open(record, logger);
  assert.ok(await until(() => !isAlive(stranger.pid!), 2000), 'a group recorded in this boot, with its leader, is ended');
  await children.killAll();
  assert.equal((await fs.readFile(record, 'utf8')).trim(), scope, 'after killAll, nothing recorded');
});
