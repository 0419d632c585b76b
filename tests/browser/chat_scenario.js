// The chat demo in a real browser: Debian's chromium driven by playwright-core.
// test_chat_browser.py starts the server and runs this script:
//   node chat_scenario.js URL SCREENSHOT SERVER_PID
// Three tabs: alice and bob in room A, carol in room B. Messages cross both
// ways inside A and never reach B; a reload reconnects; /who lists A;
// /msg reaches carol in B. A fourth tab, erin's in A, loses its connection
// (closed with 1012 through playwright's WebSocket route) while alice talks,
// reconnects with from= and shows each missed message exactly once. When
// the server stops, every tab shows the close code and reason. Exit code 0
// when every step passed. Bounded: each wait has a timeout, and a watchdog
// ends the run.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");

const [url, screenshot, serverPid] = process.argv.slice(2);
const WAIT_MS = 15000;    // one step
const WATCHDOG_MS = 120000;  // the whole scenario

// This machine's network is closed: these flags keep Chromium from its own
// background connections (updates, sync, QUIC probes), which would only fail.
const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let step = "start";
function say(what) {
  step = what;
  console.log(`chat_browser: ${what}`);
}

function loadPlaywright() {
  try {
    return require("playwright-core");
  } catch (e) {
    console.error("chat_browser: cannot load playwright-core (NODE_PATH=" + (process.env.NODE_PATH || "") +
                  "): run scripts/deps.sh, which installs it into build/node");
    process.exit(2);
  }
}

