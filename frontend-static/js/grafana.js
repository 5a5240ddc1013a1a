// The Grafana dashboard in an iframe, for the selected stream (var-stream_id). Grafana is probed
// first, so that a stopped Grafana shows a message instead of an empty box.

const PROBE_TIMEOUT_MS = 4000;

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

  async show(streamId) {
    this.streamId = streamId;
    const url = this.urlFor(streamId);
    this.link.href = url;
    if (!this.dashboardUrl) {
      this.say("No Grafana dashboard URL is configured (grafanaDashboardUrl in config.js).", true);
      return;
    }
    if (this.reachable === null) await this.probe();
    if (streamId !== this.streamId) return;
    if (!this.reachable) return;
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
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
    try {
      // An opaque answer is enough: it proves that something serves the dashboard URL.
      await fetch(this.dashboardUrl, { mode: "no-cors", cache: "no-store", signal: controller.signal });
      this.reachable = true;
    } catch {
      this.reachable = false;
      const origin = new URL(this.dashboardUrl, window.location.href).origin;
      this.say(`Grafana is not reachable at ${origin}. Start it (docker compose up grafana) or set ` +
        "grafanaDashboardUrl in config.js; the live preview above works without it.", true, true);
    } finally {
      clearTimeout(timer);
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
