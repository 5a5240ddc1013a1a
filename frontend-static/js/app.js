// The dashboard: fleet table, create/edit form, live preview with the stream's zones, the zone
// editor, the motion event timeline, live chart and Grafana panel.

import { api, ApiError } from "./api.js";
import { maskUrl, streamState, fixed } from "./format.js";
import { LivePreview } from "./preview.js";
import { FlowChart } from "./chart.js";
import { DirectionRose } from "./rose.js";
import { GrafanaPanel } from "./grafana.js";
import { ZoneEditor } from "./zones.js";
import { EventTimeline } from "./events.js";

const config = window.VF_CONFIG || {};
const $ = (id) => document.getElementById(id);
const POLL_ACTIVE_MS = 2000;
const POLL_IDLE_MS = 5000;
const FORM_FIELDS = ["name", "rtsp_url", "grid_size", "threshold", "is_active"];
const FIELD_INPUT = { name: "f-name", rtsp_url: "f-url", grid_size: "f-grid", threshold: "f-threshold", is_active: "f-active" };
const FIELD_ERROR = { name: "f-name-error", rtsp_url: "f-url-error", grid_size: "f-grid-error", threshold: "f-threshold-error", is_active: "f-is_active-error" };

const state = {
  streams: [],
  selectedId: null,
  editingId: null,
  live: null, // {streamId, fps, avg} from the newest frame of the selected stream
  pollTimer: 0,
  listSeq: 0,
};
const rows = new Map(); // stream id → {tr, cells…}

// ---- banner ---------------------------------------------------------------------------------

function showBanner(text) {
  $("banner-text").textContent = text;
  $("banner").hidden = false;
}
function hideBanner() {
  $("banner").hidden = true;
}
function errorText(error) {
  if (error instanceof ApiError) {
    if (typeof error.detail === "string") return error.detail;
    if (Array.isArray(error.detail)) return error.detail.map((d) => d && d.msg).filter(Boolean).join("; ") || error.message;
  }
  return error && error.message ? error.message : String(error);
}

// ---- fleet ----------------------------------------------------------------------------------

async function refresh() {
  clearTimeout(state.pollTimer);
  // Only the newest listing is applied: an older one may predate a create or a delete.
  const seq = ++state.listSeq;
  try {
    const streams = await api.list();
    if (seq !== state.listSeq) return;
    state.streams = Array.isArray(streams) ? streams : [];
    setApiState(true, "API connected");
    renderFleet();
  } catch (e) {
    if (seq !== state.listSeq) return;
    setApiState(false, `API unreachable: ${errorText(e)}`);
  }
  schedulePoll();
}

function schedulePoll() {
  clearTimeout(state.pollTimer);
  if (document.hidden) return;
  const busy = state.streams.some((s) => s.is_active);
  state.pollTimer = setTimeout(refresh, busy ? POLL_ACTIVE_MS : POLL_IDLE_MS);
}

function setApiState(ok, text) {
  const el = $("api-state");
  el.textContent = text;
  el.classList.toggle("ok", ok);
  el.classList.toggle("down", !ok);
}

