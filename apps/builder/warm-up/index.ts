// Type-checked by each analysis process as it starts (see src/analysis-pool.ts): parses TypeScript's libraries, Node's types and the SDK once.
import fs from 'node:fs';
import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';

@cloudFunction
export class Warm extends CloudFunction {
  handle() {
    return CloudResponse.json(fs.existsSync('/'));
  }
}
