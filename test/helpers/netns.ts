/**
 * A network namespace of the test's own, as a separate host would be: its own loopback, and a
 * veth pair to this machine on a /30 of 10.231.0.0/16 — the only address it can reach, and
 * the only one that reaches it. Deleting the namespace deletes the pair.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface NetNamespace {
  name: string;
  /** This machine's end of the pair: what a process inside reaches it at. */
  hostAddress: string;
  /** The namespace's end. */
  address: string;
  remove(): void;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export function createNetNamespace(): NetNamespace {
  const tag = randomBytes(3).toString('hex');
  const name = `wharf-${tag}`;
  // Interface names are at most 15 bytes.
  const [hostEnd, nsEnd] = [`wh${tag}h`, `wh${tag}n`];
  const subnet = parseInt(tag.slice(0, 4), 16) % 16_384;
  const base = `10.231.${Math.floor(subnet / 64)}.${(subnet % 64) * 4}`;
  const at = (offset: number) => base.replace(/\d+$/, (last) => String(Number(last) + offset));
  const [hostAddress, address] = [at(1), at(2)];
  ip('netns', 'add', name);
  try {
    ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd);
    ip('link', 'set', nsEnd, 'netns', name);
    ip('addr', 'add', `${hostAddress}/30`, 'dev', hostEnd);
    ip('link', 'set', hostEnd, 'up');
    ip('netns', 'exec', name, 'ip', 'addr', 'add', `${address}/30`, 'dev', nsEnd);
    ip('netns', 'exec', name, 'ip', 'link', 'set', nsEnd, 'up');
    ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    ip('netns', 'del', name);
    throw err;
  }
  return { name, hostAddress, address, remove: () => ip('netns', 'del', name) };
}
