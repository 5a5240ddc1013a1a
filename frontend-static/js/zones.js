// Zones of the selected stream on the live preview: their outlines and names drawn on an overlay
// canvas above the frames (redrawn when the zones, the draft or a highlight change, never per
// frame), a polygon drawn by clicking on the preview (or with the arrow keys and Enter), and the
// form of a zone's name and rule. Limits and defaults come from the API's /openapi.json (its
// ZoneRule and ZoneRules constants), never from this page.

import { api, ApiError } from "./api.js";

const $ = (id) => document.getElementById(id);

/** The rule's inputs by the zone JSON member they fill. */
export const RULE_INPUTS = {
  min_vectors: "z-min-vectors",
  min_mean_speed: "z-min-speed",
  direction_deg: "z-direction",
  direction_tolerance_deg: "z-tolerance",
  min_duration_s: "z-min-duration",
  quiet_time_s: "z-quiet",
};
/** Members that may be null (cleared) rather than only absent. */
const NULLABLE = new Set(["min_mean_speed", "direction_deg", "direction_tolerance_deg"]);
const KEY_STEP = 0.02; // of the preview's width/height, per arrow key press
const CLOSE_RADIUS_PX = 12; // a click this close to the first point closes the outline
const FLASH_MS = 450;

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Where the zone's direction arrow starts: the mean of its points (inside for the usual shapes). */
function centroid(points) {
  let x = 0;
  let y = 0;
  for (const [px, py] of points) {
    x += px;
    y += py;
  }
  return [x / points.length, y / points.length];
}

/** A short text of a zone's rule, for the list. */
export function ruleSummary(zone) {
  const parts = [`≥ ${zone.min_vectors} vectors`];
  if (zone.min_mean_speed !== null && zone.min_mean_speed !== undefined) parts.push(`≥ ${zone.min_mean_speed} px/frame`);
  if (zone.direction_deg !== null && zone.direction_deg !== undefined) {
    const tol = zone.direction_tolerance_deg;
    parts.push(`${zone.direction_deg}°${tol !== null && tol !== undefined ? ` ± ${tol}°` : ""}`);
  }
  parts.push(`${zone.min_duration_s} s on, ${zone.quiet_time_s} s quiet`);
  return parts.join(", ");
}

