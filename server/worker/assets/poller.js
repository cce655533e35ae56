/*
 * poller.js - follow a WhatsApp session's status through wahagate.
 *
 * A dependency-free ES module, served by wahagate at /poller.js and usable
 * on its own in any frontend:
 *
 *   import { WahaPoller } from "https://gateway.example/poller.js";
 *   const poller = new WahaPoller({ baseUrl: "https://gateway.example", session: "default" });
 *   poller.addEventListener("status", (e) => render(e.detail));
 *   poller.start();
 *
 * How it follows the status:
 *  1. reads /api/waha/config (initialCheckDelay, baseInterval,
 *     authenticatedInterval, maxInterval, backoffMultiplier);
 *  2. waits initialCheckDelay;
 *  3. subscribes to /api/waha/events (Server-Sent Events). While the stream
 *     is healthy it does not poll at all;
 *  4. when the stream is unavailable it polls /api/waha/status with
 *     If-None-Match: every baseInterval, authenticatedInterval while the
 *     session is WORKING, or the server's poll.nextMs when it gives one; each
 *     failure multiplies the interval by backoffMultiplier up to
 *     maxInterval; the first success returns to the normal interval. It
 *     tries the stream again every maxInterval.
 *
 * Events (EventTarget): "status" (detail: the status object, every time one
 * arrives), "change" (detail: the status object, when `status` differs from
 * the last one), "mode" (detail: "stream" or "poll"), "error" (detail: an
 * Error). Options: baseUrl, session, accessToken (sent as Authorization and,
 * for the stream, ?access_token=), useStream (default true), and any of the
 * five config values to override what the server says.
 */

const CONFIG_KEYS = ["initialCheckDelay", "baseInterval", "authenticatedInterval",
                     "maxInterval", "backoffMultiplier"];

export class WahaPoller extends EventTarget {
  constructor(options = {}) {
    super();
    this.baseUrl = (options.baseUrl || "").replace(/\/$/, "");
    this.session = options.session || null;
    this.accessToken = options.accessToken || null;
    this.useStream = options.useStream !== false;
    this.overrides = {};
    for (const key of CONFIG_KEYS) {
      if (options[key] !== undefined) this.overrides[key] = options[key];
    }
    this.config = null;
    this.status = null;
    this.mode = null;
    this.failures = 0;
    this.etag = null;
    this.timer = null;
    this.source = null;
    this.running = false;
    this.retryStreamAt = 0;
  }

  /** Start following; resolves once the first check is scheduled. */
  async start() {
    if (this.running) return;
    this.running = true;
    this.config = Object.assign(
      { initialCheckDelay: 5000, baseInterval: 15000, authenticatedInterval: 30000,
        maxInterval: 60000, backoffMultiplier: 2 },
      await this._fetchConfig(), this.overrides);
    this._later(() => this._begin(), this.config.initialCheckDelay);
  }

  /** Stop: no more requests, the stream is closed. */
  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.source) this.source.close();
    this.source = null;
  }

  /** The interval polling uses now (for tests and display). */
  currentInterval() {
    const c = this.config;
    let base = this.status && this.status.status === "WORKING"
      ? c.authenticatedInterval : c.baseInterval;
    if (this.status && this.status.poll && this.status.poll.nextMs > 0 && this.failures === 0) {
      base = this.status.poll.nextMs;
    }
    const backedOff = base * Math.pow(c.backoffMultiplier, this.failures);
    return Math.min(backedOff, c.maxInterval);
  }

  _url(path) {
    const params = new URLSearchParams();
    if (this.session) params.set("session", this.session);
    return this.baseUrl + path + (params.toString() ? "?" + params : "");
  }

  _headers() {
    const h = {};
    if (this.accessToken) h["Authorization"] = "Bearer " + this.accessToken;
    return h;
  }

  async _fetchConfig() {
    try {
      const r = await fetch(this.baseUrl + "/api/waha/config", { headers: this._headers() });
      if (r.ok) return await r.json();
    } catch (err) {
      this._emit("error", err);
    }
    return {};
  }

  _later(fn, ms) {
    clearTimeout(this.timer);
    if (this.running) this.timer = setTimeout(fn, ms);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setMode(mode) {
    if (this.mode !== mode) {
      this.mode = mode;
      this._emit("mode", mode);
    }
  }

  _deliver(status) {
    const changed = !this.status || this.status.status !== status.status;
    this.status = status;
    this._emit("status", status);
    if (changed) this._emit("change", status);
  }

  _begin() {
    if (this.useStream && typeof EventSource !== "undefined") this._openStream();
    else this._poll();
  }

  _openStream() {
    const url = new URL(this._url("/api/waha/events"), location.href);
    if (this.accessToken) url.searchParams.set("access_token", this.accessToken);
    let opened = false;
    const source = new EventSource(url.toString(), { withCredentials: true });
    this.source = source;
    source.onopen = () => {
      opened = true;
      clearTimeout(this.timer);
      this._setMode("stream");
    };
    source.addEventListener("status", (e) => {
      try {
        this._deliver(JSON.parse(e.data));
      } catch (err) {
        this._emit("error", err);
      }
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CONNECTING && opened) {
        return; /* the browser reconnects by itself, resuming by Last-Event-ID */
      }
      /* The stream is unavailable: poll, and try the stream again later. */
      source.close();
      if (this.source === source) this.source = null;
      this._setMode("poll");
      this._poll();
    };
  }

  async _poll() {
    if (!this.running) return;
    this._setMode("poll");
    const headers = this._headers();
    if (this.etag) headers["If-None-Match"] = this.etag;
    try {
      const r = await fetch(this._url("/api/waha/status"), { headers, cache: "no-store" });
      if (r.status === 304) {
        this.failures = 0;
      } else if (r.ok) {
        this.etag = r.headers.get("ETag");
        this.failures = 0;
        this._deliver(await r.json());
      } else {
        throw new Error("HTTP " + r.status);
      }
    } catch (err) {
      this.failures += 1;
      this._emit("error", err);
    }
    if (!this.running) return;
    const wait = this.currentInterval();
    if (!this.retryStreamAt) this.retryStreamAt = Date.now() + this.config.maxInterval;
    if (this.useStream && typeof EventSource !== "undefined" && Date.now() >= this.retryStreamAt) {
      this.retryStreamAt = 0;
      this._later(() => this._openStream(), wait);
    } else {
      this._later(() => this._poll(), wait);
    }
  }
}
