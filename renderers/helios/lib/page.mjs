// The composition in a page: ready, seeked frame by frame on the virtual
// clock (lib/inpage.mjs), checked, captured.
import { CompositionError, short } from './problems.mjs';
import { frameMs } from './options.mjs';

// A page that loaded, has nothing in flight and sets no timer for this
// long without creating window.helios never will.
const quietMs = 3000;

// ready waits until the composition has run and exposed its Helios
// instance (window.helios, as Helios compositions do) and its fonts have
// loaded; it fails at once, for good, when the page went quiet without
// one, and retryably when it was still loading at the timeout.
export async function ready(page, opts, watch) {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const state = await Promise.race([
      page.evaluate((ms) => ({ helios: typeof window.helios?.seek === 'function', timers: window.__heliosRenderer.timers(ms), loaded: document.readyState === 'complete' }), Math.max(0, deadline - Date.now())),
      watch.failed,
    ]);
    watch.throwIfAny();
    if (state.helios) break;
    if (state.loaded && state.timers === 0 && watch.quietFor() >= Math.min(quietMs, opts.timeoutMs)) {
      throw new CompositionError('window.helios was never set: the page loaded and went quiet without creating its Helios instance. '
        + 'A Helios composition exposes it as the page loads: `const helios = new Helios({ fps, duration }); window.helios = helios;`');
    }
    if (Date.now() > deadline) {
      throw new Error(`the composition did not become ready within ${opts.timeoutMs / 1000}s: window.helios was never set while the page was still ${state.loaded ? 'waiting on requests or timers' : 'loading'}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const left = Math.max(1, deadline - Date.now());
  return page.evaluate(async (ms) => {
    await Promise.race([document.fonts.ready, new Promise((r) => setTimeout(r, ms))]);
    const h = window.helios;
    return { fps: h.fps?.value, duration: h.duration?.value };
  }, left);
}

// check holds the composition against the command line: a mismatch is
// the spec's, and no retry changes it.
export function check(opts, info, total) {
  const fps = opts.fps.num / opts.fps.den;
  if (!(info.fps > 0) || !(info.duration > 0)) throw new CompositionError(`window.helios reports fps ${info.fps} and duration ${info.duration}; both must be positive`);
  if (Math.abs(info.fps - fps) > 1e-3) throw new CompositionError(`--fps ${opts.fps} differs from the composition's ${info.fps} fps: render it at --fps ${info.fps}`);
  const end = opts.startFrame + (opts.frameCount ?? 0);
  if (opts.startFrame >= total || end > total) {
    throw new CompositionError(`frames [${opts.startFrame}, ${opts.frameCount ? end : '…'}) pass the composition's end: it has ${total} frames (${info.duration}s at ${info.fps} fps)`);
  }
}

// media lists the composition's <audio> and <video> elements in every
// frame and shadow root, once they know their duration, with the levels
// and Helios attributes the mix needs.
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
      video: el instanceof HTMLVideoElement,
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
// has settled there (media playing on their own are paused first: their
// pictures would follow the render's speed, and those of videos are named
// in played): Helios instances bound to the document timeline follow
// the clock; the exposed instance is also seeked to the exact frame; CSS
// and Web Animations are paused at the frame's time; videos the page
// seeked have finished seeking. Then every video the page seeked must be
// where it was sent: one that is not would show the wrong picture.
export async function seek(page, fps, f, timeoutMs) {
  const { settled, wrong, unshown, hasVideos, played } = await page.evaluate(async ({ f, t, ms }) => {
    const r = window.__heliosRenderer;
    r.settle(); // what observers saw in the frame before
    const played = r.pausePlaying();
    window.__HELIOS_VIRTUAL_TIME__ = t;
    for (const a of document.getAnimations()) {
      a.currentTime = t;
      if (a.playState !== 'paused') a.pause();
    }
    const h = window.helios;
    if (h.seek) h.seek(f);
    const stable = Promise.all([typeof h.waitUntilStable === 'function' ? h.waitUntilStable() : null, r.seeked()]);
    const ok = await Promise.race([stable.then(() => true), r.sleep(ms).then(() => false)]);
    return { settled: ok, wrong: ok ? r.videos() : [], unshown: r.unshown(), hasVideos: r.videoSources().length > 0, played };
  }, { f, t: frameMs(fps, f), ms: timeoutMs });
  if (!settled) throw new Error(`frame ${f} did not settle within ${timeoutMs / 1000}s (helios.waitUntilStable never resolved, or a video never finished seeking)`);
  if (wrong.length) {
    const v = wrong[0];
    const where = v.at === undefined ? v.problem : `it is at ${v.at.toFixed(3)}s${v.seekable ? '' : ' and cannot seek (its server answered without byte ranges)'}`;
    throw new CompositionError(`frame ${f}: the video ${short(v.src)} could not be shown at ${v.want.toFixed(3)}s: ${where}`);
  }
  return { unshown, hasVideos, played };
}

// videosShown draws frames until every video seeked for this frame has
// its new picture in the compositor (at most a few: decoding is done by
// the time the video says it seeked).
export async function videosShown(page, frames, f, unshown) {
  for (let i = 1; unshown > 0; i++) {
    if (i > 30) throw new Error(`frame ${f}: ${unshown} video(s) did not show their picture after 30 frames`);
    await frames.draw();
    unshown = await page.evaluate((reshow) => {
      const r = window.__heliosRenderer;
      const n = r.unshown();
      if (n && reshow) r.reshow();
      return n;
    }, i % 5 === 0);
  }
}

// captureCanvas returns the composition's canvas as PNG, and whether it
// was blank (fully transparent) although the page drew on it since the
// last frame.
export async function captureCanvas(page, selector) {
  const got = await page.evaluate((sel) => {
    const c = document.querySelector(sel);
    if (!(c instanceof HTMLCanvasElement)) return { error: `no <canvas> matches ${JSON.stringify(sel)} (--mode canvas captures the composition's canvas; use --mode dom for a page)` };
    const url = c.toDataURL('image/png');
    const draws = window.__heliosRenderer.draws(c);
    let blank = false;
    if (draws > 0) {
      const empty = document.createElement('canvas');
      [empty.width, empty.height] = [c.width, c.height];
      blank = empty.toDataURL('image/png') === url;
    }
    return { url, blank };
  }, selector);
  if (got.error) throw new CompositionError(got.error);
  return { png: Buffer.from(got.url.slice(got.url.indexOf(',') + 1), 'base64'), blank: got.blank };
}
