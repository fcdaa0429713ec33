#!/usr/bin/env node
// Unpacks the headless shell of @sparticuz/chromium (x86_64 Linux) into
// .browser/ beside this file, once, at install or image build time: a job
// command may not write outside its work dir or run what it wrote there.
// --al2023 also unpacks the shared libraries Amazon Linux 2023 lacks.
import { chmodSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { headlessShellDir } from './lib/browser.mjs';

if (process.arch !== 'x64' || process.platform !== 'linux') {
  console.error(`install-browser: the npm headless shell is built for linux/x64, not ${process.platform}/${process.arch}; use a system chromium`);
  process.exit(1);
}
// Unpacked into a fresh dir and renamed into place whole: @sparticuz/chromium
// skips any file that exists, so a half-written one would stay.
const staging = `${headlessShellDir}.tmp`;
rmSync(staging, { recursive: true, force: true });
mkdirSync(staging, { recursive: true });
process.env.TMPDIR = staging; // where @sparticuz/chromium inflates to
const { inflate } = await import('@sparticuz/chromium');
const bin = path.join(path.dirname(new URL(import.meta.resolve('@sparticuz/chromium')).pathname), '..', 'bin');
const packs = ['chromium.br', 'fonts.tar.br', 'swiftshader.tar.br'];
if (process.argv.includes('--al2023')) packs.push('al2023.tar.br');
for (const p of packs) await inflate(path.join(bin, p));
// The pack's fonts.conf names /tmp/fonts; point it at the fonts where they
// now are (and the system's), with the cache in the command's HOME.
writeFileSync(path.join(staging, 'fonts', 'fonts.conf'), `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>${path.join(headlessShellDir, 'fonts', 'fonts')}</dir>
  <dir>/usr/share/fonts</dir>
  <dir>/usr/local/share/fonts</dir>
  <cachedir prefix="xdg">fontconfig</cachedir>
</fontconfig>
`);
// Readable and runnable by the function's user, whoever built the image.
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = statSync(p);
    chmodSync(p, st.isDirectory() || name === 'chromium' ? 0o755 : 0o644);
    if (st.isDirectory()) walk(p);
  }
};
walk(staging);
rmSync(headlessShellDir, { recursive: true, force: true });
renameSync(staging, headlessShellDir);
console.log(`headless shell unpacked into ${headlessShellDir}`);
