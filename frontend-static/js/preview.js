// Live preview of one stream: WebSocket /ws/frames?stream_id=<id> → header + JPEG → canvas.
//
// Envelope of each binary message: a 4-byte big-endian header length N, N bytes of UTF-8 JSON,
// then the JPEG bytes (empty when header.jpeg is false). Frames that arrive while one is being
// decoded replace each other: the canvas always shows the newest frame and never falls behind.

import { framesSocketUrl } from "./api.js";
import { socketProtocols } from "./auth.js";

const utf8 = new TextDecoder("utf-8");

/** Splits one binary message into its JSON header and its JPEG bytes; throws on a malformed one. */
export function parseEnvelope(buffer) {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < 4) throw new Error("frame too short");
  const headerLength = new DataView(buffer).getUint32(0, false);
  if (headerLength > buffer.byteLength - 4) throw new Error("frame header length out of range");
  const header = JSON.parse(utf8.decode(new Uint8Array(buffer, 4, headerLength)));
  const jpeg = new Uint8Array(buffer, 4 + headerLength);
  return { header, jpeg };
}

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
/** Frames come at PREVIEW_FPS (a few a second): a gap this long means they stopped. */
export const STALL_AFTER_MS = 3000;
const STALL_TICK_MS = 500;

/** The preview's words for a gap of `ms` since the last frame. */
export function stalledText(ms) {
  return `No frames for ${Math.floor(ms / 1000)} s (the worker is stopped, reconnecting or starting).`;
}

