// Browser tests of the console in real headless Chromium (Debian's `chromium`, driven by
// playwright-core) against real processes: the fake provider, hero_aibroker_server,
// hero_aibroker_services (with mcp_ping) and hero_aibroker_admin, all from target/debug.
// Screenshots of every page, light and dark, go to target/browser-results/.
//
//   node --test tests/browser/    (HERO_BIN_DIR=target/debug, CHROMIUM=/usr/bin/chromium)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";
import { request as httpRequest } from "node:http";
import { chromium } from "playwright-core";

const REPO = resolve(import.meta.dirname, "../..");
const BIN = resolve(REPO, process.env.HERO_BIN_DIR || "target/debug");
const RESULTS = join(REPO, "target", "browser-results");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TOKEN = "console-admin-token-0123456789abcdef";
const CASCADE_TOKEN = "console-cascade-token-0123456789abcdef";

const procs = [];
let work, env, fakeUrl, browser, openPort, guardedPort;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); });
    s.on("error", fail);
  });
}

function start(name, args, extraEnv = {}) {
  const log = join(work, `${name}-${procs.length}.log`);
  const p = spawn(join(BIN, name), args, { env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  p.stdout.on("data", (d) => { out += d; });
  p.stderr.on("data", (d) => { out += d; });
  p.on("exit", () => writeFileSync(log, out));
  const entry = { name, p, output: () => out };
  procs.push(entry);
  return entry;
}

async function until(what, check, ms = 20000) {
  const t0 = Date.now();
  for (;;) {
    try { if (await check()) return; } catch { /* not yet */ }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sock = (f) => join(work, "sockets", "hero_aibroker", f);

function startBroker() {
  return start("hero_aibroker_server", ["--models-config", join(work, "models.yml")]);
}

async function stopProc(entry) {
  entry.p.kill("SIGTERM");
  await new Promise((r) => entry.p.exitCode !== null ? r() : entry.p.on("exit", r));
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "hab-console-"));
  mkdirSync(RESULTS, { recursive: true });
  env = {
    PATH: process.env.PATH, HOME: work, HERO_SOCKET_DIR: join(work, "sockets"),
    RUST_LOG: "info", FAKE_KEYS: "sk-fake-1", DATABASE_URL: join(work, "broker.db"),
  };
  const fake = start("hero_aibroker_fake_provider", ["--chunk-delay-ms", "40"]);
  await until("the fake provider", () => /listening /.test(fake.output()));
  fakeUrl = fake.output().match(/listening (\S+)/)[1];
  const slow = start("hero_aibroker_fake_provider", ["--chunk-delay-ms", "400"]);
  await until("the slow fake provider", () => /listening /.test(slow.output()));
  const slowUrl = slow.output().match(/listening (\S+)/)[1];
  writeFileSync(join(work, "models.yml"), `
providers:
  - {name: fake, base_url: "${fakeUrl}", api_key_env: FAKE_KEYS}
  - {name: backup, base_url: "${fakeUrl}"}
  - {name: slow, base_url: "${slowUrl}"}
models:
  slow-chat:
    display_name: Slow chat
    tier: cheap
    context_window: 8192
    backends:
      - {provider: slow, model_id: up-slow, priority: 1, input_cost: 1, output_cost: 1}
  chat:
    display_name: Chat
    tier: standard
    context_window: 8192
    backends:
      - {provider: fake, model_id: up-chat, priority: 1, input_cost: 2, output_cost: 8}
      - {provider: backup, model_id: up-backup, priority: 2, input_cost: 1, output_cost: 1}
`);
  writeFileSync(join(work, "mcp.json"), JSON.stringify({ mcpServers: [{ name: "ping", command: join(BIN, "mcp_ping") }] }));
  startBroker();
  await until("rpc.sock", () => existsSync(sock("rpc.sock")));
  start("hero_aibroker_services", ["--mcp-config", join(work, "mcp.json"), "--audit-db", join(work, "audit.db")]);
  await until("mcp.sock", () => existsSync(sock("mcp.sock")));
  openPort = await freePort();
  start("hero_aibroker_admin", ["--http", `127.0.0.1:${openPort}`]);
  guardedPort = await freePort();
  // A second console over the same broker, with the admin token: the login gate.
  start("hero_aibroker_admin", ["--http", `127.0.0.1:${guardedPort}`, "--admin-sock", join(work, "guarded.sock")],
    { ADMIN_TOKEN: TOKEN });
  await until("the console", async () => (await fetch(`http://127.0.0.1:${openPort}/health`)).ok);
  await until("the guarded console", async () => (await fetch(`http://127.0.0.1:${guardedPort}/health`)).ok);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  for (const e of procs.reverse()) { if (e.p.exitCode === null) e.p.kill("SIGTERM"); }
});

/// A page that fails the test on any console error or uncaught exception.
async function page(port = openPort, scheme = "light") {
  const ctx = await browser.newContext({ colorScheme: scheme, viewport: { width: 1280, height: 900 } });
  const p = await ctx.newPage();
  p.errors = [];
  p.on("console", (m) => { if (m.type() === "error") p.errors.push(m.text()); });
  p.on("pageerror", (e) => p.errors.push(String(e)));
  p.base = `http://127.0.0.1:${port}`;
  return p;
}

/// One chat completion straight to rest.sock, so the pages have rows and charts.
function chatOnce() {
  return new Promise((ok, fail) => {
    const body = JSON.stringify({ model: "chat", messages: [{ role: "user", content: "hi" }] });
    const r = httpRequest({ socketPath: sock("rest.sock"), path: "/v1/chat/completions", method: "POST",
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      res.resume(); res.on("end", () => (res.statusCode === 200 ? ok() : fail(new Error(`chat: ${res.statusCode}`))));
    });
    r.on("error", fail); r.end(body);
  });
}

const PAGES = [
  ["overview", "/"], ["models", "/models"], ["providers", "/providers"], ["keys", "/keys"],
  ["usage", "/usage"], ["usage-30d", "/usage?range=30d&group_by=key"], ["logs", "/logs"], ["inflight", "/inflight"], ["routing", "/routing?model=chat"], ["mcp", "/mcp"],
  ["playground", "/playground"], ["me", "/me"], ["cascade", "/cascade"],
];

test("every page renders without a console error, light and dark", async () => {
  // Some traffic first, so the pages have rows and charts.
  for (let i = 0; i < 5; i++) await chatOnce();
  for (const scheme of ["light", "dark"]) {
    const p = await page(openPort, scheme);
    for (const [name, path] of PAGES) {
      const resp = await p.goto(p.base + path);
      assert.equal(resp.status(), 200, `${path} answered ${resp.status()}`);
      await p.waitForLoadState("networkidle");
      assert.ok(await p.locator("main").count(), `${path} has a main`);
      for (const chart of await p.locator(".chart[data-series]").all()) {
        assert.ok(await chart.locator("canvas").count(), `${path}: a chart was drawn`);
      }
      assert.equal(await p.locator(".trouble").count(), 0, `${path} reports trouble: ${await p.locator(".trouble").allTextContents()}`);
      await p.screenshot({ path: join(RESULTS, `${name}-${scheme}.png`), fullPage: true });
    }
    assert.deepEqual(p.errors, [], `console errors (${scheme})`);
    await p.context().close();
  }
});

test("the playground streams an answer and says who answered", async () => {
  const p = await page();
  await p.goto(p.base + "/playground");
  await p.selectOption("select[name=model]", "chat");
  await p.click("#playground button[type=submit]");
  // The text grows while the stream runs (40 ms between events), then the footer fills in.
  await p.waitForFunction(() => document.getElementById("answer").textContent.length > 0);
  const partial = await p.locator("#answer").textContent();
  await p.waitForFunction(() => document.getElementById("answer").dataset.done === "ok", null, { timeout: 15000 });
  const whole = await p.locator("#answer").textContent();
  assert.ok(whole.length > partial.length, "the answer arrived in pieces");
  const meta = await p.locator("#answer-meta").textContent();
  assert.match(meta, /answered by fake-0/);
  assert.match(meta, /first token \d+ ms/);
  await p.screenshot({ path: join(RESULTS, "playground-answered-light.png"), fullPage: true });
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

// Before any key exists: the raw requests below carry none.
test("a running stream shows In flight and is cancelled from there", async () => {
  // A slow stream (400 ms between events) straight to rest.sock, read as it comes.
  let text = "";
  const ended = new Promise((ok, fail) => {
    const body = JSON.stringify({ model: "slow-chat", stream: true, messages: [{ role: "user", content: "hi" }] });
    const r = httpRequest({ socketPath: sock("rest.sock"), path: "/v1/chat/completions", method: "POST",
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (d) => { text += d; });
      res.on("end", ok);
    });
    r.on("error", fail); r.end(body);
  });
  const p = await page();
  p.on("dialog", (d) => d.accept());
  await p.goto(p.base + "/inflight");
  const row = p.locator("#inflight tr[data-request]", { hasText: "slow-chat" });
  await row.waitFor({ timeout: 10000 });
  assert.match(await row.textContent(), /slow-0/);
  await p.screenshot({ path: join(RESULTS, "inflight-running-light.png"), fullPage: true });
  await row.locator("button.danger").click();
  await p.locator("#cancel-result", { hasText: "cancelled" }).waitFor();
  await ended;
  assert.match(text, /request_cancelled/);
  assert.ok(!text.includes("[DONE]"), "the stream was cut, not finished");
  await p.locator("#inflight tr[data-request]").first().waitFor({ state: "detached", timeout: 10000 });
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test("a key is created, listed with its secret shown once, and revoked", async () => {
  const p = await page();
  p.on("dialog", (d) => d.accept());
  await p.goto(p.base + "/keys");
  await p.fill("input[name=name]", "browser-key");
  await p.fill("input[name=budget]", "2.5");
  await p.click("form[hx-post='/keys'] button[type=submit]");
  await p.waitForSelector("#new-secret");
  assert.match(await p.locator("#new-secret").textContent(), /^sk-hab-[0-9a-f]{64}$/);
  const row = p.locator("#keys tr", { hasText: "browser-key" });
  await row.waitFor();
  assert.match(await row.textContent(), /active/);
  await row.locator("button.danger").click();
  await p.waitForFunction(() => [...document.querySelectorAll("#keys tr")].some((r) => r.textContent.includes("browser-key") && r.textContent.includes("revoked")));
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test("a priority change shows on the Routing page", async () => {
  const p = await page();
  await p.goto(p.base + "/routing?model=chat");
  const first = () => p.locator("#candidates tbody tr").first().textContent();
  assert.match(await first(), /fake/);
  await p.goto(p.base + "/providers");
  const card = p.locator("section.card", { has: p.locator("h2", { hasText: /^backup$/ }) });
  await card.locator("input[name=priority]").fill("0");
  await card.locator("form.inline button").click();
  await card.locator(".result", { hasText: "priority 0" }).waitFor();
  await p.goto(p.base + "/routing?model=chat");
  assert.match(await first(), /backup/);
  // Blank clears it again.
  await p.goto(p.base + "/providers");
  await card.locator("input[name=priority]").fill("");
  await card.locator("form.inline button").click();
  await card.locator(".result", { hasText: "cleared" }).waitFor();
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test("an MCP tool is called from its form", async () => {
  const p = await page();
  await p.goto(p.base + "/mcp");
  const tool = p.locator("details.tool[data-tool='echo']");
  await tool.locator(":scope > summary").click();
  await tool.locator("input[name='s:text']").fill("hello from the browser");
  await tool.locator("form button[type=submit]").click();
  const result = tool.locator("[data-tool-result]");
  await result.waitFor();
  assert.match(await result.textContent(), /hello from the browser/);
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test("a mother is added, edited, disabled and removed on the Cascade tab; a mother's console says so", async () => {
  // A second broker, a mother, on its own sockets with a TCP listener.
  const motherPort = await freePort();
  const motherEnv = { HERO_SOCKET_DIR: join(work, "mother-sockets"), DATABASE_URL: join(work, "mother.db"),
    HERO_AIBROKER_CASCADE_TOKEN: CASCADE_TOKEN };
  start("hero_aibroker_server", ["--models-config", join(work, "models.yml"), "--mother",
    "--address", "127.0.0.1", "--port", String(motherPort)], motherEnv);
  await until("the mother", () => existsSync(join(work, "mother-sockets", "hero_aibroker", "rpc.sock")));
  const p = await page();
  p.on("dialog", (d) => d.accept());
  await p.goto(p.base + "/cascade");
  await p.fill("form[hx-post='/cascade'] input[name=address]", "127.0.0.1");
  await p.fill("form[hx-post='/cascade'] input[name=port]", String(motherPort));
  await p.fill("form[hx-post='/cascade'] input[name=label]", "browser-mother");
  await p.fill("form[hx-post='/cascade'] input[name=priority]", "1");
  await p.fill("form[hx-post='/cascade'] input[name=token]", CASCADE_TOKEN);
  await p.click("form[hx-post='/cascade'] button[type=submit]");
  await p.locator("#added", { hasText: "added ai_broker_mother" }).waitFor();
  const row = p.locator("#mothers tr[data-mother-id=ai_broker_mother]");
  await row.waitFor();
  const text = await row.textContent();
  assert.match(text, /browser-mother/);
  assert.match(text, /healthy/);
  assert.match(text, /set/);
  assert.ok(Number(await row.locator("td.num").nth(1).textContent()) > 0, "the mother's models were listed");
  assert.ok(!(await p.content()).includes(CASCADE_TOKEN), "the token is shown");
  await p.screenshot({ path: join(RESULTS, "cascade-mother-light.png"), fullPage: true });
  // Edit the priority, disable, enable.
  await row.locator("summary").click();
  await row.locator("input[name=priority]").fill("3");
  await row.locator("form button[type=submit]").click();
  await p.waitForFunction(() => document.querySelector("#mothers tr[data-mother-id=ai_broker_mother] td.num")?.textContent.trim() === "3");
  await p.locator("#mothers tr[data-mother-id=ai_broker_mother] button", { hasText: "Disable" }).click();
  await p.waitForFunction(() => /disabled/.test(document.querySelector("#mothers tr[data-mother-id=ai_broker_mother]")?.textContent ?? ""));
  await p.locator("#mothers tr[data-mother-id=ai_broker_mother] button", { hasText: "Enable" }).click();
  await p.waitForFunction(() => /healthy/.test(document.querySelector("#mothers tr[data-mother-id=ai_broker_mother]")?.textContent ?? ""));
  // The Providers page tags the mother.
  await p.goto(p.base + "/providers");
  const card = p.locator("section.card", { has: p.locator("h2", { hasText: /^ai_broker_mother$/ }) });
  assert.match(await card.locator("a.badge").textContent(), /cascade/);
  // Removed.
  await p.goto(p.base + "/cascade");
  await p.locator("#mothers tr[data-mother-id=ai_broker_mother] button.danger").click();
  await p.locator("#mothers", { hasText: "No mothers" }).waitFor();
  assert.deepEqual(p.errors, []);
  await p.context().close();
  // A console in front of the mother shows the banner on every page.
  const mconsolePort = await freePort();
  start("hero_aibroker_admin", ["--http", `127.0.0.1:${mconsolePort}`], motherEnv);
  await until("the mother's console", async () => (await fetch(`http://127.0.0.1:${mconsolePort}/health`)).ok);
  const m = await page(mconsolePort);
  for (const path of ["/", "/keys"]) {
    await m.goto(m.base + path);
    await m.locator("#mother-banner .banner").waitFor();
    assert.match(await m.locator("#mother-banner").textContent(), /mother/);
  }
  await m.screenshot({ path: join(RESULTS, "mother-banner-light.png"), fullPage: true });
  assert.deepEqual(m.errors, []);
  await m.context().close();
});

test("with ADMIN_TOKEN the console asks for it, and refuses changes without the CSRF token", async () => {
  const p = await page(guardedPort);
  await p.goto(p.base + "/keys");
  assert.match(p.url(), /\/login$/);
  await p.fill("input[name=secret]", "not-the-token");
  await p.click("button[type=submit]");
  assert.match(await p.locator(".error").textContent(), /neither the admin token/);
  await p.fill("input[name=secret]", TOKEN);
  await p.click("button[type=submit]");
  await p.waitForURL(p.base + "/");
  assert.equal(await p.locator(".badge.warn").count(), 0, "no 'unprotected' badge");
  // Signed in: a change without the CSRF header is refused, with it accepted.
  const without = await p.request.post(p.base + "/keys", { form: { name: "x" } });
  assert.equal(without.status(), 403);
  const csrf = await p.locator("body").getAttribute("data-csrf");
  const withToken = await p.request.post(p.base + "/keys", { form: { name: "csrf-ok" }, headers: { "x-csrf-token": csrf } });
  assert.equal(withToken.status(), 200);
  assert.match(await withToken.text(), /csrf-ok/);
  await p.screenshot({ path: join(RESULTS, "login-ok-light.png"), fullPage: true });
  await p.context().close();
  // The secret of a key, or the token, never shows in a page.
  const q = await page(guardedPort);
  await q.goto(q.base + "/login");
  await q.fill("input[name=secret]", TOKEN);
  await q.click("button[type=submit]");
  await q.goto(q.base + "/keys");
  const html = await q.content();
  assert.ok(!html.includes(TOKEN), "the admin token is in a page");
  assert.ok(!/sk-hab-[0-9a-f]{64}/.test(html), "a key secret is in the key list");
  await q.context().close();
});

test("a broker stopped mid-test is reported, and recovered from without a reload of the console", async () => {
  const p = await page();
  await p.goto(p.base + "/");
  assert.equal(await p.locator(".trouble").count(), 0);
  const broker = procs.find((e) => e.name === "hero_aibroker_server" && e.p.exitCode === null);
  await stopProc(broker);
  const down = await p.goto(p.base + "/");
  assert.equal(down.status(), 200, "the console itself still answers");
  assert.match(await p.locator(".trouble").first().textContent(), /does not answer on rpc\.sock/);
  await p.screenshot({ path: join(RESULTS, "broker-down-light.png"), fullPage: true });
  startBroker();
  await until("the broker back", () => existsSync(sock("rpc.sock")));
  await until("the console to recover", async () => {
    await p.goto(p.base + "/");
    return (await p.locator(".trouble").count()) === 0;
  });
  assert.deepEqual(p.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  await p.context().close();
});

test("screenshots of a request's routing timeline", async () => {
  const p = await page();
  await p.goto(p.base + "/logs");
  const link = p.locator("#logs tbody a").first();
  await link.waitFor();
  await link.click();
  await p.locator("#timeline li").first().waitFor();
  assert.match(await p.locator("#timeline").textContent(), /ok/);
  for (const scheme of ["light", "dark"]) {
    await p.emulateMedia({ colorScheme: scheme });
    await p.screenshot({ path: join(RESULTS, `request-${scheme}.png`), fullPage: true });
  }
  assert.deepEqual(p.errors, []);
  await p.context().close();
  assert.ok(readFileSync(join(RESULTS, "overview-light.png")).length > 1000);
});

test("the secret canary: no log of the console or the broker holds a secret", async () => {
  // The admin token, the provider key and every key secret created through the console.
  const secrets = [TOKEN, "sk-fake-1", CASCADE_TOKEN];
  const admin = procs.find((e) => e.name === "hero_aibroker_admin");
  assert.match(admin.output(), /hero_aibroker_admin listening/, "the logs are there to search");
  assert.match(procs.find((e) => e.name === "hero_aibroker_server").output(), /request/);
  for (const e of procs) {
    const out = e.output();
    for (const secret of secrets) {
      assert.ok(!out.includes(secret), `${e.name}'s log holds a secret`);
    }
    assert.ok(!/sk-hab-[0-9a-f]{64}/.test(out), `${e.name}'s log holds a broker key secret`);
  }
  // Nor does a page an operator sees after the keys were made.
  const p = await page();
  for (const path of ["/keys", "/providers", "/usage?group_by=key", "/logs", "/inflight", "/", "/cascade"]) {
    await p.goto(p.base + path);
    const html = await p.content();
    assert.ok(!html.includes("sk-fake-1"), `${path} shows the provider key`);
    assert.ok(!html.includes(CASCADE_TOKEN), `${path} shows the cascade token`);
    assert.ok(!/sk-hab-[0-9a-f]{64}/.test(html), `${path} shows a broker key secret`);
  }
  await p.context().close();
});

