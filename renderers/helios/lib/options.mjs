// The chunk command line of `helios render`, as `helios render --emit-job`
// writes it into job specs, parsed and checked before anything starts.
import { parseArgs } from 'node:util';
import path from 'node:path';

export class UsageError extends Error {}

export const usage = `usage: helios render COMPOSITION -o OUTPUT [options]

Renders frames [start, start+count) of a Helios composition in headless
Chromium and encodes them with the system ffmpeg.

  COMPOSITION            an HTML file under the current directory (the job's
                         assets) or an https:// URL
  -o, --output FILE      the video to write (.mov, .mp4, .m4v, .mkv, .webm)
  --start-frame N        first frame (default 0)
  --frame-count N        frames to render (default: to the composition's end)
  --width W, --height H  viewport and video size (default 1920x1080)
  --fps F                frame rate: 30, 29.97 or 30000/1001 (default 30)
  --quality Q            encoder quality, the codec's CRF (0 = lossless; default 0)
  --mode canvas|dom      capture the composition's <canvas> or the whole page (default canvas)
  --canvas-selector SEL  the canvas to capture in canvas mode (default "canvas")
  --video-codec C        ffmpeg video encoder (default libx264)
  --audio-codec C        ffmpeg audio encoder (default: lossless for the container)
  --timeout SECONDS      how long the composition may take to become ready,
                         and to settle on any one frame (default 30)
`;

const videoCodecs = new Set(['libx264', 'libx265', 'libvpx', 'libvpx-vp9', 'libaom-av1', 'prores_ks', 'ffv1', 'png', 'qtrle']);
const audioCodecs = new Set(['pcm_s16le', 'pcm_s24le', 'flac', 'alac', 'aac', 'libopus', 'libvorbis']);
const containers = new Set(['.mov', '.mp4', '.m4v', '.mkv', '.webm']);

// Lossless audio per container, so that a chunk's audio can be cut and
// joined without an encoder's priming at every boundary; webm has no
// lossless audio codec, and its Opus chunks do not join sample-exact.
const defaultAudio = { '.mov': 'pcm_s16le', '.mp4': 'alac', '.m4v': 'alac', '.mkv': 'flac', '.webm': 'libopus' };

