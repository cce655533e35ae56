/*
 * dashboard.mjs - drive Debian's Chromium (through playwright-core) against
 * a running wahagate and its WAHA simulator; one scenario per run.
 *
 *   node dashboard.mjs SCENARIO --gateway URL --sim URL --out DIR [--origin-port N]
 *
 * Scenarios (each exits 0 when the behaviour holds, 1 with a reason if not):
 *   render  the dashboard shows every session's status and WAHA's health;
 *           saves DIR/dashboard.png
 *   sse     a status changed in the simulator appears on the page within 1 s,
 *           pushed through /api/waha/events (the page makes no status polls)
 *   poll    with the event stream blocked the page polls /api/waha/status at
 *           the configured interval, backs off (x backoffMultiplier up to
 *           maxInterval) while the gateway answers errors, and returns to the
 *           normal interval after the first success
 *   qr      a session waiting for a scan shows its QR image
 *   cors    a page on another origin (127.0.0.1:N) imports /poller.js from
 *           the gateway and follows the status through the event stream
 *   auth    the gateway needs a client key: the page asks for it once,
 *           keeps it for the tab (a reload does not ask again), and sends it
 *           on every call and on the event stream (a change still arrives)
 *
 * The pytest wrapper (tests/integration/test_browser.py) starts the
 * processes, chooses the configuration and stops everything by pid.
 */

import http from "node:http";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const scenario = args[0];
const opt = (name, fallback) => {
  const i = args.indexOf("--" + name);
  return i >= 0 ? args[i + 1] : fallback;
};
const gateway = opt("gateway");
const sim = opt("sim");
const out = opt("out", ".");

