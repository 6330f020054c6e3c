import path from 'node:path';
import { packFunction } from '@wharf/client';

const ROOT = path.resolve(import.meta.dirname, '../..');

export const fixtureDir = (name: string) => path.join(ROOT, 'test', 'fixtures', name);
export const exampleDir = (name: string) => path.join(ROOT, 'examples', name);

export const packFixture = (name: string) => packFunction(fixtureDir(name));
export const packExample = (name: string) => packFunction(exampleDir(name));