function cell(tr, label, className) {
  const td = document.createElement("td");
  if (label) td.dataset.label = label;
  if (className) td.className = className;
  tr.append(td);
  return td;
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function createRow(id) {
  const tr = document.createElement("tr");
  tr.dataset.streamId = id;
  const name = button("", "name-btn", () => selectStream(id));
  const url = document.createElement("div");
  url.className = "url";
  cell(tr, "", "stream-cell").append(name, url);
  const grid = cell(tr, "Grid / threshold", "num");
  const badge = document.createElement("span");
  badge.className = "badge";
  const error = document.createElement("div");
  error.className = "last-error";
  // Shown for a failed stream: asks the API to activate it again, which makes the reconciler try
  // to start its worker at once (rather than at its next periodic pass).
  const retry = button("Retry", "btn btn-retry", () => retryStream(id, retry));
  retry.hidden = true;
  cell(tr, "Status").append(badge, error, retry);
  const fps = cell(tr, "FPS", "num");
  const flow = cell(tr, "Flow", "num");
  const actions = document.createElement("div");
  actions.className = "actions";
  const toggle = button("", "btn", () => toggleActive(id, toggle));
  const edit = button("Edit", "btn btn-ghost", () => startEdit(id));
  const del = button("Delete", "btn btn-danger", () => deleteStream(id, del));
  actions.append(toggle, edit, del);
  cell(tr).append(actions);
  const row = { tr, name, url, grid, badge, error, retry, fps, flow, toggle, edit, del };
  rows.set(id, row);
  return row;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function renderFleet() {
  const body = $("fleet-body");
  const seen = new Set();
  state.streams.forEach((stream, index) => {
    seen.add(stream.id);
    const row = rows.get(stream.id) || createRow(stream.id);
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
    updateRow(row, stream);
  });
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  $("fleet-empty").hidden = state.streams.length > 0;
  $("fleet-table").hidden = state.streams.length === 0;
  if (state.selectedId && !seen.has(state.selectedId)) selectStream(null);
}

function updateRow(row, stream) {
  const selected = stream.id === state.selectedId;
  row.tr.classList.toggle("selected", selected);
  setText(row.name, stream.name);
  row.name.setAttribute("aria-pressed", String(selected));
  row.name.title = `Preview ${stream.name}`;
  const masked = maskUrl(stream.rtsp_url);
  setText(row.url, masked);
  row.url.title = masked;
  setText(row.grid, `${stream.grid_size} px / ${fixed(Number(stream.threshold), 2)}`);
  const st = streamState(stream);
  setText(row.badge, st);
  row.badge.className = `badge ${st}`;
  const lastError = stream.status && stream.status.last_error;
  if (lastError) row.badge.title = `Last error: ${lastError}`;
  else row.badge.removeAttribute("title");
  // Troubled streams also show the error as text (a title alone is out of reach of touch and keyboard);
  // a failed one says so in words with its reason, and offers to try again.
  const failed = st === "failed";
  const troubled = lastError && (failed || st === "reconnecting");
  const errorLine = failed ? `failed: ${lastError ? String(lastError) : "no reason reported"}` : troubled ? String(lastError) : "";
  setText(row.error, errorLine);
  row.error.title = errorLine;
  row.retry.hidden = !failed;
  row.retry.setAttribute("aria-label", `Retry ${stream.name}`);
  const live = selected && state.live && state.live.streamId === stream.id ? state.live : null;
  const fps = live ? live.fps : stream.is_active && stream.status ? Number(stream.status.fps) : NaN;
  setText(row.fps, fixed(fps, 1));
  setText(row.flow, live ? `${fixed(live.avg, 2)} px` : "–");
  setText(row.toggle, stream.is_active ? "Deactivate" : "Activate");
  row.toggle.setAttribute("aria-label", `${stream.is_active ? "Deactivate" : "Activate"} ${stream.name}`);
  row.edit.setAttribute("aria-label", `Edit ${stream.name}`);
  row.del.setAttribute("aria-label", `Delete ${stream.name}`);
}

function streamById(id) {
  return state.streams.find((s) => s.id === id) || null;
}

function replaceStream(updated) {
  if (!updated || !updated.id) return;
  const index = state.streams.findIndex((s) => s.id === updated.id);
  if (index >= 0) state.streams[index] = updated;
  else state.streams.push(updated);
  renderFleet();
}

async function toggleActive(id, btn) {
  const stream = streamById(id);
  if (!stream) return;
  btn.disabled = true;
  hideBanner();
  try {
    replaceStream(stream.is_active ? await api.deactivate(id) : await api.activate(id));
    if (id === state.selectedId) preview.retryNow();
  } catch (e) {
    showBanner(`Could not ${stream.is_active ? "deactivate" : "activate"} "${stream.name}": ${errorText(e)}`);
  } finally {
    btn.disabled = false;
    refresh();
  }
}

async function retryStream(id, btn) {
  const stream = streamById(id);
  if (!stream) return;
  btn.disabled = true;
  hideBanner();
  try {
    // POST /activate on a stream that is already active is the API's "start its worker now": the
    // answer is the stream once a worker runs, or the engine's reason (502/503) if it still cannot.
    replaceStream(await api.activate(id));
    if (id === state.selectedId) preview.retryNow();
  } catch (e) {
    showBanner(`Retry of "${stream.name}" failed: ${errorText(e)}`);
  } finally {
    btn.disabled = false;
    refresh();
  }
}

async function deleteStream(id, btn) {
  const stream = streamById(id);
  if (!stream) return;
  if (!window.confirm(`Delete the stream "${stream.name}"? Its worker is stopped.`)) return;
  btn.disabled = true;
  hideBanner();
  try {
    await api.remove(id);
    if (state.editingId === id) resetForm();
    state.streams = state.streams.filter((s) => s.id !== id);
    renderFleet();
    $("new-stream").focus();
  } catch (e) {
    showBanner(`Could not delete "${stream.name}": ${errorText(e)}`);
    btn.disabled = false;
  }
  refresh();
}

// ---- selection: preview, chart, Grafana ------------------------------------------------------

const preview = new LivePreview($("preview-canvas"), {
  overlay: () => $("overlay-vectors").checked,
  onState: (kind, text) => {
    setText($("preview-state"), text);
    $("preview-state").dataset.kind = kind;
    // Frames stopped: the row goes back to the worker's reported figures, not the last frame's.
    if (kind === "stalled" && state.live) {
      state.live = null;
      const row = rows.get(state.selectedId);
      const stream = streamById(state.selectedId);
      if (row && stream) updateRow(row, stream);
    }
  },
  onFrame: (header, measured) => {
    const stats = header.stats || {};
    state.live = { streamId: state.selectedId, fps: Number(header.fps), avg: Number(stats.magnitude_avg) };
    setText($("s-fps"), fixed(Number(header.fps), 1));
    setText($("s-shown"), fixed(measured.shownFps, 1));
    setText($("s-latency"), Number.isFinite(measured.latencyMs) ? `${Math.max(0, Math.round(measured.latencyMs))} ms` : "–");
    setText($("s-count"), String(stats.vector_count ?? "–"));
    setText($("s-avg"), `${fixed(Number(stats.magnitude_avg), 2)} px`);
    setText($("s-max"), `${fixed(Number(stats.magnitude_max), 2)} px`);
    setText($("s-rejected"), String(stats.rejected ?? "–"));
    rose.update(stats);
    chart.add(stats);
    const row = rows.get(state.selectedId);
    const stream = streamById(state.selectedId);
    if (row && stream) updateRow(row, stream);
  },
});
const chart = new FlowChart($("flow-chart"));
const rose = new DirectionRose($("direction-rose"), $("rose-label"));
const zones = new ZoneEditor({ canvas: $("preview-canvas"), overlay: $("zone-overlay") });
// Zones flash while an event of theirs is active.
const events = new EventTimeline({ onActive: (zoneIds) => zones.setActive(zoneIds) });
const grafana = new GrafanaPanel({
  frame: $("grafana-frame"),
  message: $("grafana-message"),
  link: $("grafana-link"),
  dashboardUrl: config.grafanaDashboardUrl || "",
});

function selectStream(id) {
  if (id === state.selectedId) return;
  state.selectedId = id;
  state.live = null;
  for (const el of ["s-fps", "s-shown", "s-latency", "s-count", "s-avg", "s-max", "s-rejected"]) setText($(el), "–");
  chart.reset();
  rose.clear();
  preview.select(id);
  zones.select(id);
  events.select(id);
  grafana.show(id);
  const hash = id ? `#stream=${id}` : "";
  if (window.location.hash !== hash) history.replaceState(null, "", window.location.pathname + window.location.search + hash);
  for (const [rid, row] of rows) {
    const stream = streamById(rid);
    if (stream) updateRow(row, stream);
  }
}

document.addEventListener("visibilitychange", () => {
  preview.setVisible(!document.hidden);
  events.setVisible(!document.hidden);
  if (document.hidden) clearTimeout(state.pollTimer);
  else refresh();
});

// ---- form -----------------------------------------------------------------------------------

const form = $("stream-form");

function clearErrors() {
  for (const field of FORM_FIELDS) {
    $(FIELD_ERROR[field]).textContent = "";
    $(FIELD_INPUT[field]).removeAttribute("aria-invalid");
  }
  $("form-error").textContent = "";
}

function formBody() {
  const number = (id) => {
    const raw = $(id).value.trim();
    return raw === "" ? null : Number(raw);
  };
  return {
    name: $("f-name").value,
    rtsp_url: $("f-url").value.trim(),
    grid_size: number("f-grid"),
    threshold: number("f-threshold"),
    is_active: $("f-active").checked,
  };
}

function showFieldErrors(error) {
  const byField = error.fieldErrors();
  let first = null;
  for (const [field, messages] of Object.entries(byField)) {
    if (FIELD_ERROR[field]) {
      $(FIELD_ERROR[field]).textContent = messages.join(" ");
      $(FIELD_INPUT[field]).setAttribute("aria-invalid", "true");
      first ||= $(FIELD_INPUT[field]);
    } else {
      $("form-error").textContent += (field ? `${field}: ` : "") + messages.join(" ") + " ";
    }
  }
  if (first) first.focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!form.noValidate && !form.reportValidity()) return;
  clearErrors();
  hideBanner();
  const submit = $("form-submit");
  submit.disabled = true;
  const editing = state.editingId;
  try {
    const body = formBody();
    let saved;
    if (editing) {
      // Activation has its own buttons; an edit never changes it.
      delete body.is_active;
      saved = await api.update(editing, body);
    } else {
      saved = await api.create(body);
    }
    replaceStream(saved);
    resetForm();
    if (saved && saved.id) selectStream(saved.id);
  } catch (e) {
    // Nothing typed is cleared on an error.
    if (e instanceof ApiError && e.status === 422 && Array.isArray(e.detail)) showFieldErrors(e);
    else showBanner(`Could not ${editing ? "save" : "create"} the stream: ${errorText(e)}`);
  } finally {
    submit.disabled = false;
    refresh();
  }
});

