// One chunk: start the browser, load the composition, step through the
// frames, encode.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { audioGraph } from './audio.mjs';
import { findBrowser, launch } from './browser.mjs';
import { Encoder } from './encode.mjs';
import { freshCapture, openPage } from './frames.mjs';
import { install } from './inpage.mjs';
import { frameMs } from './options.mjs';
import { captureCanvas, check, media, ready, seek, videosShown } from './page.mjs';
import { CompositionError, Warnings, entryFailed, permanentStatus, short, watchPage } from './problems.mjs';
import { Fetcher, Refused, localFile, localOrigin, route } from './serve.mjs';

// render renders opts' chunk. The worker's environment says where the
// warnings go (HELIOS_REPORT) and where its fetcher listens
// (HELIOS_FETCH_SOCKET); both are unset when run by hand.
export async function render(opts, log, env = process.env) {
  const warnings = new Warnings(log, env.HELIOS_REPORT);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'helios-render-'));
  try {
    await renderChunk(opts, log, { warnings, scratch, fetcher: env.HELIOS_FETCH_SOCKET ? new Fetcher(env.HELIOS_FETCH_SOCKET) : null });
  } finally {
    await warnings.write().catch((err) => log(`warnings not reported: ${err.message}`));
    await rm(scratch, { recursive: true, force: true });
  }
}