function fail(message) {
  console.error(`FAIL ${scenario}: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
}

function check(condition, message) {
  if (!condition) fail(message);
}

async function simControl(method, path, body) {
  const r = await fetch(sim + path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check(r.ok, `simulator ${method} ${path} -> ${r.status}`);
  return r.json();
}

async function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/* Wait until the card of SESSION shows STATUS; returns the time it took. */
async function waitForStatus(page, session, status, timeout) {
  const started = Date.now();
  await page.waitForSelector(`article[data-session="${session}"][data-status="${status}"]`,
                             { timeout });
  return Date.now() - started;
}

async function render(page) {
  await page.goto(gateway + "/");
  await waitForStatus(page, "default", "WORKING", 15000);
  await waitForStatus(page, "shop", "SCAN_QR_CODE", 15000);
  await page.waitForFunction(() => document.getElementById("health").textContent === "healthy",
                             null, { timeout: 15000 });
  const badge = await page.textContent('article[data-session="default"] .badge');
  check(badge === "WORKING", `badge says ${badge}`);
  const me = await page.textContent('article[data-session="default"] .me');
  check(/@c\.us/.test(me), `account shows "${me}"`);
  await page.waitForFunction(() => document.getElementById("hit").textContent !== "–",
                             null, { timeout: 15000 });
  await page.screenshot({ path: `${out}/dashboard.png`, fullPage: true });
  const phone = await page.context().browser().newContext(
    { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const mobile = await phone.newPage();
  await mobile.goto(gateway + "/");
  await waitForStatus(mobile, "default", "WORKING", 15000);
  const overflow = await mobile.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(overflow <= 1, `the page is ${overflow}px wider than a phone screen`);
  await mobile.screenshot({ path: `${out}/dashboard-phone.png`, fullPage: true });
}

async function sse(page) {
  const polls = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/waha/status")) polls.push(r.url());
  });
  await page.goto(gateway + "/");
  await waitForStatus(page, "default", "WORKING", 15000);
  await page.waitForFunction(() => document.getElementById("mode").textContent.startsWith("live"),
                             null, { timeout: 10000 });
  for (const status of ["STARTING", "WORKING", "FAILED"]) {
    await simControl("POST", "/_sim/sessions/default", { status });
    const took = await waitForStatus(page, "default", status, 5000);
    console.log(`${status} shown after ${took} ms`);
    check(took <= 1000, `${status} took ${took} ms to appear (limit 1000)`);
  }
  check(polls.length === 0, `the page polled while the stream worked: ${polls.join(", ")}`);
}

async function poll(page) {
  const config = await (await fetch(gateway + "/api/waha/config")).json();
  const times = [];
  let failing = false;
  await page.route("**/api/waha/events*", (route) => route.abort());
  await page.route("**/api/waha/status*", (route) => {
    if (!route.request().url().includes("session=")) times.push(Date.now());
    if (failing) {
      return route.fulfill({ status: 503, contentType: "application/json",
                             body: '{"error":{"code":"test","message":"injected"}}' });
    }
    return route.continue();
  });
  await page.goto(gateway + "/");
  await page.waitForFunction(() => document.getElementById("mode").textContent === "polling",
                             null, { timeout: 10000 });
  const settle = async (n, timeout) => {
    const start = times.length;
    const deadline = Date.now() + timeout;
    while (times.length < start + n && Date.now() < deadline) await page.waitForTimeout(50);
    check(times.length >= start + n, `only ${times.length - start} polls in ${timeout} ms`);
    return times.slice(start);
  };
  const gaps = (t) => t.slice(1).map((v, i) => v - t[i]);
  const normal = config.authenticatedInterval;

  const healthy = gaps(await settle(4, 20 * normal));
  console.log(`normal gaps ${healthy}`);
  for (const g of healthy) check(g >= normal * 0.8 && g <= normal * 3, `gap ${g} ms, expected ~${normal}`);

  failing = true;
  const backing = gaps(await settle(5, 40 * config.maxInterval));
  console.log(`failing gaps ${backing}`);
  for (let i = 1; i < backing.length; i++) {
    check(backing[i] >= Math.min(backing[i - 1] * 1.4, config.maxInterval * 0.8),
          `no backoff: gaps ${backing}`);
    check(backing[i] <= config.maxInterval * 1.6, `gap ${backing[i]} above maxInterval`);
  }
  check(backing[backing.length - 1] >= config.maxInterval * 0.8,
        `backoff did not reach maxInterval: ${backing}`);

  failing = false;
  const recovered = gaps(await settle(4, 4 * config.maxInterval + 20 * normal));
  console.log(`recovered gaps ${recovered}`);
  /* The first gap is the last backed-off wait; after the first success the
   * interval is the normal one again. */
  for (const g of recovered.slice(1)) check(g <= normal * 3, `not recovered: gaps ${recovered}`);
  await waitForStatus(page, "default", "WORKING", 10000);
}

async function qr(page) {
  await page.goto(gateway + "/");
  await waitForStatus(page, "shop", "SCAN_QR_CODE", 15000);
  const img = page.locator('article[data-session="shop"] .qr img');
  await img.waitFor({ state: "visible", timeout: 15000 });
  await page.waitForFunction(
    () => {
      const i = document.querySelector('article[data-session="shop"] .qr img');
      return i && i.complete && i.naturalWidth > 0;
    }, null, { timeout: 15000 });
  const hidden = await page.locator('article[data-session="default"] .qr').isHidden();
  check(hidden, "a WORKING session shows a QR code");
  await page.screenshot({ path: `${out}/dashboard-qr.png`, fullPage: true });
}

async function cors(page) {
  const port = Number(opt("origin-port"));
  const html = `<!doctype html><title>waiting</title><script type="module">
    import { WahaPoller } from "${gateway}/poller.js";
    const p = new WahaPoller({ baseUrl: "${gateway}", initialCheckDelay: 0 });
    p.addEventListener("mode", (e) => { document.body.dataset.mode = e.detail; });
    p.addEventListener("status", (e) => { document.title = e.detail.session + ":" + e.detail.status; });
    p.start();
  </script>`;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  try {
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(() => document.title === "default:WORKING", null,
                               { timeout: 15000 });
    await page.waitForFunction(() => document.body.dataset.mode === "stream", null,
                               { timeout: 10000 });
    await simControl("POST", "/_sim/sessions/default", { status: "STARTING" });
    await page.waitForFunction(() => document.title === "default:STARTING", null,
                               { timeout: 5000 });
  } finally {
    server.close();
  }
}

async function auth(page) {
  const key = opt("key");
  await page.goto(gateway + "/");
  await page.waitForSelector("#key-form:not([hidden])", { timeout: 15000 });
  await page.fill("#key", "wrong-key");
  await page.click("#key-form button");
  await page.waitForSelector("#key-error:not([hidden])", { timeout: 15000 });
  await page.fill("#key", key);
  await page.click("#key-form button");
  await waitForStatus(page, "default", "WORKING", 15000);
  const stored = await page.evaluate(() => sessionStorage.getItem("wahagate.key"));
  check(stored === key, "the key is not kept in sessionStorage");
  await page.reload();
  await waitForStatus(page, "default", "WORKING", 15000);
  const asked = await page.isVisible("#key-form");
  check(!asked, "the page asked for the key again after a reload");
  await page.waitForFunction(() => document.getElementById("mode").textContent.startsWith("live"),
                             null, { timeout: 10000 });
  await simControl("POST", "/_sim/sessions/default", { status: "STARTING" });
  await waitForStatus(page, "default", "STARTING", 5000);
}

const scenarios = { render, sse, poll, qr, cors, auth };

async function main() {
  check(scenarios[scenario], `unknown scenario ${scenario}`);
  const browser = await launch();
  try {
    const page = await browser.newPage();
    page.on("pageerror", (err) => console.error(`page error: ${err.message}`));
    await scenarios[scenario](page);
    console.log(`PASS ${scenario}`);
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  if (!process.exitCode) console.error(`FAIL ${scenario}: ${err.stack || err}`);
  process.exitCode = 1;
});
