// The motion events of the selected stream: GET /events (newest first, "Load more" with its
// next_cursor), then live over WS /ws/events (start, update and end of each event, after the API
// committed it). The list keeps at most MAX_EVENTS; snapshots are fetched with the tab's token
// (an <img> cannot send it) into blob: URLs, revoked when their event leaves the list.
//
// The panel only asks for events when the API's /openapi.json documents /events: an older API
// without them gets a note and no failed request in the console.

import { api, ApiError, eventsSocketUrl } from "./api.js";
import { socketProtocols } from "./auth.js";
import { fixed } from "./format.js";

const $ = (id) => document.getElementById(id);
const config = window.VF_CONFIG || {};
/** Events per page of GET /events (config.js may set eventsPageSize). */
export const PAGE_SIZE = Math.max(1, Math.min(500, Number.parseInt(config.eventsPageSize, 10) || 20));
/** Events the page holds at most: live ones push the oldest out. */
export const MAX_EVENTS = 200;
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 15000;
const SNAPSHOT_PATH = /^\/events\/[0-9a-fA-F-]{36}\/snapshot\.jpg$/;

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** "12:03:04" for today, else the date too (the browser's locale and time zone). */
export function timeText(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "–";
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

/** Newest first: started_at desc, then id desc (the API's order). */
function newerFirst(a, b) {
  if (a.started_at !== b.started_at) return a.started_at < b.started_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * `held` with `incoming` put in: a newer state of an event replaces the older, newest first, at
 * most `max`. An end is final: a state that is not (a page fetched before the end arrived over
 * the socket) does not make the event active again. Returns the new list and the ids pushed out.
 */
export function mergeEvents(held, incoming, max) {
  const byId = new Map(held.map((e) => [e.id, e]));
  for (const ev of incoming) {
    if (!ev || typeof ev.id !== "string") continue;
    const old = byId.get(ev.id);
    if (old && old.state === "ended" && ev.state !== "ended") continue;
    byId.set(ev.id, ev);
  }
  const events = [...byId.values()].sort(newerFirst);
  const dropped = events.splice(max).map((e) => e.id);
  return { events, dropped };
}

export class EventTimeline {
  /** @param {{onActive?: (zoneIds: string[]) => void}} hooks */
  constructor(hooks = {}) {
    this.hooks = hooks;
    this.streamId = null;
    this.available = null; // null: not known yet; false: this API has no /events
    this.events = []; // newest first
    this.items = new Map(); // event id -> {li, parts…, snapshotKey, blobUrl}
    this.cursor = null;
    this.seq = 0;
    this.socket = null;
    this.retryTimer = 0;
    this.retryDelay = BACKOFF_FIRST_MS;
    this.generation = 0;
    this.viewerUrl = null;
    $("events-more").addEventListener("click", () => this.loadMore());
    $("snapshot-close").addEventListener("click", () => $("snapshot-dialog").close());
    $("snapshot-dialog").addEventListener("close", () => {
      $("snapshot-large").removeAttribute("src");
    });
  }

  /** Whether the API documents /events (from its /openapi.json). */
  async detect() {
    try {
      const doc = await api.openapi();
      this.available = Boolean(doc && doc.paths && doc.paths["/events"]);
    } catch {
      this.available = true; // the schema is out of reach: ask, and say what /events answers
    }
    if (!this.available) this.unavailable();
    else if (this.streamId) this.start();
  }

  unavailable() {
    this.available = false;
    this.disconnect();
    this.clear();
    $("events-more").hidden = true;
    setText($("events-state"), "Motion events are not available from this API (it has no /events).");
    $("events-state").dataset.kind = "unavailable";
  }

  select(streamId) {
    if (streamId === this.streamId) return;
    this.streamId = streamId;
    this.disconnect();
    this.clear();
    if (this.available === false) return;
    if (!streamId) {
      setText($("events-state"), "Select a stream to see its motion events.");
      $("events-state").dataset.kind = "idle";
      $("events-more").hidden = true;
      return;
    }
    if (this.available) this.start();
    else setText($("events-state"), "Loading events…");
  }

  setVisible(visible) {
    if (!visible) this.disconnect();
    else if (this.available && this.streamId && !this.socket) this.start();
  }

  /** The first page, then the live socket (opened first so nothing falls between the two). */
  async start() {
    this.disconnect();
    if (!document.hidden) this.connect();
    const seq = ++this.seq;
    const streamId = this.streamId;
    setText($("events-state"), "Loading events…");
    $("events-state").dataset.kind = "loading";
    try {
      const page = await api.events(streamId, PAGE_SIZE);
      if (seq !== this.seq || streamId !== this.streamId) return;
      this.merge((page && page.events) || []);
      this.cursor = (page && page.next_cursor) || null;
      this.renderState();
    } catch (e) {
      if (seq !== this.seq) return;
      if (e instanceof ApiError && e.status === 404) this.unavailable();
      else setText($("events-state"), `Could not load the events: ${e.message}`);
    }
  }

  async loadMore() {
    if (!this.cursor || !this.streamId) return;
    const seq = this.seq;
    const streamId = this.streamId;
    const btn = $("events-more");
    btn.disabled = true;
    try {
      const page = await api.events(streamId, PAGE_SIZE, this.cursor);
      if (seq !== this.seq || streamId !== this.streamId) return;
      this.merge((page && page.events) || []);
      this.cursor = (page && page.next_cursor) || null;
      this.renderState();
    } catch (e) {
      if (seq === this.seq) setText($("events-state"), `Could not load more events: ${e.message}`);
    } finally {
      btn.disabled = false;
    }
  }

  connect() {
    clearTimeout(this.retryTimer);
    const generation = ++this.generation;
    let socket;
    try {
      socket = new WebSocket(eventsSocketUrl(this.streamId), socketProtocols("vectorflow.events"));
    } catch {
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (generation === this.generation) this.retryDelay = BACKOFF_FIRST_MS;
    };
    socket.onmessage = (message) => {
      if (generation !== this.generation || typeof message.data !== "string") return;
      let body;
      try {
        body = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!body || body.type !== "event" || !body.event || body.event.stream_id !== this.streamId) return;
      this.merge([body.event]);
      this.renderState();
    };
    socket.onclose = () => {
      if (generation !== this.generation) return;
      this.socket = null;
      if (!this.streamId || document.hidden || this.available === false) return;
      const delay = this.retryDelay * (0.75 + Math.random() * 0.5);
      this.retryDelay = Math.min(this.retryDelay * 2, BACKOFF_MAX_MS);
      this.retryTimer = setTimeout(() => {
        if (generation === this.generation && this.streamId && !document.hidden) this.connect();
      }, delay);
    };
  }

  disconnect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    this.generation++;
    this.seq++;
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    // Closing a socket that is still connecting makes the browser log an error: let it open first.
    if (socket.readyState === WebSocket.CONNECTING) socket.onopen = () => socket.close(1000);
    else socket.close(1000);
  }

  /** Puts events into the list (see mergeEvents); those pushed out leave the page. */
  merge(incoming) {
    const { events, dropped } = mergeEvents(this.events, incoming, MAX_EVENTS);
    this.events = events;
    for (const id of dropped) this.drop(id);
    if (dropped.length) this.cursor = null; // older pages would fall off again at once
    this.render();
  }

  render() {
    const list = $("events-list");
    this.events.forEach((ev, index) => {
      const item = this.items.get(ev.id) || this.createItem(ev.id);
      if (list.children[index] !== item.li) list.insertBefore(item.li, list.children[index] || null);
      this.updateItem(item, ev);
    });
    if (this.hooks.onActive) {
      this.hooks.onActive(this.events.filter((e) => e.state === "active").map((e) => e.zone_id));
    }
  }

  renderState() {
    const n = this.events.length;
    setText($("events-state"), n ? "" : "No motion events yet for this stream.");
    $("events-state").dataset.kind = n ? "list" : "empty";
    $("events-more").hidden = !this.cursor || n >= MAX_EVENTS;
  }

  createItem(id) {
    const li = document.createElement("li");
    li.className = "event";
    li.dataset.eventId = id;
    const thumb = document.createElement("button");
    thumb.type = "button";
    thumb.className = "event-thumb";
    thumb.disabled = true;
    const img = document.createElement("img");
    img.alt = "";
    thumb.append(img);
    thumb.addEventListener("click", () => this.openSnapshot(id));
    const body = document.createElement("div");
    body.className = "event-body";
    const head = document.createElement("div");
    head.className = "event-head";
    const zone = document.createElement("strong");
    zone.className = "event-zone";
    const badge = document.createElement("span");
    badge.className = "badge";
    const arrow = document.createElement("span");
    arrow.className = "event-arrow";
    arrow.setAttribute("aria-hidden", "true");
    arrow.textContent = "➜";
    head.append(zone, badge, arrow);
    const facts = document.createElement("div");
    facts.className = "event-facts muted";
    body.append(head, facts);
    li.append(thumb, body);
    const item = { li, thumb, img, zone, badge, arrow, facts, snapshotKey: "", blobUrl: null, loading: 0 };
    this.items.set(id, item);
    return item;
  }

  updateItem(item, ev) {
    setText(item.zone, String(ev.zone_name || ev.zone_id || "zone"));
    const state = ev.state === "active" ? "active" : "ended";
    setText(item.badge, state);
    item.badge.className = `badge event-${state}`;
    item.li.classList.toggle("active", state === "active");
    const dir = Number(ev.mean_direction_deg);
    const hasDir = ev.mean_direction_deg !== null && ev.mean_direction_deg !== undefined && Number.isFinite(dir);
    item.arrow.hidden = !hasDir;
    // Image axes (0° right, 90° down) are CSS's rotation axes too.
    if (hasDir) item.arrow.style.transform = `rotate(${dir}deg)`;
    const facts = [
      `started ${timeText(ev.started_at)}`,
      `${fixed(Number(ev.duration_s), 1)} s`,
      `peak ${fixed(Number(ev.peak_speed), 2)} px/frame`,
    ];
    if (hasDir) facts.push(`${Math.round(dir)}°`);
    setText(item.facts, facts.join(" · "));
    const label = `${item.zone.textContent}: ${state}, ${facts.join(", ")}`;
    item.li.setAttribute("aria-label", label);
    // The snapshot changes with the peak (and is final at the end): fetch it again when either does.
    const key = ev.has_snapshot && typeof ev.snapshot_url === "string" && SNAPSHOT_PATH.test(ev.snapshot_url)
      ? `${ev.snapshot_url}|${ev.peak_at}|${ev.state}` : "";
    if (key !== item.snapshotKey) {
      item.snapshotKey = key;
      if (key) this.fetchSnapshot(ev.id, item, ev.snapshot_url, key);
    }
    item.thumb.setAttribute("aria-label", `Snapshot of ${item.zone.textContent} at ${timeText(ev.peak_at || ev.started_at)}, larger`);
  }

  async fetchSnapshot(id, item, path, key) {
    let blob;
    try {
      blob = await api.snapshot(path);
    } catch {
      return; // the thumbnail stays as it was
    }
    if (this.items.get(id) !== item || item.snapshotKey !== key) return;
    const url = URL.createObjectURL(blob);
    if (item.blobUrl) URL.revokeObjectURL(item.blobUrl);
    item.blobUrl = url;
    item.img.src = url;
    item.thumb.disabled = false;
  }

  openSnapshot(id) {
    const item = this.items.get(id);
    if (!item || !item.blobUrl) return;
    const large = $("snapshot-large");
    large.src = item.blobUrl;
    large.alt = `Snapshot of the event in ${item.zone.textContent}`;
    setText($("snapshot-title"), `${item.zone.textContent}: ${item.facts.textContent}`);
    $("snapshot-dialog").showModal();
  }

  drop(id) {
    const item = this.items.get(id);
    if (!item) return;
    this.items.delete(id);
    if (item.blobUrl) {
      if ($("snapshot-large").getAttribute("src") === item.blobUrl) $("snapshot-dialog").close();
      URL.revokeObjectURL(item.blobUrl);
    }
    item.li.remove();
  }

  clear() {
    for (const id of [...this.items.keys()]) this.drop(id);
    this.events = [];
    this.cursor = null;
    $("events-more").hidden = true;
    if (this.hooks.onActive) this.hooks.onActive([]);
  }
}
