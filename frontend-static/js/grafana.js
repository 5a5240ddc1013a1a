// The Grafana dashboard in an iframe (kiosk mode), for the selected stream (var-stream_id). Grafana is
// probed first, and the iframe is only made once the probe says it answers: a stopped Grafana (as
// with `make run`) shows a short note instead of an empty box or a browser error page.
//
// The probe loads Grafana's /api/health into an off-screen <object>: the element fires `load` when
// the answer is a 2xx that may be framed and `error` otherwise (refused, 5xx, X-Frame-Options), and,
// unlike fetch(), <img> or XMLHttpRequest, a failed <object> load writes nothing to the console.

const PROBE_TIMEOUT_MS = 4000;

/** Grafana's /api/health beside the dashboard URL (Grafana may live under a sub-path: /grafana/d/…). */
export function healthUrlFor(dashboardUrl) {
  const url = new URL(dashboardUrl, window.location.href);
  const cut = url.pathname.indexOf("/d/");
  const base = cut >= 0 ? url.pathname.slice(0, cut) : "";
  return `${url.origin}${base}/api/health`;
}

/** Resolves true when `url` answers with a 2xx that may be framed, false otherwise or after `timeoutMs`. */
export function probeSilently(url, timeoutMs = PROBE_TIMEOUT_MS) {
  return new Promise((resolve) => {
    const probe = document.createElement("object");
    probe.type = "application/json";
    probe.width = "1";
    probe.height = "1";
    probe.tabIndex = -1;
    probe.setAttribute("aria-hidden", "true");
    probe.dataset.grafanaProbe = "";
    // Off-screen rather than display:none: an <object> without a layout box is never loaded.
    probe.style.cssText = "position:absolute;left:-9999px;top:0;width:1px;height:1px;border:0;";
    let settled = false;
    const finish = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      probe.remove();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    probe.addEventListener("load", () => finish(true));
    probe.addEventListener("error", () => finish(false));
    probe.data = url;
    document.body.append(probe);
  });
}

export class GrafanaPanel {
  constructor({ frame, message, link, dashboardUrl }) {
    this.frame = frame;
    this.message = message;
    this.link = link;
    this.dashboardUrl = dashboardUrl;
    this.streamId = null;
    this.reachable = null; // null: not probed yet
    this.probing = null;
  }

  urlFor(streamId) {
    const url = new URL(this.dashboardUrl, window.location.href);
    url.searchParams.set("orgId", "1");
    url.searchParams.set("refresh", "5s");
    url.searchParams.set("var-stream_id", streamId || "$__all");
    return url.toString();
  }

  /** The embedded view: Grafana's kiosk mode (no side menu or top bar inside the card). */
  embedUrlFor(streamId) {
    const url = new URL(this.urlFor(streamId));
    url.searchParams.set("kiosk", "1");
    return url.toString();
  }

  async show(streamId) {
    this.streamId = streamId;
    this.link.href = this.urlFor(streamId);
    if (!this.dashboardUrl) {
      this.say("No Grafana dashboard URL is configured (grafanaDashboardUrl in config.js).", true);
      return;
    }
    if (this.reachable === null) await this.probe();
    if (streamId !== this.streamId) return;
    if (!this.reachable) return;
    const url = this.embedUrlFor(streamId);
    if (this.frame.getAttribute("src") !== url) this.frame.setAttribute("src", url);
    this.frame.hidden = false;
    this.message.hidden = true;
  }

  probe() {
    if (!this.probing) {
      this.probing = this.runProbe().finally(() => {
        this.probing = null;
      });
    }
    return this.probing;
  }

  async runProbe() {
    this.say("Checking Grafana…", false);
    this.reachable = await probeSilently(healthUrlFor(this.dashboardUrl));
    if (!this.reachable) {
      const origin = new URL(this.dashboardUrl, window.location.href).origin;
      this.say(`Grafana is not reachable at ${origin}. Start it (docker compose up grafana) or set ` +
        "grafanaDashboardUrl in config.js; the live preview above works without it.", true, true);
    }
  }

  say(text, down, withRetry = false) {
    this.frame.hidden = true;
    this.message.hidden = false;
    this.message.classList.toggle("down", down);
    this.message.textContent = text;
    if (withRetry) {
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "btn";
      retry.textContent = "Try again";
      retry.style.marginLeft = ".6rem";
      retry.addEventListener("click", () => {
        this.reachable = null;
        this.show(this.streamId);
      });
      this.message.append(" ", retry);
    }
  }
}