async function renderChunk(opts, log, { warnings, scratch, fetcher }) {
  const t0 = Date.now();
  const described = findBrowser();
  const browser = await launch(described);
  let encoder;
  // Stopped by hand (or by a worker's SIGTERM): no partial file, no browser left.
  const stop = async (signal) => {
    if (encoder) await encoder.abort();
    await browser.close().catch(() => {});
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', stop).once('SIGTERM', stop);
  let frames;
  try {
    const opened = await openPage(browser, described, { width: opts.width, height: opts.height });
    const { context, page } = opened;
    frames = opened.frames;
    const url = opts.composition.url ?? `${localOrigin}/${opts.composition.file.split(path.sep).map(encodeURIComponent).join('/')}`;
    const watch = watchPage(page, url, warnings);
    await route(context, { root: process.cwd(), fetcher, onRefused: (u, type, reason) => watch.refused(u, type, reason) });
    await page.addInitScript(install, { startMs: frameMs(opts.fps, opts.startFrame), canvasMode: opts.mode === 'canvas' });

    // Loading and getting ready run on frames drawn at 60 Hz, as in a
    // browser; from the first frame on, the renderer draws each one.
    frames.pump();
    const info = await load(page, url, opts, watch);
    const total = Math.round(info.duration * info.fps);
    check(opts, info, total);
    const frameCount = opts.frameCount ?? total - opts.startFrame;
    const tracks = await bounded(media(page, opts.timeoutMs), opts.timeoutMs + 5000, `the composition's media did not load within ${opts.timeoutMs / 1000}s`);
    await frames.stop();
    // Two frames drawn after the page is ready, as a browser would have,
    // before the first one is captured: observers, resize handlers and
    // animation frame callbacks have run once.
    await frames.draw();
    await frames.draw();
    await videoFrameTimes(page, { fetcher, scratch });
    const audio = audioGraph(await mixable(tracks, { page, fetcher, scratch }), {
      fps: opts.fps, startFrame: opts.startFrame, frameCount, totalFrames: total,
    });
    const tReady = Date.now();
    encoder = new Encoder(opts, audio);
    const videosBefore = await page.evaluate(() => window.__heliosRenderer.videoTimes());
    let first, same = true;
    for (let f = opts.startFrame; f < opts.startFrame + frameCount; f++) {
      // Bounded here too: a page stuck in a loop never answers the browser.
      const seeked = await bounded(seek(page, opts.fps, f, opts.timeoutMs), opts.timeoutMs + 5000,
        `frame ${f} did not settle within ${opts.timeoutMs / 1000}s (the page did not answer: a script stuck in a loop?)`);
      for (const src of seeked.played) {
        warnings.add(`the video ${short(src)} was playing on its own (its pictures would follow the render's speed): the renderer pauses it at every frame; let Helios seek it (autoSyncAnimations: true)`);
      }
      await bounded(videosShown(page, frames, f, seeked.unshown), opts.timeoutMs, `frame ${f}: the videos did not show their pictures within ${opts.timeoutMs / 1000}s`);
      watch.throwIfAny();
      const png = await bounded(capture(page, frames, opts, warnings, seeked.hasVideos), opts.timeoutMs, `capturing frame ${f} took more than ${opts.timeoutMs / 1000}s`);
      watch.throwIfAny();
      if (first === undefined) first = png;
      else if (same && !png.equals(first)) same = false;
      await encoder.write(png);
    }
    await encoder.finish();
    encoder = null;
    if (frameCount > 1 && same) {
      warnings.add(`all the frames of a chunk are identical although the composition's time moved: if it should move there, check that it draws from helios's current frame`);
    }
    await stillVideos(page, videosBefore, frameCount, warnings);
    const tDone = Date.now();
    log(`rendered frames [${opts.startFrame}, ${opts.startFrame + frameCount}) of ${total} to ${opts.output}: browser ready in ${tReady - t0} ms, ${frameCount} frames in ${tDone - tReady} ms (${(frameCount * 1000 / Math.max(1, tDone - tReady)).toFixed(1)} fps), ${audio ? audio.inputs.filter((a) => a === '-i').length : 0} audio track(s), ${described.frameControl ? 'frames drawn on request' : 'frames at the browser\'s pace'}`);
  } finally {
    process.off('SIGINT', stop).off('SIGTERM', stop);
    await frames?.stop(5000).catch(() => {});
    if (encoder) await encoder.abort();
    await browser.close().catch(() => {});
  }
}

// load opens the composition and waits until it is ready.
async function load(page, url, opts, watch) {
  const response = await page.goto(url, { waitUntil: 'load', timeout: opts.timeoutMs }).catch((err) => {
    watch.throwIfAny();
    throw new Error(`loading ${short(url)}: ${err.message.split('\n')[0]}`);
  });
  watch.throwIfAny();
  if (response && !response.ok()) throw entryFailed(url, `HTTP ${response.status()}`, permanentStatus(response.status()));
  return bounded(ready(page, opts, watch), 2 * opts.timeoutMs + 5000,
    `the composition did not become ready within ${opts.timeoutMs / 1000}s (the page did not answer: a script stuck in a loop?)`);
}

// capture draws frame f and returns it as PNG: the composition's canvas in
// canvas mode, else the viewport with every layer rastered afresh.
async function capture(page, frames, opts, warnings, hasVideos) {
  if (opts.mode === 'dom') return freshCapture(page, frames, hasVideos);
  // A canvas drawn in an animation frame callback is drawn in the next frame.
  await frames.draw();
  const { png, blank } = await captureCanvas(page, opts.canvasSelector);
  if (blank) warnings.add(`the canvas ${opts.canvasSelector} was captured blank (fully transparent) although the page drew on it`);
  return png;
}

// stillVideos warns of the videos that never moved while the composition's
// time did: nothing seeked them (Helios seeks the media of compositions
// created with autoSyncAnimations: true).
async function stillVideos(page, before, frameCount, warnings) {
  if (frameCount < 2) return;
  const after = await page.evaluate(() => window.__heliosRenderer.videoTimes());
  for (const v of after) {
    const was = before.find((b) => b.src === v.src);
    if (was && was.time === v.time && was.seeks === v.seeks) {
      warnings.add(`the video ${short(v.src)} stayed at ${v.time.toFixed(3)}s for the whole chunk: nothing seeked it (a Helios composition created with autoSyncAnimations: true seeks its media)`);
    }
  }
}

// bounded rejects with message if promise has not settled within ms.
function bounded(promise, ms, message) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); })])
    .finally(() => clearTimeout(timer));
}