async function main() {
  if (!url || !screenshot || !serverPid) throw new Error("usage: node chat_scenario.js URL SCREENSHOT SERVER_PID");
  const { chromium } = loadPlaywright();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "wsgate-chromium-"));
  let ctx = null;
  const watchdog = setTimeout(() => {
    console.error(`chat_browser: FAILED: the scenario took longer than ${WATCHDOG_MS / 1000} s (at: ${step})`);
    process.exit(1);
  }, WATCHDOG_MS);
  try {
    say("launching /usr/bin/chromium with a fresh profile");
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 900, height: 640 },
      timeout: 60000,
    });
    ctx.setDefaultTimeout(WAIT_MS);
    await scenario(ctx);
  } finally {
    clearTimeout(watchdog);
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// The log lines of a tab: [{kind, text}].
function lines(page) {
  return page.$$eval("#log li", (items) => items.map((li) => ({ kind: li.className, text: li.textContent })));
}

async function expectLine(page, who, kind, text) {
  const li = page.locator(`#log li.${kind}`, { hasText: text });
  try {
    await li.first().waitFor({ timeout: WAIT_MS });
  } catch (e) {
    throw new Error(`${who}'s tab shows no ${kind} line with ${JSON.stringify(text)}; it shows ` +
                    JSON.stringify(await lines(page)));
  }
}

async function expectNoLine(page, who, text) {
  const seen = (await lines(page)).filter((l) => l.text.includes(text));
  if (seen.length) throw new Error(`${who}'s tab shows ${JSON.stringify(seen)}, which was not for it`);
}

async function expectStatus(page, who, text) {
  try {
    await page.locator("#status", { hasText: text }).waitFor({ timeout: WAIT_MS });
  } catch (e) {
    throw new Error(`${who}'s status is ${JSON.stringify(await page.textContent("#status"))}, ` +
                    `not ${JSON.stringify(text)}`);
  }
}

// prepare(page), if given, runs before the page loads (e.g. to route its WebSocket).
async function open(ctx, room, name, prepare) {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error(`chat_browser: ${name}'s page error: ${e.message}`));
  if (prepare) await prepare(page);
  await page.goto(`${url}?room=${room}&name=${name}`);
  await expectStatus(page, name, `connected as ${name} in ${room}`);
  return page;
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

async function scenario(ctx) {
  say("alice and bob open room A, carol room B");
  const alice = await open(ctx, "A", "alice");
  const bob = await open(ctx, "A", "bob");
  const carol = await open(ctx, "B", "carol");
  await expectLine(alice, "alice", "join", "bob joined A");

  say("alice and bob talk in A, both ways");
  await send(alice, "hello from alice");
  await expectLine(bob, "bob", "message", "hello from alice");
  await expectLine(alice, "alice", "message", "hello from alice");
  await send(bob, "hi alice, bob here");
  await expectLine(alice, "alice", "message", "hi alice, bob here");

  say("carol in B sees none of it");
  // carol's own message arrives after everything sent to A before it.
  await send(carol, "carol alone in B");
  await expectLine(carol, "carol", "message", "carol alone in B");
  for (const text of ["hello from alice", "bob here", "joined A"]) await expectNoLine(carol, "carol", text);
  await expectNoLine(alice, "alice", "carol alone in B");
  await expectNoLine(bob, "bob", "carol alone in B");

  say("bob reloads his tab: it reconnects and works again");
  await bob.reload();
  await expectStatus(bob, "bob", "connected as bob in A");
  await expectLine(alice, "alice", "leave", "bob left A");
  await send(bob, "back after reload");
  await expectLine(alice, "alice", "message", "back after reload");
  await send(alice, "welcome back");
  await expectLine(bob, "bob", "message", "welcome back");

  say("/who in A lists alice and bob");
  await send(alice, "/who");
  await expectLine(alice, "alice", "who-list", "in A: alice, bob");

  say("/msg reaches carol in B, and only her");
  await send(alice, "/msg carol psst, carol");
  await expectLine(carol, "carol", "direct", "psst, carol");
  await expectLine(alice, "alice", "direct", "psst, carol");
  await send(bob, "/who");
  await expectLine(bob, "bob", "who-list", "in A: alice, bob");
  await expectNoLine(bob, "bob", "psst");

  say("carol's tab holds her own lines only, nothing of room A");
  const carolLines = await lines(carol);
  const want = [["welcome", "you are carol in room B"], ["join", "carol joined B"],
                ["message mine", "carolcarol alone in B"], ["direct", "alice \u2192 carolpsst, carol"]];
  if (JSON.stringify(carolLines.map((l) => [l.kind, l.text])) !== JSON.stringify(want))
    throw new Error(`carol's tab shows ${JSON.stringify(carolLines)}, want exactly ${JSON.stringify(want)}`);

  say(`screenshot of alice's tab: ${screenshot}`);
  fs.mkdirSync(path.dirname(screenshot), { recursive: true });
  await alice.screenshot({ path: screenshot });

  await dropAndResume(ctx, alice);

  say("the server stops: every tab shows close 1001 going away");
  process.kill(Number(serverPid), "SIGTERM");
  for (const [page, who] of [[alice, "alice"], [bob, "bob"], [carol, "carol"]]) {
    await expectLine(page, who, "closed", "connection closed 1001 going away");
    await expectStatus(page, who, "reconnecting in");
  }
  say("passed");
}

// erin's tab in A loses its connection; alice talks meanwhile; erin's tab
// reconnects with from= (the "pos" of the last room message it showed) and
// shows each message it missed exactly once, then the live ones.
async function dropAndResume(ctx, alice) {
  say("erin opens room A through a WebSocket route the scenario controls");
  const sockets = [];  // erin's WebSockets in the order the page opened them
  let release;
  const reconnectMayPass = new Promise((resolve) => { release = resolve; });
  const erin = await open(ctx, "A", "erin", (page) => page.routeWebSocket((u) => u.pathname === "/chat", async (ws) => {
    sockets.push(ws);
    if (sockets.length > 1) await reconnectMayPass;  // held until alice has talked
    ws.server = ws.connectToServer();
  }));
  await expectLine(alice, "alice", "join", "erin joined A");
  await send(alice, "before erin's drop");
  await expectLine(erin, "erin", "message", "before erin's drop");

  say("erin's connection is closed with 1012 (a code the page retries); alice talks meanwhile");
  // The route closes one side at a time: the page's with 1012, then the server's.
  await sockets[0].close({ code: 1012, reason: "service restart" });
  await expectLine(erin, "erin", "closed", "connection closed 1012 service restart");
  await sockets[0].server.close({ code: 1000, reason: "the page is gone" });
  await expectLine(alice, "alice", "leave", "erin left A");
  const missed = ["missed one", "missed two", "missed three"];
  for (const text of missed) await send(alice, text);
  await expectLine(alice, "alice", "message", "missed three");
  await expectNoLine(erin, "erin", "missed one");

  say("erin's tab reconnects with from= and shows each missed message once, then live ones");
  release();
  await expectStatus(erin, "erin", "connected as erin in A");
  const url = new URL(sockets[sockets.length - 1].url());
  if (!/^[0-9]+-[0-9]+$/.test(url.searchParams.get("from") || ""))
    throw new Error(`erin's tab reconnected to ${url} without from=EPOCH-OFFSET`);
  await expectLine(erin, "erin", "message", "missed three");
  await send(alice, "live after erin's return");
  await expectLine(erin, "erin", "message", "live after erin's return");
  const shown = (await lines(erin)).map((l) => [l.kind, l.text]);
  const count = (kind, text) => shown.filter(([k, t]) => k.split(" ")[0] === kind && t.endsWith(text)).length;
  for (const [kind, text, times] of [["message", "before erin's drop", 1], ["message", "missed one", 1],
                                     ["message", "missed two", 1], ["message", "missed three", 1],
                                     ["message", "live after erin's return", 1], ["leave", "erin left A", 1],
                                     ["join", "erin joined A", 2], ["error", "", 0]]) {
    if (count(kind, text) !== times)
      throw new Error(`erin's tab shows ${count(kind, text)} ${kind} lines ${JSON.stringify(text)}, ` +
                      `want ${times}: ${JSON.stringify(shown)}`);
  }
  const order = missed.map((text) => shown.findIndex(([, t]) => t.endsWith(text)));
  if (order.some((i, n) => n && i <= order[n - 1]))
    throw new Error(`erin's tab shows the missed messages out of order: ${JSON.stringify(shown)}`);
  await erin.close();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`chat_browser: FAILED at "${step}": ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  });