for (const field of FORM_FIELDS) {
  $(FIELD_INPUT[field]).addEventListener("input", () => {
    $(FIELD_ERROR[field]).textContent = "";
    $(FIELD_INPUT[field]).removeAttribute("aria-invalid");
  });
}

function startEdit(id) {
  const stream = streamById(id);
  if (!stream) return;
  clearErrors();
  state.editingId = id;
  $("f-name").value = stream.name;
  $("f-url").value = stream.rtsp_url;
  $("f-grid").value = String(stream.grid_size);
  $("f-threshold").value = String(stream.threshold);
  $("f-active").checked = Boolean(stream.is_active);
  setText($("form-title"), `Edit “${stream.name}”`);
  setText($("form-submit"), "Save changes");
  $("f-active-field").hidden = true;
  $("form-cancel").hidden = false;
  $("f-name").focus();
}

function resetForm() {
  state.editingId = null;
  form.reset();
  clearErrors();
  setText($("form-title"), "New stream");
  setText($("form-submit"), "Create stream");
  $("f-active-field").hidden = false;
  $("form-cancel").hidden = true;
}

$("form-cancel").addEventListener("click", () => {
  resetForm();
  $("new-stream").focus();
});
$("new-stream").addEventListener("click", () => {
  resetForm();
  $("f-name").focus();
});
$("banner-close").addEventListener("click", hideBanner);

