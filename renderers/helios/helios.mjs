#!/usr/bin/env node
// helios render: one chunk of a Helios composition, for Helios
// infrastructure workers. See the repository README, "Rendering Helios
// compositions".
import { parse, usage, UsageError } from './lib/options.mjs';
import { render } from './lib/render.mjs';

const [command, ...rest] = process.argv.slice(2);
const log = (msg) => process.stderr.write(`helios render: ${msg}\n`);
if (command !== 'render') {
  process.stderr.write(command === undefined || command === '--help' || command === '-h'
    ? usage : `helios: unknown command ${JSON.stringify(command)}; this helios only renders (helios render --help)\n`);
  process.exit(command === '--help' || command === '-h' ? 0 : 2);
}
let opts;
try {
  opts = parse(rest);
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  log(`${err.message} (helios render --help lists the options)`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(usage);
  process.exit(0);
}
try {
  await render(opts, log);
} catch (err) {
  log(`failed: ${err.message}`);
  process.exit(1);
}
