// The system ffmpeg, fed PNG frames on stdin.
import { spawn } from 'node:child_process';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';

const muxers = { '.mov': 'mov', '.mp4': 'mp4', '.m4v': 'mp4', '.mkv': 'matroska', '.webm': 'webm' };

export function ffmpegArgs(opts, audio, partial) {
  const ext = path.extname(opts.output).toLowerCase();
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y',
    '-f', 'image2pipe', '-c:v', 'png', '-framerate', `${opts.fps}`, '-i', 'pipe:0'];
  if (audio) args.push(...audio.inputs, '-filter_complex', audio.filter);
  args.push('-map', '0:v', '-vf', `scale=${opts.width}:${opts.height}`, ...videoCodec(opts));
  if (audio) args.push('-map', audio.map, '-c:a', opts.audioCodec, '-ar', '48000', '-ac', '2');
  else args.push('-an');
  // Fragmented MP4: the worker then places the segment on the job's
  // timeline without another ffmpeg pass.
  if (['mov', 'mp4'].includes(muxers[ext])) args.push('-movflags', '+frag_keyframe+empty_moov+default_base_moof');
  args.push('-f', muxers[ext], partial);
  return args;
}

function videoCodec({ videoCodec: c, quality: q }) {
  switch (c) {
    case 'libx264':
    case 'libx265':
      // CRF 0 is lossless (after the conversion to 4:2:0, which browsers
      // play); then the fastest preset, as quality no longer depends on it.
      return ['-c:v', c, '-crf', `${q}`, '-preset', q === 0 ? 'ultrafast' : 'veryfast', '-pix_fmt', 'yuv420p',
        ...(q === 0 && c === 'libx265' ? ['-x265-params', 'lossless=1'] : [])];
    case 'libvpx':
    case 'libvpx-vp9':
      return ['-c:v', c, '-crf', `${q}`, '-b:v', '0', ...(q === 0 && c === 'libvpx-vp9' ? ['-lossless', '1'] : []), '-pix_fmt', 'yuv420p'];
    case 'libaom-av1':
      return ['-c:v', c, '-crf', `${q}`, '-cpu-used', '8', '-pix_fmt', 'yuv420p'];
    default:
      return ['-c:v', c];
  }
}

// Encoder writes to a hidden partial file and renames it to the output only
// when ffmpeg succeeded: a failed chunk leaves no half-written video.
export class Encoder {
  constructor(opts, audio) {
    this.output = opts.output;
    this.partial = path.join(path.dirname(opts.output), `.${path.basename(opts.output)}.partial`);
    this.stderr = '';
    this.proc = spawn('ffmpeg', ffmpegArgs(opts, audio, this.partial), { stdio: ['pipe', 'ignore', 'pipe'] });
    this.proc.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-4000); });
    this.exited = new Promise((resolve) => {
      this.proc.on('error', (err) => resolve({ err }));
      this.proc.on('close', (code, signal) => resolve({ code, signal }));
    });
    this.proc.stdin.on('error', () => {}); // reported through exited
  }

  async write(png) {
    if (this.proc.stdin.write(png)) return;
    const r = await Promise.race([new Promise((res) => this.proc.stdin.once('drain', () => res('drain'))), this.exited]);
    if (r !== 'drain') throw this.failure(r);
  }

  async finish() {
    this.proc.stdin.end();
    const r = await this.exited;
    if (r.err || r.code !== 0) {
      await rm(this.partial, { force: true });
      throw this.failure(r);
    }
    await rename(this.partial, this.output);
  }

  async abort() {
    this.proc.kill('SIGKILL');
    await this.exited;
    await rm(this.partial, { force: true });
  }

  failure(r) {
    if (r.err) return new Error(`ffmpeg could not run: ${r.err.message}`);
    return new Error(`ffmpeg exited with ${r.signal ?? `status ${r.code}`}: ${this.stderr.trim() || 'no message'}`);
  }
}