// ---- start ----------------------------------------------------------------------------------

/**
 * The form's limits and defaults come from the API's own schema (its StreamSettings rules), not
 * from this page: a new default or range needs no change here.
 */
async function applySchemaRules() {
  let props = {};
  try {
    const doc = await api.openapi();
    props = (doc && doc.components && doc.components.schemas && doc.components.schemas.StreamCreate
      && doc.components.schemas.StreamCreate.properties) || {};
  } catch {
    return; // the fields stay as they are; the API still validates what is sent
  }
  for (const [field, id] of [["grid_size", "f-grid"], ["threshold", "f-threshold"]]) {
    const rule = props[field];
    const input = $(id);
    if (!rule || !input) continue;
    if (rule.minimum !== undefined) input.min = String(rule.minimum);
    if (rule.maximum !== undefined) input.max = String(rule.maximum);
    if (rule.default !== undefined) {
      const untouched = input.value === input.defaultValue;
      input.defaultValue = String(rule.default); // what form.reset() restores
      if (untouched) input.value = String(rule.default);
    }
  }
}
applySchemaRules();
zones.applySchema();
events.detect();

const initial = /^#stream=([0-9a-fA-F-]{36})$/.exec(window.location.hash);
grafana.show(null);
refresh().then(() => {
  if (initial && streamById(initial[1])) selectStream(initial[1]);
});
