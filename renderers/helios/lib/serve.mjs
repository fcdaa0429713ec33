// What answers the page's requests: the work dir for the composition's own
// origin, the worker's fetcher for other origins (or the network, where the
// command has one), with byte ranges for media either way.
import http from 'node:http';
import { open, realpath } from 'node:fs/promises';
import path from 'node:path';

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

// The most a fetched response may hold, and all of them together: they are
// kept in memory for the render (beyond that, they are asked for again).
const maxFetchedBytes = 64 << 20;
const maxKeptBytes = 256 << 20;

// The most one answer to a Range request carries: a media element asks for
// the rest of the file (bytes=N-) at every seek, and takes what it gets.
const maxRangeBytes = 8 << 20;

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

// byteRange reads a Range header against a resource of size bytes (RFC 9110
// 14.1.2: bytes=a-b, a-, -n): 200 for the whole (no header, or several
// ranges), 206 with [start, end], or 416.
export function byteRange(size, header) {
  const m = /^bytes=(\d*)-(\d*)$/.exec((header ?? '').trim());
  if (!m || (m[1] === '' && m[2] === '')) return { status: 200, start: 0, end: size - 1 };
  let start, end;
  if (m[1] === '') [start, end] = [Math.max(0, size - Number(m[2])), size - 1];
  else [start, end] = [Number(m[1]), m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)];
  if (start >= size || start > end) return { status: 416, start: 0, end: -1 };
  return { status: 206, start, end: Math.min(end, start + maxRangeBytes - 1) };
}

// rangeHeaders are the headers that go with a byteRange answer.
function rangeHeaders(r, size) {
  if (r.status === 206) return { 'accept-ranges': 'bytes', 'content-range': `bytes ${r.start}-${r.end}/${size}` };
  if (r.status === 416) return { 'accept-ranges': 'bytes', 'content-range': `bytes */${size}` };
  return { 'accept-ranges': 'bytes' };
}

// readRange reads a file, or the byte range a Range header asks for.
// null: not a readable regular file. A media element can seek only in a
// resource whose server answers Range requests (206), and reads a large
// one in parts.
export async function readRange(file, header) {
  let fh;
  try {
    fh = await open(file, 'r');
    const st = await fh.stat();
    if (!st.isFile()) return null;
    const r = byteRange(st.size, header);
    const body = Buffer.alloc(Math.max(0, r.end - r.start + 1));
    if (body.length) await fh.read(body, 0, body.length, r.start);
    return { status: r.status, body, headers: rangeHeaders(r, st.size) };
  } catch {
    return null;
  } finally {
    await fh?.close();
  }
}

// Refused is the answer for a request that nothing may answer: its reason
// names the way out.
export class Refused extends Error {}

// Fetcher asks the worker's fetcher, over the Unix socket it listens on
// outside the sandbox, for resources of other origins: it fetches only the
// origins the deployment allows (HELIOS_RENDER_ORIGINS) and refuses the
// rest with a reason. Responses are kept for the render (a font or a video
// is asked for many times).
export class Fetcher {
  constructor(socketPath) {
    this.socketPath = socketPath;
    this.kept = new Map(); // key -> promise of the response, oldest first
    this.sizes = new Map(); // key -> bytes, of the responses that came
    this.keptBytes = 0;
  }

  get(url, headers) {
    const key = `${url}\n${headers['user-agent'] ?? ''}\n${headers.accept ?? ''}`;
    if (!this.kept.has(key)) {
      const p = this.request(url, headers);
      p.then((res) => this.account(key, res.body.length), () => this.kept.delete(key)); // a failure is not kept
      this.kept.set(key, p);
    }
    return this.kept.get(key);
  }

  // account counts a response kept, and forgets the oldest beyond the cap.
  account(key, n) {
    this.sizes.set(key, n);
    this.keptBytes += n;
    for (const old of this.kept.keys()) {
      if (this.keptBytes <= maxKeptBytes) break;
      if (!this.sizes.has(old) || old === key) continue;
      this.keptBytes -= this.sizes.get(old);
      this.sizes.delete(old);
      this.kept.delete(old);
    }
  }

  request(url, headers) {
    return new Promise((resolve, reject) => {
      // Absolute-form request target, as to any forward proxy.
      const req = http.request({
        socketPath: this.socketPath, method: 'GET', path: url,
        headers: { 'user-agent': headers['user-agent'] ?? '', accept: headers.accept ?? '*/*' },
      }, (res) => {
        const chunks = [];
        let n = 0;
        res.on('data', (c) => {
          n += c.length;
          if (n > maxFetchedBytes) req.destroy(new Error(`more than ${maxFetchedBytes >> 20} MB`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          if (res.headers['x-helios-refused']) reject(new Refused(body.toString('utf8').trim()));
          else resolve({ status: res.statusCode, headers: res.headers, body });
        });
        res.on('error', reject);
      });
      req.on('error', (err) => reject(new Error(`the worker's fetcher: ${err.message}`)));
      req.end();
    });
  }
}

// Headers of a fetched response that go on to the page.
const passed = ['content-type', 'access-control-allow-origin', 'timing-allow-origin', 'cross-origin-resource-policy', 'last-modified', 'etag'];

// route answers every request of the page's context: the local origin from
// root; other http(s) origins from fetcher, when the worker gives one (the
// command itself has no network), else from the network. onRefused hears
// of every request that nothing would answer.
export async function route(context, { root, fetcher, onRefused }) {
  await context.route('**/*', async (r) => {
    const req = r.request();
    const url = req.url();
    if (url.startsWith(localOrigin + '/')) {
      const file = await localFile(root, new URL(url).pathname);
      const res = file && await readRange(file, req.headers().range);
      if (!res) return r.fulfill({ status: 404, body: 'not found' });
      const type = types[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
      return r.fulfill({ status: res.status, body: res.body, headers: { 'content-type': type, 'cache-control': 'no-store', ...res.headers } });
    }
    if (!fetcher || !/^https?:/.test(url)) return r.continue();
    try {
      const res = await fetcher.get(url, req.headers());
      const headers = Object.fromEntries(passed.filter((h) => res.headers[h] !== undefined).map((h) => [h, String(res.headers[h])]));
      if (res.status !== 200) return r.fulfill({ status: res.status, headers, body: res.body });
      // Ranges are cut here from the whole response, so media from any
      // origin can seek.
      const rg = byteRange(res.body.length, req.headers().range);
      return r.fulfill({ status: rg.status, headers: { ...headers, ...rangeHeaders(rg, res.body.length) }, body: res.body.subarray(rg.start, rg.end + 1) });
    } catch (err) {
      if (err instanceof Refused) onRefused(url, req.resourceType(), err.message);
      return r.abort(err instanceof Refused ? 'blockedbyclient' : 'failed');
    }
  });
}