export function parse(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        output: { type: 'string', short: 'o' },
        'start-frame': { type: 'string' },
        'frame-count': { type: 'string' },
        width: { type: 'string' },
        height: { type: 'string' },
        fps: { type: 'string' },
        quality: { type: 'string' },
        mode: { type: 'string' },
        'canvas-selector': { type: 'string' },
        'video-codec': { type: 'string' },
        'audio-codec': { type: 'string' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(err.message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) return { help: true };
  if (positionals.length !== 1) {
    throw new UsageError(`expected one composition (an HTML file or https URL), got ${positionals.length ? positionals.map((p) => JSON.stringify(p)).join(' ') : 'none'}`);
  }
  if (!v.output) throw new UsageError('-o OUTPUT is required');
  const opts = {
    composition: composition(positionals[0]),
    output: output(v.output),
    startFrame: integer('--start-frame', v['start-frame'] ?? '0', 0),
    frameCount: v['frame-count'] === undefined ? undefined : integer('--frame-count', v['frame-count'], 1),
    width: integer('--width', v.width ?? '1920', 1, 16384),
    height: integer('--height', v.height ?? '1080', 1, 16384),
    fps: rate(v.fps ?? '30'),
    quality: integer('--quality', v.quality ?? '0', 0, 63),
    mode: oneOf('--mode', v.mode ?? 'canvas', ['canvas', 'dom']),
    canvasSelector: v['canvas-selector'] ?? 'canvas',
    videoCodec: oneOf('--video-codec', v['video-codec'] ?? 'libx264', [...videoCodecs]),
    timeoutMs: integer('--timeout', v.timeout ?? '30', 1, 3600) * 1000,
  };
  const ext = path.extname(opts.output).toLowerCase();
  opts.audioCodec = oneOf('--audio-codec', v['audio-codec'] ?? defaultAudio[ext], [...audioCodecs]);
  if (['libx264', 'libx265'].includes(opts.videoCodec) && opts.quality > 51) {
    throw new UsageError(`--quality ${opts.quality}: ${opts.videoCodec} takes 0 (lossless) to 51`);
  }
  if ((opts.width % 2 || opts.height % 2) && ['libx264', 'libx265'].includes(opts.videoCodec)) {
    throw new UsageError(`--width ${opts.width} --height ${opts.height}: ${opts.videoCodec} needs even sides`);
  }
  return opts;
}

function composition(arg) {
  if (/^https:\/\//i.test(arg)) {
    try {
      return { url: new URL(arg).href };
    } catch {
      throw new UsageError(`composition ${JSON.stringify(arg)} is not a valid URL`);
    }
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(arg)) {
    throw new UsageError(`composition ${JSON.stringify(arg)}: only https:// URLs or files under the current directory are allowed`);
  }
  return { file: insideCwd('composition', arg) };
}

function output(file) {
  const ext = path.extname(file).toLowerCase();
  if (!containers.has(ext)) {
    throw new UsageError(`-o ${JSON.stringify(file)}: the container must be one of ${[...containers].join(' ')}`);
  }
  return file;
}

// insideCwd refuses absolute paths and paths that climb out of the working
// directory: the composition is served from there, and only from there.
function insideCwd(flag, arg) {
  const rel = path.normalize(arg);
  if (path.isAbsolute(arg) || rel === '..' || rel.startsWith('..' + path.sep) || rel === '.') {
    throw new UsageError(`${flag} ${JSON.stringify(arg)} must be a relative path inside the current directory`);
  }
  return rel;
}

function integer(flag, s, min, max = Number.MAX_SAFE_INTEGER) {
  if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) {
    throw new UsageError(`${flag} ${JSON.stringify(s)} must be a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? '' : ` to ${max}`}`);
  }
  return Number(s);
}

function oneOf(flag, s, allowed) {
  if (!allowed.includes(s)) throw new UsageError(`${flag} ${JSON.stringify(s)} must be one of ${allowed.join(', ')}`);
  return s;
}

// rate reads a frame rate exactly: "30", "30000/1001", or a decimal, where
// 23.976, 29.97 and 59.94 mean their NTSC fractions (as ffmpeg and the
// job spec take them).
export function rate(s) {
  const bad = () => new UsageError(`--fps ${JSON.stringify(s)} must be a positive rate such as 30, 29.97 or 30000/1001`);
  let num, den;
  const m = /^(\d+)\/(\d+)$/.exec(s);
  if (m) {
    [num, den] = [Number(m[1]), Number(m[2])];
  } else if (/^\d+(\.\d+)?$/.test(s)) {
    // Within pkg/framerate's tolerance of an NTSC rate, it is that rate.
    const ntsc = [[24000, 1001], [30000, 1001], [60000, 1001]].find(([n, d]) => Math.abs(Number(s) - n / d) < 0.005);
    if (ntsc) [num, den] = ntsc;
    else {
      const [whole, frac = ''] = s.split('.');
      den = 10 ** frac.length;
      num = Number(whole) * den + Number(frac || 0);
    }
  } else {
    throw bad();
  }
  if (!(num > 0 && den > 0) || num / den > 1000) throw bad();
  const g = gcd(num, den);
  return { num: num / g, den: den / g, toString() { return this.den === 1 ? `${this.num}` : `${this.num}/${this.den}`; } };
}

function gcd(a, b) {
  return b ? gcd(b, a % b) : a;
}

// frameMs is frame f's composition time in ms, the same number for the same
// frame in every chunk.
export const frameMs = (fps, f) => (f * fps.den * 1000) / fps.num;

// sampleAt is the audio sample at frame f's start, round half up, as the
// worker and stitcher compute it (pkg/framerate.SampleAt).
export const sampleAt = (fps, f, sampleRate) => Math.floor((2 * f * sampleRate * fps.den + fps.num) / (2 * fps.num));
