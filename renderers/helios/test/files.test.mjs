import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ffmpegArgs } from '../lib/encode.mjs';
import { parse } from '../lib/options.mjs';
import { localFile } from '../lib/serve.mjs';

test('the page and ffmpeg read only files of the assets', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'helios-files-'));
  const root = path.join(dir, 'work');
  mkdirSync(path.join(root, 'dom'), { recursive: true });
  writeFileSync(path.join(root, 'dom', 'bed.flac'), 'x');
  writeFileSync(path.join(dir, 'secret'), 'x');
  symlinkSync(path.join(dir, 'secret'), path.join(root, 'dom', 'link'));
  assert.equal(await localFile(root, '/dom/bed.flac'), path.join(root, 'dom', 'bed.flac'));
  for (const p of ['/../secret', '/dom/..%2f..%2fsecret', '/dom/link', '/missing.flac']) {
    assert.equal(await localFile(root, p), null, p);
  }
});

test('ffmpeg reads PNG frames at the exact rate and writes a fragmented, lossless segment', () => {
  const o = parse(['c.html', '-o', 'part_0.mov', '--fps', '30000/1001', '--quality', '0']);
  const args = ffmpegArgs(o, null, '.part_0.mov.partial');
  const at = (flag) => args[args.indexOf(flag) + 1];
  assert.equal(at('-framerate'), '30000/1001');
  assert.equal(at('-crf'), '0');
  assert.equal(at('-movflags'), '+frag_keyframe+empty_moov+default_base_moof');
  assert.equal(at('-f'), 'image2pipe');
  assert.ok(args.includes('-an'));
  assert.deepEqual(args.slice(-3), ['-f', 'mov', '.part_0.mov.partial']);
  const x265 = ffmpegArgs(parse(['c.html', '-o', 'p.mkv', '--video-codec', 'libx265']), null, 'p');
  assert.equal(x265[x265.indexOf('-x265-params') + 1], 'lossless=1');
});
