import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { audioGraph } from '../lib/audio.mjs';
import { rate } from '../lib/options.mjs';
import { short } from '../lib/problems.mjs';
import { byteRange, readRange } from '../lib/serve.mjs';

test('byte ranges as RFC 9110 reads them, so media can seek', async () => {
  for (const [header, want] of [
    [undefined, { status: 200, start: 0, end: 999 }],
    ['bytes=0-', { status: 206, start: 0, end: 999 }],
    ['bytes=100-199', { status: 206, start: 100, end: 199 }],
    ['bytes=900-5000', { status: 206, start: 900, end: 999 }],
    ['bytes=-100', { status: 206, start: 900, end: 999 }],
    ['bytes=1000-', { status: 416, start: 0, end: -1 }],
    ['bytes=0-1,5-6', { status: 200, start: 0, end: 999 }], // several ranges: the whole
    ['items=0-1', { status: 200, start: 0, end: 999 }],
  ]) {
    assert.deepEqual(byteRange(1000, header), want, header);
  }
  // The rest of a large file comes 8 MB at a time.
  assert.deepEqual(byteRange(100 << 20, 'bytes=4096-'), { status: 206, start: 4096, end: 4096 + (8 << 20) - 1 });
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'helios-range-')), 'clip.mp4');
  writeFileSync(file, Buffer.from('0123456789'));
  const r = await readRange(file, 'bytes=2-5');
  assert.equal(r.status, 206);
  assert.equal(r.body.toString(), '2345');
  assert.equal(r.headers['content-range'], 'bytes 2-5/10');
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal(await readRange(path.dirname(file), undefined), null); // a directory is not served
});

test('long values are shortened in messages', () => {
  assert.equal(short('clip.mp4'), 'clip.mp4');
  const uri = `data:audio/wav;base64,${'A'.repeat(5000)}`;
  assert.equal(short(uri), `${uri.slice(0, 100)}… (5022 characters)`);
});

test('a mono track plays at full level on both channels; stereo is left as it is', () => {
  const track = { offset: 0, seek: 0, fadeIn: 0, fadeOut: 0, volume: 1, loop: false, playbackRate: 1, duration: 1 };
  const at = { fps: rate('30'), startFrame: 0, frameCount: 30, totalFrames: 30 };
  const mono = audioGraph([{ ...track, source: 'm.wav', channels: 1 }], at);
  assert.match(mono.filter, /aresample=48000,pan=stereo\|c0=c0\|c1=c0,aformat=sample_fmts=fltp:channel_layouts=stereo/);
  const stereo = audioGraph([{ ...track, source: 's.wav', channels: 2 }], at);
  assert.doesNotMatch(stereo.filter, /pan=/);
});
