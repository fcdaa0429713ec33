// Which Chromium renders, and how it is started.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const installDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

// The headless shell from @sparticuz/chromium, when `npm run install-browser`
// unpacked it here (the x86_64 Lambda image does); else a system Chromium.
export const headlessShellDir = path.join(installDir, '.browser');
const systemBrowsers = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function findBrowser(env = process.env) {
  // HELIOS_CHROMIUM picks one for a run by hand or a test; workers do not
  // pass their environment to job commands, and jobs may not set HELIOS_*.
  if (env.HELIOS_CHROMIUM) {
    if (!existsSync(env.HELIOS_CHROMIUM)) throw new Error(`HELIOS_CHROMIUM=${env.HELIOS_CHROMIUM} does not exist`);
    return { executablePath: env.HELIOS_CHROMIUM, headlessShell: env.HELIOS_CHROMIUM.startsWith(headlessShellDir + path.sep) };
  }
  const shell = path.join(headlessShellDir, 'chromium');
  if (existsSync(shell)) return { executablePath: shell, headlessShell: true };
  const system = systemBrowsers.find((p) => existsSync(p));
  if (system) return { executablePath: system, headlessShell: false };
  throw new Error(`no Chromium found: run \`npm run install-browser\` in ${installDir} (the headless shell) or install Debian's chromium package`);
}

// Flags for rendering the same pixels every time, in a container without a
// GPU, /dev/shm or a user namespace. Not --single-process: screenshots fail
// under it in Chromium 156.
const args = [
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--mute-audio',
  '--hide-scrollbars',
  '--font-render-hinting=none',
  '--force-color-profile=srgb',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  '--autoplay-policy=no-user-gesture-required',
  '--no-zygote',
];

export async function launch(browser) {
  const env = { ...process.env };
  if (browser.headlessShell) {
    // The shell's fonts and, on Amazon Linux, its libraries, as unpacked.
    env.FONTCONFIG_PATH = path.join(headlessShellDir, 'fonts');
    const libs = path.join(headlessShellDir, 'al2023', 'lib');
    if (existsSync(libs)) env.LD_LIBRARY_PATH = [libs, env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  }
  return chromium.launch({ executablePath: browser.executablePath, args, env, headless: true, timeout: 60_000 });
}