export class LivePreview {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onFrame?: Function, onState?: Function, overlay?: () => boolean}} hooks
   */
  constructor(canvas, hooks = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.hooks = hooks;
    this.streamId = null;
    this.socket = null;
    this.retryTimer = 0;
    this.retryDelay = BACKOFF_FIRST_MS;
    this.pending = null; // newest undecoded frame
    this.decoding = false;
    this.bitmap = null; // last decoded image, redrawn under vector-only frames
    this.shownTimes = [];
    this.generation = 0; // frames of an older socket or stream are dropped
    this.kind = "idle";
    this.lastFrameAt = 0; // performance.now() of the last frame drawn for this stream; 0: none yet
    this.stallTimer = 0;
    this.clear();
  }

  /** Shows `streamId` (or nothing for null); the socket is open only while there is one. */
  select(streamId) {
    if (streamId === this.streamId) return;
    this.streamId = streamId;
    this.disconnect();
    this.lastFrameAt = 0;
    this.resetImage();
    this.clear();
    if (!streamId) this.state("idle", "Select a stream to preview it.");
    else if (document.hidden) this.state("paused", "Preview paused while the page is hidden.");
    else this.connect();
  }

  /** Closes the socket while the page is hidden and reopens it when it is shown again. */
  setVisible(visible) {
    if (!visible) {
      this.disconnect();
      this.lastFrameAt = 0; // no frames while hidden is by choice: count again from the next one
      if (this.streamId) this.state("paused", "Preview paused while the page is hidden.");
    } else if (this.streamId && !this.socket) {
      this.retryDelay = BACKOFF_FIRST_MS;
      this.connect();
    }
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    const generation = ++this.generation;
    const streamId = this.streamId;
    let socket;
    try {
      socket = new WebSocket(framesSocketUrl(streamId), socketProtocols());
    } catch (e) {
      this.state("error", `Cannot open the live feed: ${e.message}`);
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.watchForStall();
    this.state("connecting", "Connecting to the live feed…");
    socket.onopen = () => {
      if (generation !== this.generation) return;
      this.state("waiting", "Connected; waiting for frames (is the stream active?).");
      // Frames were shown before (the socket was reopened): go on counting from the last one.
      this.checkStall();
    };
    socket.onmessage = (event) => {
      if (generation !== this.generation || !(event.data instanceof ArrayBuffer)) return;
      this.retryDelay = BACKOFF_FIRST_MS;
      this.pending = event.data;
      if (!this.decoding) this.drainFrames(generation);
    };
    socket.onclose = () => {
      if (generation !== this.generation) return;
      this.socket = null;
      if (!this.streamId || document.hidden) return;
      const delay = this.retryDelay * (0.75 + Math.random() * 0.5);
      this.retryDelay = Math.min(this.retryDelay * 2, BACKOFF_MAX_MS);
      this.state("reconnecting", `Live feed closed; reconnecting in ${(delay / 1000).toFixed(1)} s…`);
      this.retryTimer = setTimeout(() => {
        if (generation === this.generation && this.streamId && !document.hidden) this.connect();
      }, delay);
    };
  }

  /** Reconnects at once if the socket is down (after the stream was activated, say). */
  retryNow() {
    if (!this.streamId || this.socket || document.hidden) return;
    this.retryDelay = BACKOFF_FIRST_MS;
    this.connect();
  }

  /** While a socket is open, says "No frames for N s" (counting) once frames stop coming. */
  watchForStall() {
    if (this.stallTimer) return;
    this.stallTimer = setInterval(() => this.checkStall(), STALL_TICK_MS);
  }

  checkStall() {
    if (!this.socket || !this.lastFrameAt) return;
    if (this.kind !== "live" && this.kind !== "stalled" && this.kind !== "waiting") return;
    const gap = performance.now() - this.lastFrameAt;
    if (gap >= STALL_AFTER_MS) this.state("stalled", stalledText(gap));
  }

  disconnect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    clearInterval(this.stallTimer);
    this.stallTimer = 0;
    this.generation++;
    this.pending = null;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      if (socket.readyState === WebSocket.CONNECTING) {
        // Closing a socket that is still connecting makes the browser log an error: let it open first.
        socket.onopen = () => socket.close(1000);
      } else {
        socket.close(1000);
      }
    }
  }

  async drainFrames(generation) {
    this.decoding = true;
    try {
      while (this.pending && generation === this.generation) {
        const buffer = this.pending;
        this.pending = null;
        let frame;
        try {
          frame = parseEnvelope(buffer);
        } catch (e) {
          this.state("error", `Dropped a malformed frame: ${e.message}`);
          continue;
        }
        let bitmap = null;
        if (frame.header.jpeg && frame.jpeg.byteLength > 0) {
          try {
            // Decoded off the main thread by the browser.
            bitmap = await createImageBitmap(new Blob([frame.jpeg], { type: "image/jpeg" }));
          } catch (e) {
            this.state("error", `Could not decode a frame: ${e.message}`);
          }
        }
        if (generation !== this.generation) {
          if (bitmap) bitmap.close();
          break;
        }
        this.draw(frame.header, bitmap);
      }
    } finally {
      this.decoding = false;
    }
  }

  draw(header, bitmap) {
    if (bitmap) {
      if (this.bitmap) this.bitmap.close();
      this.bitmap = bitmap;
    }
    const width = Math.max(1, Number(header.preview_width) || (this.bitmap && this.bitmap.width) || Number(header.width) || 640);
    const height = Math.max(1, Number(header.preview_height) || (this.bitmap && this.bitmap.height) || Number(header.height) || 360);
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.canvas.style.aspectRatio = `${width} / ${height}`;
    }
    const ctx = this.ctx;
    if (this.bitmap) {
      ctx.drawImage(this.bitmap, 0, 0, width, height);
    } else {
      ctx.fillStyle = "#06090c";
      ctx.fillRect(0, 0, width, height);
    }
    const freshImage = Boolean(bitmap);
    if (!freshImage || (this.hooks.overlay && this.hooks.overlay())) this.drawVectors(header, width, height);

    const now = performance.now();
    this.shownTimes.push(now);
    while (this.shownTimes.length && now - this.shownTimes[0] > 2000) this.shownTimes.shift();
    const span = (now - this.shownTimes[0]) / 1000;
    const shownFps = this.shownTimes.length > 1 && span > 0 ? (this.shownTimes.length - 1) / span : NaN;
    const latencyMs = Number.isFinite(header.captured_at) ? Date.now() - header.captured_at * 1000 : NaN;
    this.lastFrameAt = now;
    this.state("live", `Live: ${header.stream_name || header.stream_id || ""}`);
    if (this.hooks.onFrame) this.hooks.onFrame(header, { shownFps, latencyMs });
  }

  drawVectors(header, width, height) {
    const vectors = Array.isArray(header.vectors) ? header.vectors : [];
    if (!vectors.length) return;
    const sx = width / (Number(header.width) || width);
    const sy = height / (Number(header.height) || height);
    const ctx = this.ctx;
    ctx.strokeStyle = "#3ecf8e";
    ctx.fillStyle = "#ff8a4c";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (const v of vectors) {
      const x = v[0] * sx;
      const y = v[1] * sy;
      ctx.moveTo(x, y);
      ctx.lineTo(x + v[2] * sx, y + v[3] * sy);
    }
    ctx.stroke();
    for (const v of vectors) ctx.fillRect(v[0] * sx - 1, v[1] * sy - 1, 2, 2);
  }

  resetImage() {
    if (this.bitmap) this.bitmap.close();
    this.bitmap = null;
    this.shownTimes = [];
  }

  clear() {
    this.ctx.fillStyle = "#06090c";
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  state(kind, text) {
    this.kind = kind;
    if (this.hooks.onState) this.hooks.onState(kind, text);
  }
}
