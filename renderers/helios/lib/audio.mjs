// The composition's audio for one chunk, as ffmpeg inputs and a filtergraph.
//
// Every track is laid on the composition's timeline from its start (seek,
// tempo, offset, fades, volume, all in samples) and the mix is cut to the
// chunk's samples only at the end: a chunk's audio is then exactly its
// share of the one-pass mix, whatever the chunk boundaries. Decoding from
// the start costs little for audio; seeking the input instead would make
// each chunk's samples depend on where the decoder landed.
import { sampleAt } from './options.mjs';

export const sampleRate = 48000;

// Track attributes as Helios documents them on <audio> and <video>:
// data-helios-offset (s on the timeline), data-helios-seek (s into the
// file), data-helios-fade-in / -fade-out (s), volume, muted, loop,
// playbackRate; and the source's channel count.
export function audioGraph(tracks, { fps, startFrame, frameCount, totalFrames }) {
  const s0 = sampleAt(fps, startFrame, sampleRate);
  const s1 = sampleAt(fps, startFrame + frameCount, sampleRate);
  const end = sampleAt(fps, totalFrames, sampleRate);
  const inputs = [];
  const chains = [];
  tracks = tracks.filter((t) => t.volume > 0);
  if (tracks.length === 0) return null;
  tracks.forEach((t, i) => {
    if (t.loop) inputs.push('-stream_loop', '-1');
    inputs.push('-i', t.source);
    // A mono track plays at full level on both channels, as a browser
    // plays it (ffmpeg's own upmix would put it 3 dB lower).
    const f = [`aresample=${sampleRate}`, ...(t.channels === 1 ? ['pan=stereo|c0=c0|c1=c0'] : []), 'aformat=sample_fmts=fltp:channel_layouts=stereo'];
    const seek = samples(t.seek);
    if (seek > 0) f.push(`atrim=start_sample=${seek}`, 'asetpts=N/SR/TB');
    f.push(...tempo(t.playbackRate));
    const delay = samples(t.offset);
    if (delay > 0) f.push(`adelay=delays=${delay}S:all=1`);
    if (t.fadeIn > 0) f.push(`afade=t=in:ss=${delay}:ns=${Math.max(1, samples(t.fadeIn))}`);
    if (t.fadeOut > 0) {
      const n = Math.max(1, samples(t.fadeOut));
      // A clip fades out before its own end; a looping or endless one
      // before the composition's.
      const clipEnd = !t.loop && t.duration > 0 ? delay + samples((t.duration - t.seek) / t.playbackRate) : end;
      f.push(`afade=t=out:ss=${Math.max(0, Math.min(clipEnd, end) - n)}:ns=${n}`);
    }
    if (t.volume !== 1) f.push(`volume=${t.volume}`);
    chains.push(`[${i + 1}:a]${f.join(',')}[a${i}]`);
  });
  const mixed = tracks.length === 1 ? '[a0]' : '[mix]';
  if (tracks.length > 1) {
    chains.push(`${tracks.map((_, i) => `[a${i}]`).join('')}amix=inputs=${tracks.length}:duration=longest:normalize=0[mix]`);
  }
  chains.push(`${mixed}apad,atrim=start_sample=${s0}:end_sample=${s1},asetpts=N/SR/TB[aout]`);
  return { inputs, filter: chains.join(';'), map: '[aout]' };
}

const samples = (seconds) => Math.round((seconds || 0) * sampleRate);

// atempo takes 0.5–2 per instance; a wider rate is a chain.
function tempo(rate) {
  if (!(rate > 0) || rate === 1) return [];
  const out = [];
  let r = rate;
  while (r > 2) { out.push('atempo=2'); r /= 2; }
  while (r < 0.5) { out.push('atempo=0.5'); r /= 0.5; }
  if (r !== 1) out.push(`atempo=${r}`);
  return out;
}
