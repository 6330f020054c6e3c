import { CommanderError } from 'commander';
import { CliFailure, buildProgram, describeError } from './program.js';

const program = buildProgram({ stdout: (text) => process.stdout.write(text), stderr: process.stderr, env: process.env });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander has printed help or the usage error already.
    process.exitCode = err.exitCode;
  } else {
    if (!(err instanceof CliFailure) || err.message) process.stderr.write(`${err instanceof CliFailure ? `error: ${err.message}` : describeError(err, process.argv.includes('--json'))}\n`);
    process.exitCode = 1;
  }
}
