// What the renderer installs in the page before any of the page's own
// scripts (page.addInitScript(install, options)). It must be
// self-contained: Playwright sends its source to the browser.
//
// - A virtual clock that only the renderer moves (performance.now,
//   Date.now, requestAnimationFrame timestamps and Helios's own
//   __HELIOS_VIRTUAL_TIME__ hook, which bindToDocumentTimeline() follows),
//   and a seeded Math.random, so that a frame's pixels depend only on its
//   number, not on how long the page took.
// - Media seeks, remembered, so that after each frame the renderer can
//   check every video got where the page sent it; and aimed half a
//   millisecond late. Chromium truncates the time asked to microseconds and
//   shows the last frame stamped at or before it, while containers round
//   frame times to their time base (1 ms in WebM): a seek to frame k's exact
//   time would otherwise show frame k-1 about every third frame.
// - In canvas mode, WebGL contexts keep their drawing buffer: the renderer
//   reads the canvas after the frame was presented, when a context created
//   with the default preserveDrawingBuffer: false has already been cleared.
//   And draw calls are counted, so that a canvas captured blank after the
//   page drew on it is reported.
// - Two style sheets the page does not see (constructed, adopted): the
//   body keeps its size while its content is skipped, the flush that skips
//   it for one frame and a cover of the viewport (frames.mjs, freshCapture). Skipping makes
//   IntersectionObserver see every element leave the viewport and come
//   back: its callbacks get only what changed between rendered frames.
// - The page's pending timers, counted: a page waiting on one is not
//   done loading.
//
// Everything the renderer calls lives on window.__heliosRenderer.
export function install({ startMs, canvasMode }) {
  // Timers the page set and that have not fired, with when they are due
  // in real time: a page that waits on one is not done loading.
  const realNow = Date.now;
  const setTimer = window.setTimeout.bind(window);
  const clearTimer = window.clearTimeout.bind(window);
  const timers = new Map();
  window.setTimeout = function setTimeout(handler, ms, ...args) {
    if (typeof handler !== 'function') return setTimer(handler, ms, ...args);
    const id = setTimer((...a) => {
      timers.delete(id);
      handler(...a);
    }, ms, ...args);
    timers.set(id, realNow() + (Number(ms) || 0));
    return id;
  };
  window.clearTimeout = function clearTimeout(id) {
    timers.delete(id);
    clearTimer(id);
  };

  const epoch = 1704067200000;
  window.__HELIOS_VIRTUAL_TIME__ = startMs;
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

  // Media seeks.
  const seekBias = 0.0005;
  const asked = new WeakMap();
  const seeks = new WeakMap(); // how many times the page seeked each element
  // Videos seeked whose new picture the compositor has not shown yet. A
  // video reports it seeked before its picture reaches the compositor, and
  // pictures of earlier seeks may still be on their way: the compositor
  // would draw one of those. Where the renderer knows a source's frame
  // times (frameTimes), a video is shown when the picture presented is the
  // one at its time; elsewhere, when a picture was presented after the seek.
  const unshown = new Set();
  const shownAt = new WeakMap(); // video -> media time of the last picture presented
  const looping = new WeakSet();
  const frameTimesOf = new Map(); // source URL -> sorted frame times
  const watchPictures = (el) => {
    if (looping.has(el)) return;
    looping.add(el);
    const loop = (now, meta) => {
      shownAt.set(el, meta.mediaTime);
      if (unshown.has(el)) el.requestVideoFrameCallback(loop);
      else looping.delete(el);
    };
    el.requestVideoFrameCallback(loop);
  };
  const pictureShown = (el) => {
    if (!shownAt.has(el)) return false;
    const times = frameTimesOf.get(el.currentSrc || el.src);
    if (!times) return true;
    // The frame Chromium shows at a time: the last one that starts at or before it.
    const t = el.currentTime + 1e-6;
    let lo = 0, hi = times.length - 1, at = times[0];
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid] <= t) { at = times[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    return Math.abs(shownAt.get(el) - at) < 1e-5;
  };
  const time = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, 'currentTime');
  Object.defineProperty(HTMLMediaElement.prototype, 'currentTime', {
    configurable: true,
    enumerable: time.enumerable,
    get() { return time.get.call(this); },
    set(v) {
      asked.set(this, v);
      seeks.set(this, (seeks.get(this) ?? 0) + 1);
      time.set.call(this, v > 0 && this instanceof HTMLVideoElement ? v + seekBias : v);
      if (this instanceof HTMLVideoElement) {
        unshown.add(this);
        shownAt.delete(this);
        watchPictures(this);
      }
    },
  });

  // Canvas contexts: WebGL buffers kept (canvas mode), draws counted.
  const drawn = Symbol('draws');
  const count = (proto, names) => {
    for (const name of names) {
      const f = proto?.[name];
      if (typeof f !== 'function') continue;
      proto[name] = function (...args) {
        if (this.canvas) this.canvas[drawn] = (this.canvas[drawn] ?? 0) + 1;
        return f.apply(this, args);
      };
    }
  };
  if (canvasMode) {
    const getContext = HTMLCanvasElement.prototype.getContext;
    HTMLCanvasElement.prototype.getContext = function (type, attrs) {
      if (type === 'webgl' || type === 'webgl2' || type === 'experimental-webgl') attrs = { ...attrs, preserveDrawingBuffer: true };
      return getContext.call(this, type, attrs);
    };
    const gl = ['drawArrays', 'drawElements', 'drawArraysInstanced', 'drawElementsInstanced', 'drawRangeElements', 'clear'];
    count(window.WebGLRenderingContext?.prototype, gl);
    count(window.WebGL2RenderingContext?.prototype, gl);
    count(window.CanvasRenderingContext2D?.prototype, ['fillRect', 'strokeRect', 'fill', 'stroke', 'fillText', 'strokeText', 'drawImage', 'putImageData']);
  }

  // The flush, and IntersectionObserver kept from seeing it.
  // The flush skips the body's content (all of it, videos too: a video's
  // layer keeps showing a stale picture after some seeks, a new one shows
  // the current picture). The cover hides the viewport for one frame, so
  // that the frame after it always differs from it: Chromium returns no
  // screenshot of a frame without damage.
  const keep = new CSSStyleSheet();
  keep.replaceSync(':where(body) { contain-intrinsic-size: auto none; }');
  const flushSheet = new CSSStyleSheet();
  flushSheet.replaceSync('body { content-visibility: hidden !important; }');
  const coverSheet = new CSSStyleSheet();
  coverSheet.replaceSync('html::after { content: "" !important; position: fixed !important; inset: 0 !important; background: #f0f !important; z-index: 2147483647 !important; }');
  coverSheet.disabled = true;
  flushSheet.disabled = true;
  const adopt = () => {
    const own = document.adoptedStyleSheets;
    if (![keep, flushSheet, coverSheet].every((s) => own.includes(s))) {
      document.adoptedStyleSheets = [...own.filter((s) => s !== keep && s !== flushSheet && s !== coverSheet), keep, flushSheet, coverSheet];
    }
  };
  adopt();
  // IntersectionObserver: the flush frame makes every observed element in
  // the body stop intersecting, and the next frame makes those in view
  // intersect again. An observer tells its callback only what changed
  // between two rendered frames (its state: whether it intersects, and
  // which threshold it passed): the flush frame's "not intersecting"
  // entries are held back, and settle(), after each rendered frame, tells
  // of the targets they named that stayed out, which the browser reports
  // no more. Only in the top frame, whose body the flush skips.
  const observers = new Set();
  let flushing = false;
  const NativeIO = window.IntersectionObserver;
  class IntersectionObserver extends NativeIO {
    #callback;
    #told = new Map(); // target -> the state last told
    #flushedOut = new Set(); // targets the flush frame put out
    constructor(callback, options) {
      super((entries) => this.#take(entries), options);
      this.#callback = callback;
    }
    #state(e) {
      return `${e.isIntersecting}:${this.thresholds.filter((t) => e.intersectionRatio >= t).length}`;
    }
    #take(entries) {
      const out = [];
      for (const e of entries) {
        if (flushing && !e.isIntersecting) {
          this.#flushedOut.add(e.target);
          continue;
        }
        this.#flushedOut.delete(e.target);
        const s = this.#state(e);
        if (this.#told.get(e.target) === s) continue;
        this.#told.set(e.target, s);
        out.push(e);
      }
      if (out.length) this.#callback.call(this, out, this);
    }
    observe(target) {
      observers.add(this);
      super.observe(target);
    }
    unobserve(target) {
      this.#told.delete(target);
      this.#flushedOut.delete(target);
      super.unobserve(target);
    }
    disconnect() {
      this.#told.clear();
      this.#flushedOut.clear();
      observers.delete(this);
      super.disconnect();
    }
    // endFlush takes what the flush frame reported and was not delivered.
    endFlush() {
      this.#take(super.takeRecords());
    }
    // settle tells of what the frame just rendered changed: its entries,
    // and the targets the flush put out that stayed out.
    settle() {
      this.#take(super.takeRecords());
      const out = [];
      for (const target of this.#flushedOut) {
        if (this.#told.get(target) === 'false:0') continue;
        this.#told.set(target, 'false:0');
        out.push({
          target, isIntersecting: false, intersectionRatio: 0, time: now(), rootBounds: null,
          boundingClientRect: target.getBoundingClientRect(), intersectionRect: new DOMRectReadOnly(0, 0, 0, 0),
        });
      }
      this.#flushedOut.clear();
      if (out.length) this.#callback.call(this, out, this);
    }
  }
  if (window === window.top) window.IntersectionObserver = IntersectionObserver;

  const media = () => {
    const found = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll('*')) {
        if (el instanceof HTMLMediaElement) found.push(el);
        if (el.shadowRoot) walk(el.shadowRoot);
      }
    };
    walk(document);
    return found;
  };

  Object.defineProperty(window, '__heliosRenderer', {
    value: Object.freeze({
      // flush(true) skips the body's content until flush(false).
      // cover(true) covers the viewport until cover(false).
      cover(on) {
        coverSheet.disabled = !on;
      },
      flush(on) {
        if (on) {
          adopt();
          flushing = true;
          flushSheet.disabled = false;
        } else {
          flushSheet.disabled = true;
          for (const o of observers) o.endFlush();
          flushing = false;
        }
      },
      // settle delivers what observers saw in the frame just rendered.
      settle() {
        for (const o of observers) o.settle();
      },
      // pausePlaying pauses the media playing on their own, and returns the
      // sources of the videos among them.
      pausePlaying() {
        const played = [];
        for (const el of media()) {
          if (el.paused) continue;
          el.pause();
          if (el instanceof HTMLVideoElement) played.push(el.currentSrc || el.src || '(no source)');
        }
        return played;
      },
      // timers counts the page's timers due within ms.
      timers(ms = 30000) {
        const until = realNow() + ms;
        let n = 0;
        for (const due of timers.values()) if (due <= until) n++;
        return n;
      },
      // sleep resolves after ms, on a timer the page does not see.
      sleep(ms) {
        return new Promise((r) => setTimer(r, ms));
      },
      // seeked resolves when no video is seeking.
      seeked() {
        return Promise.all(media().filter((el) => el instanceof HTMLVideoElement && el.seeking).map((el) => new Promise((r) => {
          el.addEventListener('seeked', r, { once: true });
          el.addEventListener('error', r, { once: true });
        })));
      },
      // videos reports each video the page seeked that is not where it was
      // sent (or has no frame to show there).
      videos() {
        const wrong = [];
        for (const el of media()) {
          if (!(el instanceof HTMLVideoElement)) continue;
          const want = asked.get(el) ?? el.currentTime;
          const src = el.currentSrc || el.src || '(no source)';
          if (el.error) wrong.push({ src, want, problem: el.error.message || `media error ${el.error.code}` });
          else if (!asked.has(el)) continue;
          else if (el.seeking) wrong.push({ src, want, problem: 'still seeking' });
          else if (Math.abs(el.currentTime - Math.min(want + (want > 0 ? seekBias : 0), el.duration || Infinity)) > 0.002) {
            wrong.push({ src, want, at: el.currentTime, seekable: el.seekable.length > 0, problem: 'not at the time asked' });
          } else if (el.readyState < 2) wrong.push({ src, want, problem: 'no frame to show' });
        }
        return wrong;
      },
      // unshown counts the videos seeked whose new picture the compositor
      // has not shown, among those that are rendered at all.
      unshown() {
        for (const el of unshown) {
          const box = el.isConnected && el.getBoundingClientRect();
          const rendered = box && box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== 'hidden';
          if (!rendered || pictureShown(el)) unshown.delete(el);
        }
        return unshown.size;
      },
      // reshow seeks the videos still unshown to where they are: a new
      // picture comes with every seek, where one that is already there
      // may never be presented again.
      reshow() {
        for (const el of unshown) {
          shownAt.delete(el);
          time.set.call(el, time.get.call(el));
          watchPictures(el);
        }
      },
      // frameTimes tells the frame times of a video source (seconds).
      frameTimes(src, times) {
        frameTimesOf.set(src, times);
      },
      // videoSources lists the sources of the page's videos.
      videoSources() {
        return [...new Set(media().filter((el) => el instanceof HTMLVideoElement).map((el) => el.currentSrc || el.src).filter(Boolean))];
      },
      // videoTimes lists the page's videos, where each is and how many
      // times the page seeked it.
      videoTimes() {
        return media().filter((el) => el instanceof HTMLVideoElement).map((el) => ({ src: el.currentSrc || el.src || '(no source)', time: el.currentTime, seeks: seeks.get(el) ?? 0 }));
      },
      // draws returns how many draw calls canvas had since the last call.
      draws(canvas) {
        const n = canvas[drawn] ?? 0;
        canvas[drawn] = 0;
        return n;
      },
    }),
  });
}
