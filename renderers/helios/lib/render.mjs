// One chunk: start the browser, load the composition, step through the
// frames, encode.
import path from 'node:path';
import { audioGraph } from './audio.mjs';
import { findBrowser, launch } from './browser.mjs';
import { Encoder } from './encode.mjs';
import { capture, clockScript, localOrigin, media, ready, seek, serveWorkDir } from './page.mjs';
import { frameMs } from './options.mjs';

export async function render(opts, log) {
  const t0 = Date.now();
  const browser = await launch(findBrowser());
  let encoder;
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
    const info = await ready(page, opts, errors);
    const total = Math.round(info.duration * info.fps);
    check(opts, info, total);
    const frameCount = opts.frameCount ?? total - opts.startFrame;
    const tracks = await media(page, opts.timeoutMs);
    for (const t of tracks) {
      if (t.error) throw new Error(`the composition's media ${t.src} cannot be played: ${t.error}`);
      if (t.fadeEasing && t.fadeEasing !== 'linear') {
        throw new Error(`media ${t.src}: data-helios-fade-easing="${t.fadeEasing}" is not supported; the mix fades linearly`);
      }
    }
    const audio = audioGraph(tracks.map((t) => ({ ...t, source: source(t.src) })), {
      fps: opts.fps, startFrame: opts.startFrame, frameCount, totalFrames: total,
    });
    const cdp = await context.newCDPSession(page);
    const tReady = Date.now();
    encoder = new Encoder(opts, audio);
    for (let f = opts.startFrame; f < opts.startFrame + frameCount; f++) {
      await seek(page, opts.fps, f, opts.timeoutMs, opts.mode === 'canvas');
      errors.throwIfAny();
      await encoder.write(await capture(page, opts, cdp));
    }
    await encoder.finish();
    encoder = null;
    const tDone = Date.now();
    log(`rendered frames [${opts.startFrame}, ${opts.startFrame + frameCount}) of ${total} to ${opts.output}: browser ready in ${tReady - t0} ms, ${frameCount} frames in ${tDone - tReady} ms (${(frameCount * 1000 / Math.max(1, tDone - tReady)).toFixed(1)} fps), ${tracks.length} audio track(s)`);
  } finally {
    if (encoder) await encoder.abort();
    await browser.close().catch(() => {});
  }
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
// local origin, else the URL itself.
function source(src) {
  if (!src.startsWith(localOrigin + '/')) return src;
  const rel = path.normalize(decodeURIComponent(new URL(src).pathname)).replace(/^\/+/, '');
  if (rel.startsWith('..')) throw new Error(`media ${src} is outside the assets`);
  return path.join(process.cwd(), rel);
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
