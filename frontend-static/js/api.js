// REST client of the Vector Flow API. Errors keep the API's FastAPI-style body so that the form can
// put each 422 message next to its field.

import { askForToken, currentToken } from "./auth.js";

const config = window.VF_CONFIG || {};

/** Base URL of the API without a trailing slash; "" is the page's own origin. */
export const apiBase = String(config.apiUrl || "").replace(/\/+$/, "");

/** An HTTP error of the API: `status`, and `detail` (a string or FastAPI's list of field errors). */
export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `request failed (${status})`);
    this.status = status;
    this.detail = detail;
  }

  /** The field errors of a 422 as a map from field name to messages. */
  fieldErrors() {
    const out = {};
    if (!Array.isArray(this.detail)) return out;
    for (const item of this.detail) {
      const loc = Array.isArray(item && item.loc) ? item.loc : [];
      const field = loc.length > 1 && loc[0] === "body" ? String(loc[1]) : "";
      (out[field] ||= []).push(String(item.msg || "invalid value"));
    }
    return out;
  }
}

async function request(method, path, body, retried = false) {
  const response = await send(method, path, body, "application/json", retried);
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const detail = data && data.detail !== undefined ? data.detail : `${response.status} ${response.statusText}`.trim();
    throw new ApiError(response.status, detail);
  }
  return data;
}

/** A binary resource of the API (an event's snapshot) as a Blob, sent with the token like the rest. */
async function requestBlob(path) {
  const response = await send("GET", path, undefined, "*/*", false);
  if (!response.ok) throw new ApiError(response.status, `${response.status} ${response.statusText}`.trim());
  return response.blob();
}

/** Sends one request with the tab's token; a 401 asks for the token once and sends it again. */
async function send(method, path, body, accept, retried) {
  const headers = { Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const sent = currentToken();
  if (sent) headers.Authorization = `Bearer ${sent}`;
  let response;
  try {
    response = await fetch(apiBase + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `The API at ${apiBase || window.location.origin} cannot be reached (${e.message}).`);
  }
  // The API wants a token (VF_API_TOKEN): ask for it once, then send the request again.
  if (response.status === 401 && !retried) {
    await askForToken(Boolean(sent));
    return send(method, path, body, accept, true);
  }
  return response;
}

const enc = encodeURIComponent;

/** A query string of the set values: `{a: 1, b: null}` -> "?a=1". */
function query(params) {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${enc(k)}=${enc(String(v))}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

let openapiOnce = null;

export const api = {
  health: () => request("GET", "/health"),
  list: () => request("GET", "/streams"),
  get: (id) => request("GET", `/streams/${encodeURIComponent(id)}`),
  create: (stream) => request("POST", "/streams", stream),
  update: (id, stream) => request("PUT", `/streams/${encodeURIComponent(id)}`, stream),
  remove: (id) => request("DELETE", `/streams/${encodeURIComponent(id)}`),
  activate: (id) => request("POST", `/streams/${encodeURIComponent(id)}/activate`),
  deactivate: (id) => request("POST", `/streams/${encodeURIComponent(id)}/deactivate`),
  /** The API's schema, asked for once per page (the forms' limits, whether /events exists). */
  openapi: () => {
    openapiOnce ||= request("GET", "/openapi.json").catch((e) => {
      openapiOnce = null;
      throw e;
    });
    return openapiOnce;
  },
  zones: (id) => request("GET", `/streams/${enc(id)}/zones`),
  createZone: (id, zone) => request("POST", `/streams/${enc(id)}/zones`, zone),
  updateZone: (id, zoneId, zone) => request("PUT", `/streams/${enc(id)}/zones/${enc(zoneId)}`, zone),
  removeZone: (id, zoneId) => request("DELETE", `/streams/${enc(id)}/zones/${enc(zoneId)}`),
  /** `{events, next_cursor}`, newest first. */
  events: (streamId, limit, cursor) => request("GET", `/events${query({ stream_id: streamId, limit, cursor })}`),
  /** `path` is an event's snapshot_url as the API gave it (an API path such as /events/<id>/snapshot.jpg). */
  snapshot: (path) => requestBlob(path),
};

function socketUrl(path, streamId) {
  const base = new URL(apiBase || window.location.origin, window.location.href);
  base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  base.pathname = base.pathname.replace(/\/+$/, "") + path;
  base.search = `?stream_id=${encodeURIComponent(streamId)}`;
  return base.toString();
}

/** The WebSocket URL of a stream's live frames. */
export function framesSocketUrl(streamId) {
  return socketUrl("/ws/frames", streamId);
}

/** The WebSocket URL of a stream's motion events (start, update, end of each). */
export function eventsSocketUrl(streamId) {
  return socketUrl("/ws/events", streamId);
}
