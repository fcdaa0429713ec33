// The composition in a page: served from the work dir, driven frame by
// frame on a virtual clock, captured as PNG.
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { frameMs } from './options.mjs';

// Local compositions load from this origin, answered from the work dir by
// request interception: ES modules do not load from file://, and a confined
// command may not listen on a port. .invalid never resolves, so nothing
// else can answer for it. https makes it a secure context (WebCodecs,
// crypto.subtle).
export const localOrigin = 'https://composition.helios.invalid';

const types = {
  '.html': 'text/html', '.htm': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg',
  '.gif': 'image/gif', '.webp': 'image/webp', '.avif': 'image/avif', '.woff': 'font/woff', '.woff2': 'font/woff2',
  '.ttf': 'font/ttf', '.otf': 'font/otf', '.wav': 'audio/wav', '.mp3': 'audio/mpeg', '.ogg': 'audio/ogg',
  '.flac': 'audio/flac', '.m4a': 'audio/mp4', '.aac': 'audio/aac', '.opus': 'audio/ogg', '.mp4': 'video/mp4',
  '.webm': 'video/webm', '.mov': 'video/quicktime', '.wasm': 'application/wasm', '.txt': 'text/plain',
};

// localFile maps a URL path of localOrigin to a file under root, or null:
// nothing outside root (no .., no links leading out).
export async function localFile(root, urlPath) {
  let base, file;
  try {
    base = await realpath(root);
    file = await realpath(path.join(base, path.normalize(decodeURIComponent(urlPath))));
  } catch {
    return null;
  }
  return file === base || file.startsWith(base + path.sep) ? file : null;
}

// serveWorkDir answers requests for localOrigin with files under root.
export async function serveWorkDir(context, root) {
  await context.route(`${localOrigin}/**`, async (route) => {
    const file = await localFile(root, new URL(route.request().url()).pathname);
    let body;
    try {
      body = file && await readFile(file);
    } catch {
      body = null;
    }
    if (!body) return route.fulfill({ status: 404, body: 'not found' });
    return route.fulfill({ status: 200, body, headers: { 'content-type': types[path.extname(file).toLowerCase()] ?? 'application/octet-stream', 'cache-control': 'no-store' } });
  });
}

// Before any of the page's scripts: a virtual clock that only the renderer
// moves (performance.now, Date.now, requestAnimationFrame timestamps and
// Helios's own __HELIOS_VIRTUAL_TIME__ hook, which bindToDocumentTimeline()
// follows), and a seeded Math.random, so that a frame's pixels depend only
// on its number, not on how long the page took.
export function clockScript(startMs) {
  return `(() => {
    const epoch = 1704067200000;
    window.__HELIOS_VIRTUAL_TIME__ = ${startMs};
    const now = () => window.__HELIOS_VIRTUAL_TIME__;
    performance.now = now;
    Date.now = () => epoch + now();
    const raf = window.requestAnimationFrame.bind(window);
    window.requestAnimationFrame = (cb) => raf(() => cb(now()));
    let seed = 0x9e3779b9;
    Math.random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  })();`;
}

// ready waits until the composition has run and exposed its Helios
// instance (window.helios, as Helios compositions do), its fonts have
// loaded and its media know their durations; and checks it against the
// command line.
export async function ready(page, opts, pageErrors) {
  const deadline = Date.now() + opts.timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  try {
    await Promise.race([
      page.waitForFunction(() => typeof window.helios?.seek === 'function', null, { timeout: left(), polling: 50 }),
      pageErrors.failed,
    ]);
  } catch (err) {
    pageErrors.throwIfAny();
    throw new Error(`the composition did not become ready within ${opts.timeoutMs / 1000}s: window.helios was never set (a Helios composition exposes its instance as window.helios)`);
  }
  pageErrors.throwIfAny();
  const info = await page.evaluate(async (ms) => {
    await Promise.race([document.fonts.ready, new Promise((r) => setTimeout(r, ms))]);
    const h = window.helios;
    return { fps: h.fps?.value, duration: h.duration?.value };
  }, left());
  return info;
}