export class ZoneEditor {
  /**
   * @param {{canvas: HTMLCanvasElement, overlay: HTMLCanvasElement}} opts
   * `canvas` is the live preview (clicks on it add points), `overlay` the canvas laid over it.
   */
  constructor({ canvas, overlay }) {
    this.canvas = canvas;
    this.overlay = overlay;
    this.ctx = overlay.getContext("2d");
    this.streamId = null;
    this.zones = [];
    this.loadSeq = 0;
    this.drawing = false; // clicks on the preview add points
    this.points = []; // the draft outline, normalised [x, y]
    this.closed = false;
    this.editingId = null; // the zone the form edits; null: a new zone
    this.formOpen = false;
    this.cursor = [0.5, 0.5]; // the keyboard's point
    this.keyboard = false; // the cursor is shown once the arrow keys moved it
    this.active = new Set(); // zone ids with an active event
    this.flashOn = false;
    this.flashTimer = 0;
    this.rules = null; // ZoneCreate's properties from /openapi.json

    canvas.addEventListener("click", (e) => this.onCanvasClick(e));
    canvas.addEventListener("keydown", (e) => this.onCanvasKey(e));
    new ResizeObserver(() => this.redraw()).observe(overlay);
    $("zone-add").addEventListener("click", () => this.startNew());
    $("zone-undo").addEventListener("click", () => this.undoPoint());
    $("zone-close").addEventListener("click", () => this.closeOutline());
    $("zone-redraw").addEventListener("click", () => this.restartOutline());
    $("zone-cancel").addEventListener("click", () => this.cancel());
    $("zone-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
    // The draft's arrow and label follow the form as it is typed.
    for (const id of ["z-direction", "z-name"]) $(id).addEventListener("input", () => this.redraw());
    for (const id of ["z-name", ...Object.values(RULE_INPUTS)]) {
      $(id).addEventListener("input", () => {
        $(id).removeAttribute("aria-invalid");
        const err = $(`${id}-error`);
        if (err) err.textContent = "";
      });
    }
    this.render();
  }

  /** Limits and defaults of the form from the API's ZoneCreate schema. */
  async applySchema() {
    let props = {};
    try {
      const doc = await api.openapi();
      props = (doc && doc.components && doc.components.schemas && doc.components.schemas.ZoneCreate
        && doc.components.schemas.ZoneCreate.properties) || {};
    } catch {
      return; // the API still validates what is sent
    }
    this.rules = props;
    if (props.name && props.name.maxLength !== undefined) $("z-name").maxLength = props.name.maxLength;
    for (const [field, id] of Object.entries(RULE_INPUTS)) {
      const rule = props[field];
      const input = $(id);
      if (!rule) continue;
      if (rule.minimum !== undefined) input.min = String(rule.minimum);
      if (rule.maximum !== undefined) input.max = String(rule.maximum);
      const fallback = rule.default === undefined || rule.default === null ? "" : String(rule.default);
      const untouched = input.value === input.defaultValue;
      input.defaultValue = fallback;
      if (untouched) input.value = fallback;
      if (rule.description) input.title = rule.description;
    }
    this.renderPoints();
  }

  /** Points an outline may have, from the schema (null until it is read). */
  pointLimits() {
    const p = this.rules && this.rules.polygon;
    return p ? { min: p.minItems, max: p.maxItems } : { min: null, max: null };
  }

  /** Shows the zones of `streamId` (or none); any draft is dropped. */
  async select(streamId) {
    if (streamId === this.streamId) return;
    this.streamId = streamId;
    this.zones = [];
    this.setActive([]); // stops the flashing too
    this.closeForm();
    this.render();
    if (streamId) await this.reload();
  }

  async reload() {
    const seq = ++this.loadSeq;
    const streamId = this.streamId;
    if (!streamId) return;
    try {
      const zones = await api.zones(streamId);
      if (seq !== this.loadSeq || streamId !== this.streamId) return;
      this.zones = Array.isArray(zones) ? zones : [];
      setText($("zones-state"), "");
    } catch (e) {
      if (seq !== this.loadSeq) return;
      setText($("zones-state"), `Could not load the zones: ${errorText(e)}`);
    }
    this.render();
  }

  /** The zone ids whose events are active: their outlines flash. */
  setActive(ids) {
    const next = new Set(ids);
    if (next.size === this.active.size && [...next].every((id) => this.active.has(id))) return;
    this.active = next;
    clearInterval(this.flashTimer);
    this.flashTimer = 0;
    this.flashOn = next.size > 0;
    if (next.size) {
      this.flashTimer = setInterval(() => {
        this.flashOn = !this.flashOn;
        this.redraw();
      }, FLASH_MS);
    }
    for (const li of $("zone-list").children) li.classList.toggle("active", next.has(li.dataset.zoneId));
    this.redraw();
  }

  // ---- drawing ----------------------------------------------------------------------------

  startNew() {
    if (!this.streamId) return;
    this.editingId = null;
    this.openForm();
    $("zone-form").reset();
    this.points = [];
    this.closed = false;
    this.drawing = true;
    this.clearErrors();
    setText($("zone-form-title"), "New zone");
    setText($("zone-save"), "Save zone");
    this.render();
    this.canvas.focus();
  }

  startEdit(zone) {
    this.editingId = zone.id;
    this.openForm();
    this.clearErrors();
    $("z-name").value = zone.name;
    for (const [field, id] of Object.entries(RULE_INPUTS)) {
      const v = zone[field];
      $(id).value = v === null || v === undefined ? "" : String(v);
    }
    this.points = zone.polygon.map(([x, y]) => [x, y]);
    this.closed = true;
    this.drawing = false;
    setText($("zone-form-title"), `Edit zone “${zone.name}”`);
    setText($("zone-save"), "Save changes");
    this.render();
    $("z-name").focus();
  }

  openForm() {
    this.formOpen = true;
    $("zone-form").hidden = false;
  }

  closeForm() {
    this.formOpen = false;
    this.drawing = false;
    this.points = [];
    this.closed = false;
    this.editingId = null;
    this.keyboard = false;
    $("zone-form").hidden = true;
    this.clearErrors();
  }

  cancel() {
    this.closeForm();
    this.render();
    $("zone-add").focus();
  }

  restartOutline() {
    this.points = [];
    this.closed = false;
    this.drawing = true;
    this.renderDraft();
    this.canvas.focus();
  }

  undoPoint() {
    if (this.closed) this.closed = false;
    else this.points.pop();
    this.drawing = true;
    this.renderDraft();
  }

  closeOutline() {
    const { min } = this.pointLimits();
    if (this.points.length < (min || 3)) return;
    this.closed = true;
    this.drawing = false;
    this.keyboard = false;
    this.render();
    $("z-name").focus();
  }

  addPoint(x, y) {
    const { max } = this.pointLimits();
    if (max && this.points.length >= max) {
      setText($("zone-error"), `An outline has at most ${max} points.`);
      return;
    }
    const r = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
    this.points.push([r(x), r(y)]);
    this.renderDraft();
  }

  /** A click on the preview adds a point; on the first point (with enough points) it closes the outline. */
  onCanvasClick(e) {
    if (!this.drawing) return;
    const box = this.canvas.getBoundingClientRect();
    if (box.width <= 0 || box.height <= 0) return;
    const x = (e.clientX - box.left) / box.width;
    const y = (e.clientY - box.top) / box.height;
    const { min } = this.pointLimits();
    if (this.points.length >= (min || 3)) {
      const [fx, fy] = this.points[0];
      if (Math.hypot((fx - x) * box.width, (fy - y) * box.height) <= CLOSE_RADIUS_PX) {
        this.closeOutline();
        return;
      }
    }
    this.addPoint(x, y);
  }

  /** While drawing: arrow keys move a cursor (Shift: finer), Enter or Space adds it, Backspace undoes, Escape closes. */
  onCanvasKey(e) {
    if (!this.drawing) return;
    const step = e.shiftKey ? KEY_STEP / 4 : KEY_STEP;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      const [dx, dy] = moves[e.key];
      this.cursor = [Math.min(1, Math.max(0, this.cursor[0] + dx)), Math.min(1, Math.max(0, this.cursor[1] + dy))];
      this.keyboard = true;
      this.redraw();
    } else if (e.key === "Enter" || e.key === " ") {
      this.keyboard = true;
      this.addPoint(this.cursor[0], this.cursor[1]);
    } else if (e.key === "Backspace") {
      this.undoPoint();
    } else if (e.key === "Escape") {
      this.closeOutline();
    } else {
      return;
    }
    e.preventDefault();
  }

