#!/usr/bin/env node
// helios render: one chunk of a Helios composition, for Helios
// infrastructure workers. See docs/HELIOS.md in the repository.
import { parse, usage, UsageError } from './lib/options.mjs';
import { CompositionError } from './lib/problems.mjs';
import { render } from './lib/render.mjs';

const [command, ...rest] = process.argv.slice(2);
const log = (msg) => process.stderr.write(`helios render: ${msg}\n`);
if (command !== 'render') {
  process.stderr.write(command === undefined || command === '--help' || command === '-h'
    ? usage : `helios: unknown command ${JSON.stringify(command)}; this helios only renders (helios render --help)\n`);
  process.exit(command === '--help' || command === '-h' ? 0 : 64);
}
let opts;
try {
  opts = parse(rest);
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  log(`${err.message} (helios render --help lists the options)`);
  process.exit(64);
}
if (opts.help) {
  process.stdout.write(usage);
  process.exit(0);
}
try {
  await render(opts, log);
} catch (err) {
  // 64 and 65 (sysexits.h EX_USAGE, EX_DATAERR) tell the worker that no
  // retry can help: the command line or the composition is wrong.
  log(`failed: ${err.message}`);
  process.exit(err instanceof CompositionError ? 65 : 1);
}
