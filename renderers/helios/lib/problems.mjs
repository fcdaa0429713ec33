// What went wrong, told loudly: errors that fail the chunk (permanent when
// a retry would render the same), and warnings that go with a chunk that
// rendered into the job's status.
import { appendFile } from 'node:fs/promises';
import { localOrigin } from './serve.mjs';

// CompositionError is a failure no retry can change: the composition, its
// assets or the command line are wrong. helios render exits 65
// (EX_DATAERR) for it, which the worker takes as permanent.
export class CompositionError extends Error {}

// short shortens a long value for a message: its first characters and its
// length (a data: URI can be megabytes).
export function short(s, n = 100) {
  s = String(s);
  return s.length <= n ? s : `${s.slice(0, n)}… (${s.length} characters)`;
}

// Warnings are reported once each, on stderr as they happen and, when the
// worker asks (HELIOS_REPORT names a file), as JSON lines for the job's
// status.
export class Warnings {
  constructor(log, file) {
    this.log = log;
    this.file = file;
    this.seen = new Set();
  }

  add(message) {
    if (this.seen.has(message) || this.seen.size >= 20) return;
    this.seen.add(message);
    this.log(`warning: ${message}`);
  }

  async write() {
    if (!this.file || this.seen.size === 0) return;
    await appendFile(this.file, [...this.seen].map((m) => `${JSON.stringify({ warning: m })}\n`).join(''));
  }
}

// Resource types whose loss changes what the page draws: their failure
// fails the chunk. Others (fetch, XHR, beacons) may be the page's business
// and are warnings; a page that needed one throws, which fails the chunk.
const drawn = new Set(['document', 'stylesheet', 'script', 'font', 'image', 'media', 'texttrack']);

const bundleHint = 'bundle it with the assets (helios job run --assets DIR), or have the deployment fetch its origin for the page (HELIOS_RENDER_ORIGINS)';

const what = (type, url) => `${type === 'document' ? 'the page' : type} ${short(url)}`;

// permanentStatus reports whether an HTTP status answers the same to a
// retry: client errors, but a timeout, a rate limit or too early.
export function permanentStatus(status) {
  return status >= 400 && status < 500 && ![408, 425, 429].includes(status);
}

// entryFailed is the error for a composition page that did not load.
export function entryFailed(url, why, permanent = true) {
  const msg = url.startsWith(localOrigin + '/')
    ? `loading the composition failed: ${why}: ${short(decodeURIComponent(new URL(url).pathname.slice(1)))} is not in the job's assets (helios job run --assets DIR, with DIR holding it)`
    : `loading the composition ${short(url)} failed: ${why}`;
  return permanent ? new CompositionError(msg) : new Error(msg);
}

// watchPage collects what the page throws and the requests it did not get.
// entry is the composition's URL.
export function watchPage(page, entry, warnings) {
  const errors = [];
  const inflight = new Set();
  let quietSince = Date.now();
  let fail;
  const failed = new Promise((_, reject) => { fail = reject; });
  failed.catch(() => {});
  const add = (err) => {
    errors.push(err);
    fail(err);
  };
  const lost = (type, url, why, permanent) => {
    if (!drawn.has(type)) return warnings.add(`the page's ${what(type, url)} was not loaded (${why}); the frames may not show what it would have given`);
    if (url === entry) return add(entryFailed(url, why, permanent));
    const msg = `loading ${what(type, url)} failed: ${why}${url.startsWith(localOrigin + '/') ? ' (is it in the asset bundle?)' : `: ${bundleHint}`}`;
    add(permanent ? new CompositionError(msg) : new Error(msg));
  };
  page.on('pageerror', (err) => add(new CompositionError(`the composition threw: ${short((err.stack || err.message).split('\n').slice(0, 6).join('\n'), 1200)}`)));
  page.on('crash', () => add(new Error('the page crashed (out of memory?)')));
  page.on('request', (req) => { inflight.add(req); });
  const done = (req) => {
    inflight.delete(req);
    if (inflight.size === 0) quietSince = Date.now();
  };
  page.on('requestfinished', (req) => {
    done(req);
    const res = req.redirectedTo() ? null : req.response();
    res?.then((r) => {
      if (r && r.status() >= 400) lost(req.resourceType(), req.url(), `HTTP ${r.status()}`, permanentStatus(r.status()));
    }).catch(() => {});
  });
  page.on('requestfailed', (req) => {
    done(req);
    const why = req.failure()?.errorText ?? 'failed';
    // Media elements abort their own range requests when they seek; a
    // refusal is told by refused() with its reason.
    if ((why === 'net::ERR_ABORTED' && req.resourceType() !== 'document') || why === 'net::ERR_BLOCKED_BY_CLIENT') return;
    lost(req.resourceType(), req.url(), why, false);
  });
  return {
    failed, // rejects at the first error
    // refused reports a request nothing may answer, with the reason.
    refused(url, type, reason) {
      if (!drawn.has(type)) return warnings.add(`the page's ${what(type, url)} was not loaded: ${reason}`);
      add(new CompositionError(`loading ${what(type, url)} was refused: ${reason}; ${bundleHint}`));
    },
    // quietFor is how long no request has been in flight.
    quietFor() {
      return inflight.size ? 0 : Date.now() - quietSince;
    },
    // throwIfAny throws what went wrong first (and the next two): for good
    // when that first error is, as the others may follow from it.
    throwIfAny() {
      if (errors.length === 0) return;
      const msg = errors.slice(0, 3).map((e) => e.message).join('\n');
      throw errors[0] instanceof CompositionError ? new CompositionError(msg) : new Error(msg);
    },
  };
}