  // ---- saving -----------------------------------------------------------------------------

  /** The body of the form: empty rule fields are left to the API's defaults (create) or cleared/kept (edit). */
  body() {
    const editing = Boolean(this.editingId);
    const body = { name: $("z-name").value, polygon: this.points.map(([x, y]) => [x, y]) };
    for (const [field, id] of Object.entries(RULE_INPUTS)) {
      const raw = $(id).value.trim();
      if (raw !== "") body[field] = field === "min_vectors" ? Number.parseInt(raw, 10) : Number(raw);
      else if (editing && NULLABLE.has(field)) body[field] = null;
    }
    // A tolerance left empty with a direction: the API's default (create) or the stored one (edit).
    if ($("z-tolerance").value.trim() === "" && $("z-direction").value.trim() !== "") delete body.direction_tolerance_deg;
    return body;
  }

  clearErrors() {
    setText($("zone-error"), "");
    for (const id of ["z-name", ...Object.values(RULE_INPUTS)]) {
      $(id).removeAttribute("aria-invalid");
      const err = $(`${id}-error`);
      if (err) err.textContent = "";
    }
  }

  async save() {
    if (!this.streamId) return;
    const form = $("zone-form");
    if (!form.noValidate && !form.reportValidity()) return;
    this.clearErrors();
    if (!this.closed) {
      setText($("zone-error"), "Close the outline first (click its first point or “Close outline”).");
      return;
    }
    const streamId = this.streamId;
    const editing = this.editingId;
    const submit = $("zone-save");
    submit.disabled = true;
    try {
      const body = this.body();
      if (editing) await api.updateZone(streamId, editing, body);
      else await api.createZone(streamId, body);
      if (streamId !== this.streamId) return;
      this.closeForm();
      await this.reload();
      $("zone-add").focus();
    } catch (e) {
      // Nothing drawn or typed is lost: the API's reason is shown next to the form.
      this.showError(e);
    } finally {
      submit.disabled = false;
    }
  }

