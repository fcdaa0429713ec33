// Which Chromium renders, and how it is started.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const installDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

// The headless shell from @sparticuz/chromium, when `npm run install-browser`
// unpacked it here (the x86_64 Lambda image does); else Debian's headless
// shell (package chromium-headless-shell, amd64 and arm64); else a full
// Chromium. Only a headless shell lets the renderer produce each frame
// itself (begin-frame control), which is faster and needs no vsync.
export const headlessShellDir = path.join(installDir, '.browser');
const systemShells = ['/usr/bin/chromium-headless-shell', '/usr/lib/chromium/chromium-headless-shell'];
const systemBrowsers = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function findBrowser(env = process.env) {
  // HELIOS_CHROMIUM picks one for a run by hand or a test; workers do not
  // pass their environment to job commands, and jobs may not set HELIOS_*.
  if (env.HELIOS_CHROMIUM) {
    if (!existsSync(env.HELIOS_CHROMIUM)) throw new Error(`HELIOS_CHROMIUM=${env.HELIOS_CHROMIUM} does not exist`);
    return described(env.HELIOS_CHROMIUM);
  }
  const found = [path.join(headlessShellDir, 'chromium'), ...systemShells, ...systemBrowsers].find((p) => existsSync(p));
  if (found) return described(found);
  throw new Error(`no Chromium found: run \`npm run install-browser\` in ${installDir} (the headless shell), or install Debian's chromium-headless-shell or chromium package`);
}

// described says how a browser binary is driven: the npm shell needs its
// own fonts and libraries; a headless shell takes begin-frame control.
function described(executablePath) {
  const npmShell = executablePath.startsWith(headlessShellDir + path.sep);
  return { executablePath, npmShell, frameControl: npmShell || /headless[-_]shell/.test(path.basename(executablePath)) };
}

// Flags for rendering the same pixels every time, in a container without a
// GPU, /dev/shm or a user namespace; none comes from the composition. The
// compositor runs every stage (raster included) before it draws, animates
// nothing on its own thread, decodes images before drawing them, and
// rasters whole tiles: a frame's pixels must not depend on how busy the
// machine was or on which frames came before (partial raster keeps the
// edges of older frames' tiles). A headless shell also takes
// --enable-begin-frame-control: no frame is drawn unless the renderer asks.
// Not --single-process: screenshots fail under it in Chromium 156.
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
  '--disable-extensions',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--run-all-compositor-stages-before-draw',
  '--disable-threaded-animation',
  '--disable-threaded-scrolling',
  '--disable-checker-imaging',
  '--disable-image-animation-resync',
  '--disable-new-content-rendering-timeout',
  '--disable-partial-raster',
];

// launchArgs are the flags a browser is started with.
export function launchArgs(browser) {
  return browser.frameControl ? [...args, '--enable-begin-frame-control'] : [...args];
}

export async function launch(browser) {
  const env = { ...process.env };
  if (browser.npmShell) {
    // The shell's fonts and, on Amazon Linux, its libraries, as unpacked.
    env.FONTCONFIG_PATH = path.join(headlessShellDir, 'fonts');
    const libs = path.join(headlessShellDir, 'al2023', 'lib');
    if (existsSync(libs)) env.LD_LIBRARY_PATH = [libs, env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  }
  return chromium.launch({ executablePath: browser.executablePath, args: launchArgs(browser), env, headless: true, timeout: 60_000 });
}
