import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder the platform is installed in (a checkout, or an image's /app). */
const PLATFORM_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Error messages and build logs go to the function's owner: they name files as the archive does
 * (`lib/x.ts`, `node_modules/zod/…`), never the builder host's folders. Each known host folder is
 * replaced by what the owner knows it as; the platform's own installation reads `<platform>`.
 */
export function hideHostPaths(text: string, known: Array<[hostPath: string, shownAs: string]>): string {
  const all: Array<[string, string]> = [...known, [PLATFORM_ROOT, '<platform>']];
  // Longest first: a folder inside another is replaced before its parent.
  all.sort(([a], [b]) => b.length - a.length);
  let out = text;
  for (const [host, shownAs] of all) {
    const root = path.resolve(host).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // Only where a path starts (not `lib/wharf/x.ts` for a root `/wharf`), and only the whole folder name.
    const at = new RegExp(`(?<=^|[\\s"'\`(=:,\\[])${root}(/|(?![\\w.-]))`, 'g');
    out = out.replace(at, (_whole, slash: string) => (slash ? (shownAs ? `${shownAs}/` : '') : shownAs || '.'));
  }
  return out;
}
