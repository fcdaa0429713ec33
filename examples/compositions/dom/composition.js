// A DOM composition written as the Helios examples are: CSS animations kept
// in step by autoSyncAnimations, elements set from the current frame, the
// instance bound to the document timeline and exposed as window.helios.
import { Helios, interpolate } from '@helios-project/core';

const fps = 30;
const duration = 3; // seconds: 90 frames

const helios = new Helios({ fps, duration, autoSyncAnimations: true });
helios.bindToDocumentTimeline();
window.helios = helios;

const fill = document.getElementById('fill');
const counter = document.getElementById('counter');

helios.subscribe(({ currentFrame }) => {
  const progress = interpolate(currentFrame, [0, fps * duration - 1], [0, 100], { extrapolateRight: 'clamp' });
  fill.style.width = `${progress}%`;
  counter.textContent = `${Math.round(currentFrame)} / ${fps * duration}`;
});
