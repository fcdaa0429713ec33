// A canvas composition written as the Helios examples are: a Helios
// instance bound to the document timeline, exposed as window.helios, and a
// draw function of the current frame.
import { Helios, interpolate, spring } from '@helios-project/core';

const fps = 30;
const duration = 3; // seconds: 90 frames

const helios = new Helios({ fps, duration });
helios.bindToDocumentTimeline();
window.helios = helios;

const canvas = document.getElementById('stage');
const ctx = canvas.getContext('2d');

function resize() {
  canvas.width = window.innerWidth;
  canvas.height = window.innerHeight;
}
resize();
window.addEventListener('resize', resize);

function draw(frame) {
  const { width: w, height: h } = canvas;
  const hue = interpolate(frame, [0, fps * duration], [200, 320]);
  const bg = ctx.createLinearGradient(0, 0, w, h);
  bg.addColorStop(0, `hsl(${hue}, 70%, 18%)`);
  bg.addColorStop(1, `hsl(${hue + 40}, 70%, 8%)`);
  ctx.fillStyle = bg;
  ctx.fillRect(0, 0, w, h);

  // A ball that springs in, then orbits.
  const enter = spring({ frame, fps, from: 0, to: 1, config: { stiffness: 80, damping: 12 } });
  const angle = (frame / fps) * Math.PI;
  const r = Math.min(w, h) * 0.3 * enter;
  ctx.fillStyle = '#ffd166';
  ctx.beginPath();
  ctx.arc(w / 2 + Math.cos(angle) * r, h / 2 + Math.sin(angle) * r, Math.min(w, h) * 0.08, 0, Math.PI * 2);
  ctx.fill();

  // The frame number, so a wrong frame is easy to see.
  ctx.fillStyle = '#fff';
  ctx.font = `${Math.round(h * 0.08)}px sans-serif`;
  ctx.fillText(`frame ${Math.round(frame)}`, w * 0.05, h * 0.92);
}

helios.subscribe((state) => draw(state.currentFrame));
