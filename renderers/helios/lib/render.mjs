// One chunk: start the browser, load the composition, step through the
// frames, encode.
import path from 'node:path';
import { audioGraph } from './audio.mjs';
import { findBrowser, launch } from './browser.mjs';
import { Encoder } from './encode.mjs';
import { capture, clockScript, localFile, localOrigin, media, ready, seek, serveWorkDir } from './page.mjs';
import { frameMs } from './options.mjs';

export async function render(opts, log) {
  const t0 = Date.now();
  const browser = await launch(findBrowser());
  let encoder;
  // Stopped by hand (or by a worker's SIGTERM): no partial file, no browser left.
  const stop = async (signal) => {
    if (encoder) await encoder.abort();
    await browser.close().catch(() => {});
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', stop).once('SIGTERM', stop);
  try {
    const context = await browser.newContext({ viewport: { width: opts.width, height: opts.height }, deviceScaleFactor: 1 });
    const url = opts.composition.url ?? `${localOrigin}/${opts.composition.file.split(path.sep).map(encodeURIComponent).join('/')}`;
    if (opts.composition.file) await serveWorkDir(context, process.cwd());
    const page = await context.newPage();
    const errors = pageErrors(page, url);
    await page.addInitScript(clockScript(frameMs(opts.fps, opts.startFrame)));
    const response = await page.goto(url, { waitUntil: 'load', timeout: opts.timeoutMs }).catch((err) => {
      errors.throwIfAny();
      throw new Error(`loading ${url}: ${err.message.split('\n')[0]}`);
    });
    if (response && !response.ok()) throw new Error(`loading ${url}: HTTP ${response.status()}`);
    const info = await bounded(ready(page, opts, errors), 2 * opts.timeoutMs + 5000,
      `the composition did not become ready within ${opts.timeoutMs / 1000}s (the page did not answer: a script stuck in a loop?)`);
    const total = Math.round(info.duration * info.fps);
    check(opts, info, total);
    const frameCount = opts.frameCount ?? total - opts.startFrame;
    const tracks = await bounded(media(page, opts.timeoutMs), opts.timeoutMs + 5000, `the composition's media did not load within ${opts.timeoutMs / 1000}s`);
    for (const t of tracks) {
      if (t.error) throw new Error(`the composition's media ${t.src} cannot be played: ${t.error}`);
      if (t.fadeEasing && t.fadeEasing !== 'linear') {
        throw new Error(`media ${t.src}: data-helios-fade-easing="${t.fadeEasing}" is not supported; the mix fades linearly`);
      }
    }
    const root = process.cwd();
    const sources = await Promise.all(tracks.map((t) => source(root, t.src)));
    const audio = audioGraph(tracks.map((t, i) => ({ ...t, source: sources[i] })), {
      fps: opts.fps, startFrame: opts.startFrame, frameCount, totalFrames: total,
    });
    const cdp = await context.newCDPSession(page);
    const tReady = Date.now();
    encoder = new Encoder(opts, audio);
    for (let f = opts.startFrame; f < opts.startFrame + frameCount; f++) {
      // Bounded here too: a page stuck in a loop never answers the browser.
      await bounded(seek(page, opts.fps, f, opts.timeoutMs, opts.mode === 'canvas'), opts.timeoutMs + 5000,
        `frame ${f} did not settle within ${opts.timeoutMs / 1000}s (the page did not answer: a script stuck in a loop?)`);
      errors.throwIfAny();
      await encoder.write(await bounded(capture(page, opts, cdp), opts.timeoutMs, `capturing frame ${f} took more than ${opts.timeoutMs / 1000}s`));
    }
    errors.throwIfAny();
    await encoder.finish();
    encoder = null;
    const tDone = Date.now();
    log(`rendered frames [${opts.startFrame}, ${opts.startFrame + frameCount}) of ${total} to ${opts.output}: browser ready in ${tReady - t0} ms, ${frameCount} frames in ${tDone - tReady} ms (${(frameCount * 1000 / Math.max(1, tDone - tReady)).toFixed(1)} fps), ${tracks.length} audio track(s)`);
  } finally {
    process.off('SIGINT', stop).off('SIGTERM', stop);
    if (encoder) await encoder.abort();
    await browser.close().catch(() => {});
  }
}

// bounded rejects with message if promise has not settled within ms.
function bounded(promise, ms, message) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); })])
    .finally(() => clearTimeout(timer));
}

function check(opts, info, total) {
  const fps = opts.fps.num / opts.fps.den;
  if (!(info.fps > 0) || !(info.duration > 0)) throw new Error(`window.helios reports fps ${info.fps} and duration ${info.duration}; both must be positive`);
  if (Math.abs(info.fps - fps) > 1e-3) throw new Error(`--fps ${opts.fps} differs from the composition's ${info.fps} fps`);
  const end = opts.startFrame + (opts.frameCount ?? 0);
  if (opts.startFrame >= total || end > total) {
    throw new Error(`frames [${opts.startFrame}, ${opts.frameCount ? end : '…'}) pass the composition's end: it has ${total} frames (${info.duration}s at ${info.fps} fps)`);
  }
}

// source is where ffmpeg reads a track: a file of the work dir for the
// local origin (by the same rules that serve it to the page), else an https
// URL. Nothing else reaches ffmpeg, whose inputs can name devices and
// protocols.
async function source(root, src) {
  const url = new URL(src);
  if (src.startsWith(localOrigin + '/')) {
    const file = await localFile(root, url.pathname);
    if (!file) throw new Error(`media ${url.pathname} is not a file of the assets`);
    return file;
  }
  if (url.protocol !== 'https:') throw new Error(`media ${src}: only files of the assets or https:// URLs can be mixed`);
  return url.href;
}

// pageErrors collects what the page throws and which of its own files
// failed to load, to fail the chunk with the page's words.
function pageErrors(page, url) {
  const seen = [];
  let fail;
  const failed = new Promise((_, reject) => { fail = reject; });
  failed.catch(() => {});
  const add = (msg) => {
    seen.push(msg);
    fail(new Error(msg));
  };
  page.on('pageerror', (err) => add(`the composition threw: ${err.stack || err.message}`));
  page.on('crash', () => add('the page crashed (out of memory?)'));
  page.on('response', (res) => {
    if (res.status() >= 400 && (res.url().startsWith(localOrigin) || res.url() === url)) {
      add(`loading ${res.url()} failed: HTTP ${res.status()}${res.url().startsWith(localOrigin) ? ' (is it in the asset bundle?)' : ''}`);
    }
  });
  page.on('requestfailed', (req) => {
    if ((req.url().startsWith(localOrigin) || req.url() === url) && !seen.length) add(`loading ${req.url()} failed: ${req.failure()?.errorText}`);
  });
  return {
    failed, // rejects at the first error
    throwIfAny() {
      if (seen.length) throw new Error(seen.slice(0, 3).join('\n'));
    },
  };
}