  showError(e) {
    const lines = [];
    if (e instanceof ApiError && Array.isArray(e.detail)) {
      for (const item of e.detail) {
        const loc = Array.isArray(item && item.loc) ? item.loc : [];
        const field = loc.length > 1 && loc[0] === "body" ? String(loc[1]) : "";
        const msg = String((item && item.msg) || "invalid value");
        const id = field === "name" ? "z-name" : RULE_INPUTS[field];
        if (id) {
          $(id).setAttribute("aria-invalid", "true");
          const err = $(`${id}-error`);
          if (err) err.textContent = msg;
        }
        lines.push(field ? `${field}: ${msg}` : msg);
      }
    } else {
      lines.push(errorText(e));
    }
    setText($("zone-error"), lines.join(" "));
  }

  async remove(zone, btn) {
    if (!window.confirm(`Delete the zone "${zone.name}"?`)) return;
    btn.disabled = true;
    try {
      await api.removeZone(this.streamId, zone.id);
      if (this.editingId === zone.id) this.closeForm();
      await this.reload();
      $("zone-add").focus();
    } catch (e) {
      setText($("zones-state"), `Could not delete “${zone.name}”: ${errorText(e)}`);
      btn.disabled = false;
    }
  }

  // ---- rendering --------------------------------------------------------------------------

  render() {
    this.renderList();
    this.renderDraft();
  }

  /** The drawing state: buttons, the preview's role, the point list and the overlay (not the zone list). */
  renderDraft() {
    const has = Boolean(this.streamId);
    $("zones-body").hidden = !has;
    $("zones-none").hidden = has;
    $("zone-add").disabled = !has || this.formOpen;
    this.canvas.tabIndex = this.drawing ? 0 : -1;
    this.canvas.classList.toggle("drawing", this.drawing);
    // While drawing the preview takes keys (arrows, Enter, Escape) itself.
    this.canvas.setAttribute("role", this.drawing ? "application" : "img");
    this.canvas.setAttribute("aria-label", this.drawing
      ? "Live preview: click to add a point of the zone's outline (or move with the arrow keys and press Enter)"
      : "Live frames of the selected stream");
    this.renderPoints();
    this.redraw();
  }

  renderList() {
    const list = $("zone-list");
    list.replaceChildren();
    for (const zone of this.zones) {
      const li = document.createElement("li");
      li.dataset.zoneId = zone.id;
      li.classList.toggle("active", this.active.has(zone.id));
      const text = document.createElement("div");
      const name = document.createElement("strong");
      name.textContent = zone.name;
      const summary = document.createElement("div");
      summary.className = "muted zone-rule";
      summary.textContent = ruleSummary(zone);
      text.append(name, summary);
      const actions = document.createElement("div");
      actions.className = "actions";
      const edit = document.createElement("button");
      edit.type = "button";
      edit.className = "btn btn-ghost";
      edit.textContent = "Edit";
      edit.setAttribute("aria-label", `Edit zone ${zone.name}`);
      edit.addEventListener("click", () => this.startEdit(zone));
      const del = document.createElement("button");
      del.type = "button";
      del.className = "btn btn-danger";
      del.textContent = "Delete";
      del.setAttribute("aria-label", `Delete zone ${zone.name}`);
      del.addEventListener("click", () => this.remove(zone, del));
      actions.append(edit, del);
      li.append(text, actions);
      list.append(li);
    }
    $("zones-empty").hidden = this.zones.length > 0 || !this.streamId;
  }

  renderPoints() {
    const list = $("zone-points");
    list.replaceChildren();
    for (const [x, y] of this.points) {
      const li = document.createElement("li");
      li.textContent = `${x.toFixed(3)}, ${y.toFixed(3)}`;
      list.append(li);
    }
    const { min } = this.pointLimits();
    const need = min || 3;
    $("zone-undo").disabled = !this.formOpen || (this.points.length === 0 && !this.closed);
    $("zone-close").disabled = !this.drawing || this.points.length < need;
    $("zone-redraw").hidden = !this.closed;
    let hint;
    if (!this.formOpen) hint = "";
    else if (this.closed) hint = `Outline closed (${this.points.length} points).`;
    else if (this.points.length < need) hint = `Click on the preview to add points (at least ${need}).`;
    else hint = "Click the first point or “Close outline” to finish.";
    setText($("zone-draw-hint"), hint);
  }

