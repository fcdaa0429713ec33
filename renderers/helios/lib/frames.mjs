// The page a composition renders in, and how its frames are drawn.
//
// In a headless shell the page has begin-frame control: Chromium draws
// nothing until the renderer calls HeadlessExperimental.beginFrame, which
// runs the page's animation frame callbacks, paints, rasters every tile and
// draws, all before it returns (with a screenshot, if asked). A frame then
// costs what the page costs, not a wait for the next vsync, and the number
// of animation frames between two captures is always the same. A full
// Chromium has no such control: frames come at its own pace, and the
// renderer waits for animation frames instead.

// openPage opens a page of the given size in a new browser context.
export async function openPage(browser, described, viewport) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  if (!described.frameControl) {
    const page = await context.newPage();
    return { context, page, frames: new PacedFrames(page, await context.newCDPSession(page)) };
  }
  // Playwright opens pages without begin-frame control: open one with it in
  // the same browser context (found from a first page, which then closes),
  // and Playwright attaches to it as to any other page of the context.
  const first = await context.newPage();
  const { targetInfo } = await (await context.newCDPSession(first)).send('Target.getTargetInfo');
  const session = await browser.newBrowserCDPSession();
  try {
    const opened = context.waitForEvent('page', { timeout: 30_000 });
    await session.send('Target.createTarget', { url: 'about:blank', browserContextId: targetInfo.browserContextId, enableBeginFrameControl: true });
    const page = await opened;
    await first.close();
    return { context, page, frames: new ControlledFrames(page, await context.newCDPSession(page)) };
  } finally {
    await session.detach().catch(() => {});
  }
}

// ControlledFrames draws frames on request (begin-frame control).
class ControlledFrames {
  constructor(page, cdp) {
    this.page = page;
    this.cdp = cdp;
    this.pumping = null;
  }

  // pump draws a frame every 16 ms until stop: while the page loads and
  // gets ready it may wait for animation frames, as in a browser.
  pump() {
    let on = true;
    const loop = (async () => {
      while (on) {
        try {
          await this.cdp.send('HeadlessExperimental.beginFrame', {});
        } catch {
          if (this.page.isClosed()) return; // the browser went away
        }
        await new Promise((r) => setTimeout(r, 16));
      }
    })();
    this.pumping = async () => { on = false; await loop; };
  }

  // stop ends the pump, waiting at most ms for the frame it drew last.
  async stop(ms = 30_000) {
    const pumping = this.pumping;
    this.pumping = null;
    if (!pumping) return;
    let timer;
    await Promise.race([pumping(), new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`a frame took more than ${ms / 1000}s to draw`)), ms); })])
      .finally(() => clearTimeout(timer));
  }

  // draw runs the page's animation frame callbacks and draws a frame.
  async draw() {
    await this.cdp.send('HeadlessExperimental.beginFrame', {});
  }

  // capture draws a frame and returns it as PNG, or null when the frame
  // changed nothing (Chromium screenshots only a frame with damage).
  async capture() {
    const { hasDamage, screenshotData } = await this.cdp.send('HeadlessExperimental.beginFrame', { screenshot: { format: 'png', optimizeForSpeed: true } });
    if (screenshotData) return Buffer.from(screenshotData, 'base64');
    if (hasDamage) throw new Error('Chromium drew the frame but returned no screenshot');
    return null;
  }
}

// PacedFrames waits for the frames a full Chromium draws at its own pace.
class PacedFrames {
  constructor(page, cdp) {
    this.page = page;
    this.cdp = cdp;
  }

  pump() {}

  async stop() {}

  async draw() {
    await this.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
  }

  async capture() {
    const { data } = await this.cdp.send('Page.captureScreenshot', { format: 'png', optimizeForSpeed: true });
    return Buffer.from(data, 'base64');
  }
}

// freshCapture captures the viewport with every layer made afresh.
// Skipping the body's content for one frame (content-visibility: hidden,
// from a style sheet the page does not see) removes the compositor's layers
// of everything in it, so the next frame rasters each layer at the scale
// and offset it has now. Without that a layer's pixels depend on the frames
// before it (Chromium keeps a moving or scaling layer's raster scale and
// older tilings), and a chunk that starts in the middle of an animation
// would differ from a render in one pass. A page with videos gets one
// frame more for their new layers to take their pictures: a video layer
// shows nothing in the frame that makes it.
export async function freshCapture(page, frames, hasVideos) {
  await page.evaluate(() => window.__heliosRenderer.flush(true));
  await frames.draw();
  await page.evaluate(() => window.__heliosRenderer.flush(false));
  if (hasVideos) await frames.draw();
  const png = await frames.capture();
  if (png) return png;
  // Nothing changed since the frame before (a body that paints nothing
  // visible; videos that showed their pictures already), and Chromium
  // screenshots only a frame that changed something: cover the viewport
  // for a frame, and capture the one after it.
  await page.evaluate(() => window.__heliosRenderer.cover(true));
  await frames.draw();
  await page.evaluate(() => window.__heliosRenderer.cover(false));
  const again = await frames.capture();
  if (!again) throw new Error('Chromium returned no screenshot of a frame that changed');
  return again;
}
