// Live chart on a plain canvas: magnitude avg and max (left axis, px) and vector count (right
// axis) over a sliding window. Samples come from the frames; drawing is throttled to a few
// times a second, so a fast stream costs one array push per frame.

const WINDOW_MS = 3 * 60 * 1000;
const REDRAW_MS = 250;

export class FlowChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.samples = []; // {t, avg, max, count}
    this.lastDraw = 0;
    this.scheduled = false;
    const style = getComputedStyle(document.documentElement);
    this.colors = {
      avg: style.getPropertyValue("--avg").trim() || "#3fa7ff",
      max: style.getPropertyValue("--max").trim() || "#ff8a4c",
      count: style.getPropertyValue("--count").trim() || "#3ecf8e",
      grid: "#2b3643",
      text: "#93a1b0",
    };
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => this.draw()).observe(canvas);
    }
    this.draw();
  }

  reset() {
    this.samples = [];
    this.draw();
  }

  add(stats) {
    if (!stats) return;
    const now = Date.now();
    this.samples.push({
      t: now,
      avg: Number(stats.magnitude_avg) || 0,
      max: Number(stats.magnitude_max) || 0,
      count: Number(stats.vector_count) || 0,
    });
    while (this.samples.length && now - this.samples[0].t > WINDOW_MS) this.samples.shift();
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    const wait = Math.max(0, REDRAW_MS - (performance.now() - this.lastDraw));
    setTimeout(() => requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    }), wait);
  }

  draw() {
    this.lastDraw = performance.now();
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = canvas.clientWidth || 300;
    const cssHeight = canvas.clientHeight || 150;
    if (canvas.width !== Math.round(cssWidth * ratio) || canvas.height !== Math.round(cssHeight * ratio)) {
      canvas.width = Math.round(cssWidth * ratio);
      canvas.height = Math.round(cssHeight * ratio);
    }
    const ctx = this.ctx;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);
    const left = 40, right = 44, top = 10, bottom = 20;
    const plotW = Math.max(10, cssWidth - left - right);
    const plotH = Math.max(10, cssHeight - top - bottom);
    const now = Date.now();
    const t0 = now - WINDOW_MS;
    let magMax = 1, countMax = 10;
    for (const s of this.samples) {
      if (s.max > magMax) magMax = s.max;
      if (s.avg > magMax) magMax = s.avg;
      if (s.count > countMax) countMax = s.count;
    }
    magMax = niceCeil(magMax);
    countMax = niceCeil(countMax);

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = this.colors.grid;
    ctx.fillStyle = this.colors.text;
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + plotW, y);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillText(formatTick((magMax * i) / 4), left - 5, y + 4);
      ctx.textAlign = "left";
      ctx.fillText(formatTick((countMax * i) / 4), left + plotW + 5, y + 4);
    }
    ctx.textAlign = "center";
    for (let m = 0; m <= 3; m++) {
      const x = left + plotW - (plotW * m * 60000) / WINDOW_MS;
      ctx.fillText(m === 0 ? "now" : `-${m} min`, Math.min(Math.max(x, left + 14), left + plotW - 10), top + plotH + 15);
    }
    if (!this.samples.length) {
      ctx.fillText("no frames yet", left + plotW / 2, top + plotH / 2);
      return;
    }
    const xOf = (t) => left + ((t - t0) / WINDOW_MS) * plotW;
    this.line((s) => s.count / countMax, this.colors.count, xOf, top, plotH);
    this.line((s) => s.max / magMax, this.colors.max, xOf, top, plotH);
    this.line((s) => s.avg / magMax, this.colors.avg, xOf, top, plotH);
  }

  line(valueOf, color, xOf, top, plotH) {
    const ctx = this.ctx;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    // One point per horizontal pixel at most: a 3-minute window at 30 fps would be 5400 segments.
    let lastX = -Infinity;
    let first = true;
    for (const s of this.samples) {
      const x = xOf(s.t);
      if (x - lastX < 1 && s !== this.samples[this.samples.length - 1]) continue;
      lastX = x;
      const y = top + plotH - Math.min(1, Math.max(0, valueOf(s))) * plotH;
      if (first) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
      first = false;
    }
    ctx.stroke();
  }
}

function niceCeil(value) {
  if (value <= 0) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function formatTick(value) {
  if (value >= 1000) return `${(value / 1000).toFixed(value >= 10000 ? 0 : 1)}k`;
  return String(Number(value.toFixed(2)));
}