  /** Draws the zones, the draft and the keyboard cursor on the overlay (device pixels of its box). */
  redraw() {
    const o = this.overlay;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(o.clientWidth * dpr));
    const h = Math.max(1, Math.round(o.clientHeight * dpr));
    if (o.width !== w || o.height !== h) {
      o.width = w;
      o.height = h;
    }
    const ctx = this.ctx;
    ctx.clearRect(0, 0, w, h);
    if (!this.streamId) return;
    ctx.lineJoin = "round";
    ctx.font = `${Math.round(12 * dpr)}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const zone of this.zones) {
      if (zone.id === this.editingId) continue; // the draft stands for it
      const lit = this.active.has(zone.id);
      const color = lit ? (this.flashOn ? "#ffd24d" : "#ff8a4c") : "#3fa7ff";
      this.outline(zone.polygon, w, h, dpr, color, lit ? 0.28 : 0.1, true);
      this.label(zone.name, zone.polygon, w, h, dpr, color);
      if (zone.direction_deg !== null && zone.direction_deg !== undefined) {
        this.arrow(zone.polygon, zone.direction_deg, w, h, dpr, color);
      }
    }
    if (this.formOpen && this.points.length) {
      const color = "#3ecf8e";
      this.outline(this.points, w, h, dpr, color, this.closed ? 0.15 : 0, this.closed);
      ctx.fillStyle = color;
      this.points.forEach(([x, y], i) => {
        ctx.beginPath();
        ctx.arc(x * w, y * h, (i === 0 ? 5 : 3.5) * dpr, 0, Math.PI * 2);
        ctx.fill();
      });
      const dir = Number.parseFloat($("z-direction").value);
      if (this.closed && Number.isFinite(dir)) this.arrow(this.points, dir, w, h, dpr, color);
      if (this.closed) this.label($("z-name").value || "new zone", this.points, w, h, dpr, color);
    }
    if (this.drawing && this.keyboard) {
      const [cx, cy] = this.cursor;
      ctx.strokeStyle = "#ffd24d";
      ctx.lineWidth = 1.5 * dpr;
      ctx.beginPath();
      ctx.moveTo(cx * w - 8 * dpr, cy * h);
      ctx.lineTo(cx * w + 8 * dpr, cy * h);
      ctx.moveTo(cx * w, cy * h - 8 * dpr);
      ctx.lineTo(cx * w, cy * h + 8 * dpr);
      ctx.stroke();
    }
  }

  outline(points, w, h, dpr, color, fill, closed) {
    const ctx = this.ctx;
    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
    if (closed) ctx.closePath();
    if (fill > 0) {
      ctx.globalAlpha = fill;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
    ctx.strokeStyle = color;
    ctx.lineWidth = 2 * dpr;
    ctx.stroke();
  }

  label(text, points, w, h, dpr, color) {
    const ctx = this.ctx;
    // Top-left-most point: above the outline when there is room, else just inside it.
    let [x, y] = points[0];
    for (const [px, py] of points) if (py < y || (py === y && px < x)) [x, y] = [px, py];
    const tx = x * w + 4 * dpr;
    const ty = y * h - 17 * dpr >= 0 ? y * h - 17 * dpr : y * h + 3 * dpr;
    const width = ctx.measureText(text).width + 8 * dpr;
    ctx.fillStyle = "rgba(6, 9, 12, 0.7)";
    ctx.fillRect(tx - 4 * dpr, ty - 1 * dpr, width, 16 * dpr);
    ctx.fillStyle = color;
    ctx.fillText(text, tx, ty);
  }

  /** The rule's direction as an arrow from the zone's centre (image axes: 0° right, 90° down). */
  arrow(points, deg, w, h, dpr, color) {
    const ctx = this.ctx;
    const [cx, cy] = centroid(points);
    const rad = (deg * Math.PI) / 180;
    const len = Math.min(w, h) * 0.12;
    const x0 = cx * w;
    const y0 = cy * h;
    const x1 = x0 + Math.cos(rad) * len;
    const y1 = y0 + Math.sin(rad) * len;
    const head = 8 * dpr;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = 2.5 * dpr;
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - head * Math.cos(rad - 0.45), y1 - head * Math.sin(rad - 0.45));
    ctx.lineTo(x1 - head * Math.cos(rad + 0.45), y1 - head * Math.sin(rad + 0.45));
    ctx.closePath();
    ctx.fill();
  }
}

export function errorText(error) {
  if (error instanceof ApiError) {
    if (typeof error.detail === "string") return error.detail;
    if (Array.isArray(error.detail)) return error.detail.map((d) => d && d.msg).filter(Boolean).join("; ") || error.message;
  }
  return error && error.message ? error.message : String(error);
}