// mixable gives each audible track a source ffmpeg may read, and its
// channel count. Silent tracks (muted, volume 0) are not mixed, whatever
// their source, nor videos without sound. The browser's own playback
// errors do not matter here (ffmpeg mixes the files; a FLAC the browser
// cannot seek in mixes well), only whether ffmpeg finds audio to mix.
async function mixable(tracks, { page, fetcher, scratch }) {
  for (const t of tracks) {
    if (t.fadeEasing && t.fadeEasing !== 'linear') {
      throw new CompositionError(`media ${short(t.src)}: data-helios-fade-easing="${t.fadeEasing}" is not supported; the mix fades linearly`);
    }
  }
  const mixed = await Promise.all(tracks.filter((t) => t.volume > 0).map(async (t, i) => {
    const src = await source(t.src, { page, fetcher, scratch, name: `track-${i}` });
    const n = await channels(src);
    if (n === 0 && !t.video) {
      throw new CompositionError(`the composition's media ${short(t.src)} cannot be mixed: ffmpeg finds no audio in it${t.error ? ` (the browser says: ${t.error})` : ''}`);
    }
    return { ...t, source: src, channels: n };
  }));
  return mixed.filter((t) => t.channels > 0);
}

// source is where ffmpeg reads a media source: a file of the work dir for
// the local origin (by the same rules that serve it to the page); a data:
// URI decoded into a file; a blob: URL read in the page into a file; from
// other origins, a file of what the worker's fetcher gave the page, or,
// where the command has the network, an https URL. Nothing else reaches
// ffmpeg, whose inputs can name devices and protocols.
async function source(src, { page, fetcher, scratch, name }) {
  const url = new URL(src);
  const file = path.join(scratch, name);
  switch (url.protocol) {
    case 'https:':
    case 'http:':
      if (src.startsWith(localOrigin + '/')) {
        const local = await localFile(process.cwd(), url.pathname);
        if (!local) throw new CompositionError(`media ${short(url.pathname)} is not a file of the assets`);
        return local;
      }
      if (!fetcher) {
        if (url.protocol === 'https:') return url.href;
        throw new CompositionError(`media ${short(src)}: only https:// URLs are read from the network`);
      }
      {
        const res = await fetcher.get(url.href, { accept: '*/*' }).catch((err) => {
          throw err instanceof Refused ? new CompositionError(`media ${short(src)} cannot be mixed: ${err.message}`) : err;
        });
        if (res.status !== 200) throw new Error(`media ${short(src)}: HTTP ${res.status}`);
        await writeFile(file, res.body);
      }
      return file;
    case 'data:':
      await writeFile(file, Buffer.from(await (await fetch(src)).arrayBuffer()));
      return file;
    case 'blob:': {
      const b64 = await page.evaluate(async (u) => {
        const bytes = new Uint8Array(await (await fetch(u)).arrayBuffer());
        let s = '';
        for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return btoa(s);
      }, src).catch((err) => { throw new CompositionError(`media ${short(src)} cannot be read: ${err.message.split('\n')[0]}`); });
      await writeFile(file, Buffer.from(b64, 'base64'));
      return file;
    }
    default:
      throw new CompositionError(`media ${short(src)}: ${url.protocol} sources cannot be read`);
  }
}

// videoFrameTimes tells the page the frame times of each video source it
// can read, so that each frame waits for the very picture of its time.
async function videoFrameTimes(page, { fetcher, scratch }) {
  const sources = await page.evaluate(() => window.__heliosRenderer.videoSources());
  await Promise.all(sources.map(async (src, i) => {
    let file;
    try {
      file = await source(src, { page, fetcher, scratch, name: `video-${i}` });
    } catch {
      return; // not readable here: the page waits for any picture after a seek
    }
    const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], { maxBuffer: 64 << 20 })
      .catch(() => ({ stdout: '' }));
    const times = stdout.split('\n').filter((l) => /^-?[\d.]+$/.test(l.trim())).map(Number).sort((a, b) => a - b);
    if (times.length) await page.evaluate(({ src, times }) => window.__heliosRenderer.frameTimes(src, times), { src, times });
  }));
}

const run = promisify(execFile);

// channels is a source's audio channel count: 0 if ffprobe finds no
// audio in it; an error if ffprobe cannot run.
async function channels(src) {
  try {
    const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'a:0', '-show_entries', 'stream=channels', '-of', 'csv=p=0', src]);
    return Number(stdout.trim()) || 0;
  } catch (err) {
    if (err.code === 'ENOENT' || typeof err.code !== 'number') throw new Error(`ffprobe could not run: ${err.message}`);
    return 0; // it ran and found no media it reads
  }
}
