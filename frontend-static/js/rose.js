// Direction rose on a small canvas: the reported vectors above the threshold by octant of their
// direction (the frame header's stats.directions; image axes, so n is up on the screen), one wedge
// per octant, its length proportional to the square root of the count (the area to the count),
// and the mean motion vector (stats.mean_vector) as an arrow from the centre.

export const OCTANTS = ["e", "ne", "n", "nw", "w", "sw", "s", "se"];

export class DirectionRose {
  constructor(canvas, label) {
    this.canvas = canvas;
    this.label = label;
    this.counts = null;
    this.mean = [0, 0];
    this.draw();
  }

  update(stats) {
    const d = (stats && stats.directions) || {};
    this.counts = OCTANTS.map((k) => Math.max(0, Number(d[k]) || 0));
    const m = (stats && stats.mean_vector) || [0, 0];
    this.mean = [Number(m[0]) || 0, Number(m[1]) || 0];
    if (this.label) {
      const total = this.counts.reduce((a, b) => a + b, 0);
      const top = total ? OCTANTS[this.counts.indexOf(Math.max(...this.counts))] : "none";
      this.label.textContent = total ? `${total} vectors, mostly ${top}` : "no motion";
    }
    this.canvas.dataset.counts = this.counts.join(",");
    this.draw();
  }

  clear() {
    this.counts = null;
    this.mean = [0, 0];
    if (this.label) this.label.textContent = "–";
    delete this.canvas.dataset.counts;
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const ctx = c.getContext("2d");
    const w = c.width, h = c.height, cx = w / 2, cy = h / 2;
    const r = Math.min(w, h) / 2 - 14;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#2a3642";
    ctx.lineWidth = 1;
    for (const f of [0.5, 1]) {
      ctx.beginPath();
      ctx.arc(cx, cy, r * f, 0, 2 * Math.PI);
      ctx.stroke();
    }
    ctx.fillStyle = "#8a98a8";
    ctx.font = "10px sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    OCTANTS.forEach((name, i) => {
      const a = (i * Math.PI) / 4; // counter-clockwise from east; the screen's y grows downwards
      ctx.fillText(name, cx + Math.cos(a) * (r + 8), cy - Math.sin(a) * (r + 8));
    });
    if (!this.counts) return;
    const max = Math.max(1, ...this.counts);
    ctx.fillStyle = "rgba(79, 195, 247, 0.75)";
    this.counts.forEach((n, i) => {
      if (!n) return;
      const len = r * Math.sqrt(n / max);
      const a = (i * Math.PI) / 4, half = Math.PI / 8;
      ctx.beginPath();
      ctx.moveTo(cx, cy);
      ctx.arc(cx, cy, len, -(a + half), -(a - half));
      ctx.closePath();
      ctx.fill();
    });
    const [mx, my] = this.mean;
    const m = Math.hypot(mx, my);
    if (m > 0) {
      // Scaled so that 8 px per frame (the preview's red) reaches the rim.
      const s = (r * Math.min(1, m / 8)) / m;
      ctx.strokeStyle = "#ffb74d";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(cx, cy);
      ctx.lineTo(cx + mx * s, cy + my * s);
      ctx.stroke();
    }
  }
}