// media lists the composition's audible <audio> and <video> elements in
// every frame and shadow root, once they know their duration.
export async function media(page, timeoutMs) {
  const lists = await Promise.all(page.frames().map((frame) => frame.evaluate(async (ms) => {
    const found = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll('*')) {
        if ((el instanceof HTMLMediaElement) && !el.hasAttribute('data-helios-no-audio')) found.push(el);
        if (el.shadowRoot) walk(el.shadowRoot);
      }
    };
    walk(document);
    const withSource = found.filter((el) => el.currentSrc || el.src);
    await Promise.all(withSource.map((el) => el.readyState >= 1 ? null : new Promise((resolve) => {
      el.addEventListener('loadedmetadata', resolve, { once: true });
      el.addEventListener('error', resolve, { once: true });
      if (el.preload === 'none') el.preload = 'metadata';
      setTimeout(resolve, ms);
    })));
    const num = (v) => { const n = parseFloat(v); return Number.isFinite(n) ? n : 0; };
    // Helios's DomDriver sets each element's volume and muted for the
    // current time (fades, track and master settings); the mix needs the
    // levels it started from, and applies the fades itself, sample-exact.
    const h = window.helios;
    const tracks = h?.audioTracks?.value ?? {};
    const level = (el) => {
      const st = h?.driver?.trackStates?.get(el);
      const track = tracks[el.getAttribute('data-helios-track-id')] ?? { volume: 1, muted: false };
      const muted = (st ? st.baseMuted : el.muted) || h?.muted?.value || track.muted;
      return muted ? 0 : (st ? st.baseVolume : el.volume) * (h?.volume?.value ?? 1) * track.volume;
    };
    return withSource.map((el) => ({
      src: el.currentSrc || el.src,
      offset: num(el.dataset.heliosOffset),
      seek: num(el.dataset.heliosSeek),
      fadeIn: num(el.dataset.heliosFadeIn),
      fadeOut: num(el.dataset.heliosFadeOut),
      fadeEasing: el.dataset.heliosFadeEasing ?? '',
      volume: level(el),
      loop: el.loop,
      playbackRate: num(el.getAttribute('playbackRate')) || el.defaultPlaybackRate || 1,
      duration: Number.isFinite(el.duration) ? el.duration : 0,
      error: el.error ? `${el.error.message || 'media error ' + el.error.code}` : '',
    }));
  }, timeoutMs)));
  return lists.flat();
}

// seek moves the virtual clock to frame f and waits until the composition
// has settled there: Helios instances bound to the document timeline follow
// the clock; the exposed instance is also seeked to the exact frame; CSS
// and Web Animations are paused at the frame's time.
export async function seek(page, fps, f, timeoutMs, paint) {
  const settled = await page.evaluate(async ({ f, t, ms, paint }) => {
    window.__HELIOS_VIRTUAL_TIME__ = t;
    for (const a of document.getAnimations()) {
      a.currentTime = t;
      if (a.playState !== 'paused') a.pause();
    }
    const h = window.helios;
    if (h.seek) h.seek(f);
    const stable = typeof h.waitUntilStable === 'function' ? h.waitUntilStable() : Promise.resolve();
    let timer;
    const ok = await Promise.race([stable.then(() => true), new Promise((r) => { timer = setTimeout(() => r(false), ms); })]);
    clearTimeout(timer);
    // A canvas drawn in a requestAnimationFrame callback is drawn by the
    // next frame; a screenshot renders a frame of its own.
    if (paint) await new Promise((r) => requestAnimationFrame(() => r()));
    return ok;
  }, { f, t: frameMs(fps, f), ms: timeoutMs, paint });
  if (!settled) throw new Error(`frame ${f} did not settle within ${timeoutMs / 1000}s (helios.waitUntilStable never resolved)`);
}

// capture returns the frame as PNG: the whole viewport in dom mode (over
// CDP, asking Chromium for its fastest PNG compression: still lossless), the
// composition's canvas in canvas mode.
export async function capture(page, opts, cdp) {
  if (opts.mode === 'dom') {
    const { data } = await cdp.send('Page.captureScreenshot', { format: 'png', optimizeForSpeed: true });
    return Buffer.from(data, 'base64');
  }
  const dataUrl = await page.evaluate((sel) => {
    const c = document.querySelector(sel);
    if (!(c instanceof HTMLCanvasElement)) return { error: `no <canvas> matches ${JSON.stringify(sel)} (--mode canvas captures the composition's canvas; use --mode dom for a page)` };
    return { url: c.toDataURL('image/png') };
  }, opts.canvasSelector);
  if (dataUrl.error) throw new Error(dataUrl.error);
  return Buffer.from(dataUrl.url.slice(dataUrl.url.indexOf(',') + 1), 'base64');
}
