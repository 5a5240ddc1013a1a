// Small pure helpers for what the page shows.

/** The URL with any password (or a lone user token) replaced by ***: rtsp://user:***@host/path. */
export function maskUrl(raw) {
  const text = String(raw ?? "");
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^/@?#]*)@/i.exec(text);
  if (!match) return text;
  const userinfo = match[2];
  const colon = userinfo.indexOf(":");
  const masked = colon >= 0 ? `${userinfo.slice(0, colon)}:***` : "***";
  return match[1] + masked + "@" + text.slice(match[0].length);
}

/** The state a row shows: the worker's status when the stream is meant to run, else "inactive". */
export function streamState(stream) {
  const reported = stream.status && stream.status.state ? String(stream.status.state) : null;
  if (!stream.is_active) {
    // A status left behind by a stopped worker lives until its TTL; only a failure stays visible.
    return reported === "failed" ? "failed" : "inactive";
  }
  return reported || "starting";
}

export function fixed(value, digits) {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}
