import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audioGraph } from '../lib/audio.mjs';
import { parse, rate, sampleAt, UsageError } from '../lib/options.mjs';

const base = ['comp.html', '-o', 'part_1.mov'];

test('the chunk command line that --emit-job writes', () => {
  const o = parse(['comp.html', '-o', 'part_1.mov', '--start-frame', '30', '--frame-count', '30', '--width', '320',
    '--height', '240', '--fps', '30', '--quality', '0', '--mode', 'canvas', '--audio-codec', 'pcm_s16le']);
  assert.equal(o.composition.file, 'comp.html');
  assert.equal(o.startFrame, 30);
  assert.equal(o.frameCount, 30);
  assert.equal(`${o.fps}`, '30');
  assert.equal(o.audioCodec, 'pcm_s16le');
});

test('frame rates are exact', () => {
  for (const [s, want] of [['30', '30'], ['30000/1001', '30000/1001'], ['29.97', '30000/1001'], ['23.976', '24000/1001'], ['12.5', '25/2'], ['60/2', '30']]) {
    assert.equal(`${rate(s)}`, want, s);
  }
  for (const s of ['0', '-30', 'abc', '30/0', '1e3', '2000']) assert.throws(() => rate(s), UsageError, s);
});

test('the audio grid matches pkg/framerate.SampleAt', () => {
  assert.equal(sampleAt(rate('30'), 7, 48000), 11200);
  assert.equal(sampleAt(rate('30000/1001'), 1, 48000), 1602); // 1601.6 rounds up
  assert.equal(sampleAt(rate('30000/1001'), 2, 48000), 3203); // 3203.2 rounds down
});

test('bad input names the flag and what it expects', () => {
  for (const [args, msg] of [
    [['comp.html'], /-o OUTPUT is required/],
    [[], /expected one composition/],
    [['../secret.html', '-o', 'x.mov'], /composition "..\/secret.html" must be a relative path inside the current directory/],
    [['/etc/x.html', '-o', 'x.mov'], /must be a relative path/],
    [['file:///etc/x.html', '-o', 'x.mov'], /only https:\/\/ URLs/],
    [[...base, '--mode', 'webgl'], /--mode "webgl" must be one of canvas, dom/],
    [[...base, '--start-frame', '-1'], /--start-frame/],
    [[...base, '--frame-count', '0'], /--frame-count "0" must be a whole number from 1/],
    [['comp.html', '-o', 'x.gif'], /the container must be one of/],
    [[...base, '--width', '321'], /needs even sides/],
    [[...base, '--bogus'], /Unknown option '--bogus'/],
  ]) {
    assert.throws(() => parse(args), (err) => err instanceof UsageError && msg.test(err.message), args.join(' '));
  }
});

test('each chunk mixes the whole timeline and keeps only its samples', () => {
  const tracks = [
    { source: 'bed.flac', offset: 0, seek: 0, fadeIn: 0.5, fadeOut: 0, volume: 1, loop: false, playbackRate: 1, duration: 3 },
    { source: 'chime.flac', offset: 1.5, seek: 0.25, fadeIn: 0, fadeOut: 0.4, volume: 0.5, loop: false, playbackRate: 1, duration: 1.2 },
    { source: 'muted.flac', offset: 0, seek: 0, fadeIn: 0, fadeOut: 0, volume: 0, loop: false, playbackRate: 1, duration: 3 },
  ];
  const g = audioGraph(tracks, { fps: rate('30'), startFrame: 7, frameCount: 25, totalFrames: 90 });
  assert.deepEqual(g.inputs, ['-i', 'bed.flac', '-i', 'chime.flac']); // the muted track is left out
  assert.match(g.filter, /afade=t=in:ss=0:ns=24000/);
  assert.match(g.filter, /atrim=start_sample=12000,asetpts=N\/SR\/TB/); // seek 0.25 s
  assert.match(g.filter, /adelay=delays=72000S:all=1/); // offset 1.5 s
  assert.match(g.filter, /afade=t=out:ss=98400:ns=19200/); // the clip ends at 1.5 + 0.95 s
  assert.match(g.filter, /amix=inputs=2:duration=longest:normalize=0/);
  assert.match(g.filter, /atrim=start_sample=11200:end_sample=51200/);
  assert.equal(audioGraph([], { fps: rate('30'), startFrame: 0, frameCount: 1, totalFrames: 1 }), null);
});

test('Chromium starts with fixed flags: no extension, no profile from the job, nothing a composition adds', async () => {
  const { launchArgs } = await import('../lib/browser.mjs');
  for (const described of [{ frameControl: true }, { frameControl: false }]) {
    const args = launchArgs(described);
    assert.ok(args.includes('--disable-extensions'));
    for (const a of args) {
      assert.doesNotMatch(a, /^--(user-data-dir|load-extension|remote-debugging|proxy-server|js-flags|renderer-cmd-prefix|utility-cmd-prefix|gpu-launcher)/, a);
    }
  }
  // The command line has no way to pass Chromium a flag.
  assert.throws(() => parse(['c.html', '-o', 'x.mov', '--chromium-flags', '--load-extension=./x']), UsageError);
});
