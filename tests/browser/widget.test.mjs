// Real-browser test of the Parley chat widget.
//
// Run with `node tests/browser/widget.test.mjs` against a running Parley server
// that has a bot with widget settings, knowledge and a site key:
//
//   PARLEY_API           the server's origin, e.g. http://127.0.0.1:41234
//   PARLEY_KEY           a secret API key (pk_...) for the admin checks
//   PARLEY_BOT_ID        the bot
//   PARLEY_SITE_KEY      its site key (ps_...)
//   PARLEY_ARTIFACTS     folder for the screenshots (created)
//   PARLEY_QUICK_PROMPT  a quick prompt of the bot whose answer cites a source
//   PARLEY_XSS_QUESTION  a question whose answer quotes `<img src=x onerror=window.__parleyXss=1>`
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   PARLEY_PAGE_PORT     optional fixed port of the host page (default: any free port)
//
// The host page is served here, on another origin than the API, under a strict
// Content Security Policy (no inline styles or scripts). Exits non-zero with a
// message naming the failed check.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const started = Date.now();
const here = path.dirname(fileURLToPath(import.meta.url));
const WIDGET_DIR = path.resolve(here, '../../api/widget');
const WIDGET_FILES = ['widget.js', 'frame.html', 'frame.js', 'frame.css'];
const TOTAL_LIMIT_MS = 110_000;

let context = null;
let hostServer = null;
let userDataDir = null;
let current = 'setup';
let passed = 0;

async function cleanup() {
  try {
    if (context) await Promise.race([context.close(), sleep(5000)]);
  } catch (_) {
    /* already gone */
  }
  if (hostServer) hostServer.close();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
}

async function fail(message) {
  console.error(`not ok - ${current}: ${message}`);
  console.error(`${passed} passed, 1 failed`);
  await cleanup();
  process.exit(1);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`not ok - setup: environment variable ${name} is not set`);
    process.exit(1);
  }
  return v;
}

const API = need('PARLEY_API').replace(/\/+$/, '');
const KEY = need('PARLEY_KEY');
const BOT = need('PARLEY_BOT_ID');
const SITE_KEY = need('PARLEY_SITE_KEY');
const MEMBER_COOKIE = need('PARLEY_MEMBER_COOKIE');
const MEMBER_CSRF = need('PARLEY_MEMBER_CSRF');
const ARTIFACTS = need('PARLEY_ARTIFACTS');
const QUICK_PROMPT = need('PARLEY_QUICK_PROMPT');
const XSS_QUESTION = need('PARLEY_XSS_QUESTION');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PAGE_PORT = Number(process.env.PARLEY_PAGE_PORT || 0);

const deadline = setTimeout(() => fail(`the test did not finish within ${TOTAL_LIMIT_MS / 1000} s`), TOTAL_LIMIT_MS);

/** Polls `fn` until it returns a truthy value; throws naming `what` on timeout. */
async function until(what, fn, timeout = 10_000, every = 100) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      const why = last instanceof Error ? ` (last error: ${last.message.split('\n')[0]})` : '';
      throw new Error(`timed out after ${timeout / 1000} s waiting for ${what}${why}`);
    }
    await sleep(every);
  }
}

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

async function check(name, fn) {
  current = name;
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    await fail(e && e.message ? e.message : String(e));
  }
  passed++;
  console.log(`ok - ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

async function admin(method, p, body) {
  const res = await fetch(API + p, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p} answered ${res.status}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

// A request as a signed-in member (an agent) sends it: session cookie and CSRF token.
async function member(method, p, body) {
  const res = await fetch(API + p, {
    method,
    headers: { Cookie: MEMBER_COOKIE, 'X-CSRF-Token': MEMBER_CSRF, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p} as a member answered ${res.status}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

const ratingOf = (m) => (m && m.feedback && typeof m.feedback === 'object' ? m.feedback.rating : m && m.feedback) || null;

// ---- the host page, on its own origin, under a strict CSP ----
const hostHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Northwind Outfitters</title>
<link rel="stylesheet" href="/site.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<main id="main">
<h1>Northwind Outfitters</h1>
<p>Technical clothing for the outdoors. Questions about orders, sizes or returns? Ask us in the chat.</p>
<p><a href="#catalogue">Browse the catalogue</a></p>
</main>
<script src="${API}/widget.js" data-bot-id="${BOT}" data-site-key="${SITE_KEY}" async></script>
</body>
</html>`;
const hostCss = `body{margin:0;font:16px/1.6 Georgia,serif;color:#222;background:#fbfaf7}
main{max-width:720px;margin:0 auto;padding:64px 24px}h1{font-size:40px;margin:0 0 16px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px}
button{background:red;border-radius:0}iframe{border:8px solid red}`;
const csp = [
  "default-src 'none'",
  `script-src ${API}`,
  "style-src 'self'",
  `connect-src ${API}`,
  `frame-src ${API}`,
  `img-src 'self' ${API} data:`,
].join('; ');

function serveHost() {
  return new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => {
      const p = new URL(req.url, 'http://h').pathname;
      if (p === '/site.css') {
        res.writeHead(200, { 'Content-Type': 'text/css' });
        return res.end(hostCss);
      }
      if (p === '/' || p === '/index.html') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': csp, 'Cache-Control': 'no-store' });
        return res.end(hostHtml);
      }
      res.writeHead(404);
      res.end();
    });
    server.on('error', reject);
    server.listen(PAGE_PORT, '127.0.0.1', () => resolve(server));
  });
}

// ---- widget helpers ----
const launcher = (page) => page.locator('#parley-widget button[aria-expanded]');
const iframeEl = (page) => page.locator('#parley-widget iframe[title="Chat"]');

async function chatFrame(page) {
  const handle = await iframeEl(page).elementHandle({ timeout: 10_000 });
  const frame = await handle.contentFrame();
  expect(frame, 'the chat iframe has no document');
  await frame.locator('#app:not([hidden])').waitFor({ state: 'attached', timeout: 15_000 });
  return frame;
}

const launcherFocused = (page) =>
  page.evaluate(() => {
    const host = document.getElementById('parley-widget');
    const inner = host && host.shadowRoot && host.shadowRoot.activeElement;
    return document.activeElement === host && !!inner && inner.hasAttribute('aria-expanded');
  });

const answers = (frame) => frame.locator('.msg[data-role="assistant"]:not([data-welcome])');

async function waitComplete(row, what) {
  await until(
    what,
    async () => {
      const s = await row.getAttribute('data-status');
      if (s === 'failed') throw new Error(`the answer failed: ${await row.innerText()}`);
      return s === 'complete';
    },
    30_000,
  );
}

async function sendText(frame, text) {
  const input = frame.locator('#input');
  await input.fill(text);
  await input.press('Enter');
}

// ---- run ----
fs.mkdirSync(ARTIFACTS, { recursive: true });
if (!fs.existsSync(CHROMIUM)) await fail(`no browser at ${CHROMIUM} (install the Debian package: apt-get install chromium)`);
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  await fail(`playwright-core is not installed (run: npm ci --prefix tests/browser): ${e.message}`);
}

hostServer = await serveHost();
const HOST = `http://127.0.0.1:${hostServer.address().port}`;
userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-browser-'));
current = 'launch';
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    timeout: 30_000,
  });
} catch (e) {
  await fail(`could not start ${CHROMIUM}: ${e.message}`);
}
context.setDefaultTimeout(10_000);

const problems = [];
const streamRequests = [];
const streamResponses = [];
context.on('request', (r) => {
  if (r.method() === 'POST' && /\/conversations\/[^/]+\/messages$/.test(r.url())) streamRequests.push(r.postData() || '');
});
context.on('response', (r) => {
  if (r.request().method() === 'POST' && /\/conversations\/[^/]+\/messages$/.test(r.url())) streamResponses.push(r.headers()['content-type'] || '');
});
const watch = (page) => {
  page.on('pageerror', (e) => problems.push(`uncaught error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
};

const page = context.pages()[0] || (await context.newPage());
watch(page);
let frame;
let firstConversation;

await check('the button shows, the chat loads on first click, Escape closes it (from the chat and from the page) and focus returns to the button', async () => {
  await page.goto(HOST + '/');
  const button = launcher(page);
  await button.waitFor({ state: 'visible' });
  expect(/open chat/i.test((await button.getAttribute('aria-label')) || ''), 'the button has no "Open chat" label');
  expect((await button.getAttribute('aria-expanded')) === 'false', 'aria-expanded is not false before opening');
  expect((await iframeEl(page).count()) === 0, 'the iframe exists before the first click');
  await button.click();
  await iframeEl(page).waitFor({ state: 'visible' });
  expect((await button.getAttribute('aria-expanded')) === 'true', 'aria-expanded is not true when open');
  frame = await chatFrame(page);
  await frame.locator('#input').click();
  await page.keyboard.press('Escape');
  await iframeEl(page).waitFor({ state: 'hidden' });
  await until('focus to return to the button after Escape in the chat', () => launcherFocused(page), 3000);
  expect((await button.getAttribute('aria-expanded')) === 'false', 'aria-expanded is not false after closing');
  await button.click();
  await iframeEl(page).waitFor({ state: 'visible' });
  await button.focus();
  await page.keyboard.press('Escape');
  await iframeEl(page).waitFor({ state: 'hidden' });
  await until('focus on the button after Escape in the page', () => launcherFocused(page), 3000);
  await button.click();
  await iframeEl(page).waitFor({ state: 'visible' });
});

await check('a quick prompt streams an answer with citations and sources', async () => {
  await frame.evaluate(() => {
    window.__lengths = [];
    const log = document.querySelector('[role="log"]');
    new MutationObserver(() => {
      const rows = log.querySelectorAll('.msg[data-role="assistant"]:not([data-welcome])');
      const row = rows[rows.length - 1];
      const n = row ? row.querySelector('.bubble').textContent.length : 0;
      const seen = window.__lengths;
      if (n && seen[seen.length - 1] !== n) seen.push(n);
    }).observe(log, { subtree: true, childList: true, characterData: true });
  });
  const exchange = page.waitForResponse((r) => r.request().method() === 'POST' && /\/conversations\/[^/]+\/messages$/.test(r.url()), { timeout: 30_000 });
  exchange.catch(() => {});
  await frame.getByRole('button', { name: QUICK_PROMPT, exact: true }).click();
  const answer = answers(frame).last();
  await answer.waitFor({ state: 'attached' });
  await waitComplete(answer, 'the streamed answer to complete');
  const sent = streamRequests.map((b) => JSON.parse(b)).find((b) => b.text === QUICK_PROMPT);
  expect(sent, 'the quick prompt was not posted as a message');
  expect(sent.stream === true, `the message was sent with stream=${sent.stream}, not true`);
  expect(streamResponses.some((t) => t.includes('text/event-stream')), 'the answer did not come as text/event-stream');
  // Each delta must show as its own render. When the browser kept the whole
  // stream, a server that sent the answer in one delta needs only one render.
  let deltas = null;
  try {
    const body = await (await exchange).text();
    if (body.includes('[DONE]')) deltas = (body.match(/"type"\s*:\s*"delta"/g) || []).length;
  } catch (_) {
    /* no copy of the stream kept */
  }
  const lengths = await frame.evaluate(() => window.__lengths);
  expect(deltas !== 0, 'the stream carried no delta event');
  expect(
    lengths.length >= Math.min(2, deltas == null ? 2 : deltas),
    `the answer did not grow while streaming (${deltas == null ? 'unknown number of' : deltas} deltas, rendered lengths: ${JSON.stringify(lengths)})`,
  );
  const user = frame.locator('.msg[data-role="user"]').last();
  expect((await user.innerText()).trim() === QUICK_PROMPT, 'the quick prompt is not shown as the visitor message');
  expect((await answer.locator('.cite').count()) >= 1, `no citation marker in the answer: ${await answer.innerText()}`);
  expect((await answer.locator('.sources li').count()) >= 1, 'no source entry under the answer');
  console.log(`  ${deltas == null ? 'the' : deltas} deltas rendered in ${lengths.length} steps: ${lengths.slice(0, 8).join(', ')}${lengths.length > 8 ? ', …' : ''}`);
});

await check('thumbs down is stored on the message', async () => {
  const answer = answers(frame).last();
  const down = answer.getByRole('button', { name: 'Not helpful', exact: true });
  await down.click();
  await until('the thumbs-down button to be pressed', async () => (await down.getAttribute('aria-pressed')) === 'true', 5000);
  expect((await answer.getByRole('button', { name: 'Helpful', exact: true }).getAttribute('aria-pressed')) === 'false', 'thumbs up is pressed too');
  const messageId = await answer.getAttribute('data-id');
  expect(messageId, 'the answer has no message id');
  firstConversation = await frame.evaluate((k) => localStorage.getItem(k), `parley:${BOT}:conversation_id`);
  expect(firstConversation, 'the chat stored no conversation id');
  const list = await admin('GET', `/api/v1/conversations?bot_id=${encodeURIComponent(BOT)}&limit=100`);
  expect((list.items || []).some((c) => c.id === firstConversation), `conversation ${firstConversation} is not in the admin list`);
  await until(
    'the admin API to show feedback "down"',
    async () => {
      const c = await admin('GET', `/api/v1/conversations/${firstConversation}`);
      const m = (c.messages || []).find((x) => x.id === messageId);
      expect(m, `message ${messageId} is not in the conversation`);
      return ratingOf(m) === 'down';
    },
    5000,
  );
});

await check('asking for a person shows the hand-off banner and escalates the conversation', async () => {
  await sendText(frame, 'I want to talk to a human');
  await frame.locator('#banner').waitFor({ state: 'visible', timeout: 30_000 });
  expect((await frame.locator('#banner').innerText()).includes('A person will reply here.'), 'the banner text is wrong');
  await until(
    'the admin status to be escalated',
    async () => (await admin('GET', `/api/v1/conversations/${firstConversation}`)).status === 'escalated',
    5000,
  );
});

await check("a person's reply appears without reload", async () => {
  await admin('POST', `/api/v1/conversations/${firstConversation}/reply`, { text: 'Hi, this is Ana from support.' });
  const reply = frame.locator('.msg[data-role="agent"]', { hasText: 'Hi, this is Ana from support.' });
  await reply.waitFor({ state: 'visible', timeout: 12_000 });
  expect((await reply.locator('.who').innerText()).trim() === 'Support team', 'the reply is not labelled as the support team');
});

await check("an agent's reply shows the agent's name, and internal notes never reach the visitor", async () => {
  await member('POST', `/api/v1/conversations/${firstConversation}/notes`, { text: 'Internal: VIP customer, refund approved' });
  await member('POST', `/api/v1/conversations/${firstConversation}/reply`, { text: 'Ana here: your refund is on its way.' });
  const reply = frame.locator('.msg[data-role="agent"]', { hasText: 'Ana here: your refund is on its way.' });
  await reply.waitFor({ state: 'visible', timeout: 12_000 });
  expect((await reply.locator('.who').innerText()).trim() === 'Ana Lima', `the reply is labelled ${await reply.locator('.who').innerText()}`);
  expect(!(await frame.locator('body').innerText()).includes('VIP customer'), 'the internal note is shown to the visitor');
});

await check("the visitor sees the agent typing", async () => {
  await member('POST', `/api/v1/conversations/${firstConversation}/typing`);
  const typing = frame.locator('#typing');
  await until('the typing indicator', async () => /Ana Lima is typing/.test((await typing.innerText().catch(() => '')) || ''), 8000, 200);
  expect(await typing.isVisible(), 'the typing indicator is hidden');
});

await check('after a person closes the conversation, the visitor rates it from 1 to 5', async () => {
  await member('POST', `/api/v1/conversations/${firstConversation}/close`);
  const form = frame.locator('form.rating');
  await form.waitFor({ state: 'visible', timeout: 12_000 });
  await form.getByRole('button', { name: 'Send rating' }).click();
  await until('the form to ask for a score', async () => /Choose a rating/.test(await form.innerText()), 3000);
  await form.getByRole('button', { name: '4 of 5', exact: true }).click();
  expect((await form.getByRole('button', { name: '4 of 5', exact: true }).getAttribute('aria-pressed')) === 'true', 'the chosen score is not pressed');
  await form.getByLabel('Comment').fill('Quick and kind, thank you');
  await sleep(200);
  await page.screenshot({ path: path.join(ARTIFACTS, 'widget-rating.png') });
  await form.getByRole('button', { name: 'Send rating' }).click();
  await frame.getByText('Thanks for your rating!').waitFor({ state: 'visible', timeout: 5000 });
  const c = await admin('GET', `/api/v1/conversations/${firstConversation}`);
  expect(c.satisfaction === 4, `the rating stored is ${JSON.stringify(c.satisfaction)}`);
  expect(c.satisfaction_comment === 'Quick and kind, thank you', 'the comment is not stored');
  const insights = await admin('GET', `/api/v1/bots/${encodeURIComponent(BOT)}/insights`);
  expect(insights.satisfaction && insights.satisfaction.ratings === 1 && insights.satisfaction.average === 4, `insights show ${JSON.stringify(insights.satisfaction)}`);
  expect((insights.satisfaction.by_member || []).some((m) => m.member_id && m.average === 4), 'the rating is not shown for the agent');
});

await check('a reply while the chat is closed shows as unread on the button', async () => {
  const button = launcher(page);
  await button.click();
  await iframeEl(page).waitFor({ state: 'hidden' });
  await admin('POST', `/api/v1/conversations/${firstConversation}/reply`, { text: 'Are you still there?' });
  await until('the button to announce 1 unread message', async () => /1 unread message/.test((await button.getAttribute('aria-label')) || ''), 15_000, 200);
  await button.click();
  await iframeEl(page).waitFor({ state: 'visible' });
  await frame.locator('.msg[data-role="agent"]', { hasText: 'Are you still there?' }).waitFor({ state: 'visible', timeout: 5000 });
  await until('the unread count to reset', async () => !/unread/.test((await button.getAttribute('aria-label')) || ''), 3000);
});

await check('desktop screenshot', async () => {
  await sleep(300);
  await page.screenshot({ path: path.join(ARTIFACTS, 'widget-desktop.png') });
});

await check('after a reload the history is shown', async () => {
  await page.reload();
  const button = launcher(page);
  await button.waitFor({ state: 'visible' });
  await button.click();
  await iframeEl(page).waitFor({ state: 'visible' });
  frame = await chatFrame(page);
  const log = frame.locator('[role="log"]');
  await log.locator('.msg[data-role="agent"]', { hasText: 'Ana from support' }).waitFor({ timeout: 10_000 });
  const users = await frame.locator('.msg[data-role="user"]').allInnerTexts();
  expect(users.some((t) => t.trim() === QUICK_PROMPT), 'the quick prompt is missing from the history');
  expect(users.some((t) => t.trim() === 'I want to talk to a human'), 'the hand-off request is missing from the history');
  expect((await answers(frame).locator('.cite').count()) >= 1, 'the restored answer has no citation');
  expect((await answers(frame).count()) >= 2, 'the answer and the hand-off message are not both restored');
  expect(await frame.locator('#banner').isVisible(), 'the hand-off banner is not restored');
  const down = answers(frame).first().getByRole('button', { name: 'Not helpful', exact: true });
  expect((await down.getAttribute('aria-pressed')) === 'true', 'the restored answer does not show its thumbs-down');
});

await check('a new conversation renders a hostile answer as text', async () => {
  await frame.getByRole('button', { name: 'New conversation' }).click();
  await until('the log to be cleared', async () => (await frame.locator('.msg[data-role="user"]').count()) === 0, 3000);
  expect(!(await frame.locator('#banner').isVisible()), 'the hand-off banner is still shown in the new conversation');
  await sendText(frame, XSS_QUESTION);
  const answer = answers(frame).last();
  await answer.waitFor({ state: 'attached' });
  await waitComplete(answer, 'the answer to the markup question');
  await sleep(500);
  const text = await answer.locator('.bubble').innerText();
  expect(text.includes('<img src=x onerror='), `the answer does not show the markup as text: ${text.slice(0, 300)}`);
  const injected = await frame.evaluate(
    () => document.querySelectorAll('.log img, .log script, .log iframe, .log [onerror], .log [onload], .log a[href^="javascript:" i]').length,
  );
  expect(injected === 0, `${injected} injected element(s) inside the messages`);
  expect((await frame.evaluate(() => typeof window.__parleyXss)) === 'undefined', 'window.__parleyXss is set in the chat frame');
  expect((await page.evaluate(() => typeof window.__parleyXss)) === 'undefined', 'window.__parleyXss is set in the page');
  const second = await frame.evaluate((k) => localStorage.getItem(k), `parley:${BOT}:conversation_id`);
  expect(second && second !== firstConversation, 'the question did not go to a new conversation');
});

await check('on a phone the chat covers the whole screen', async () => {
  const mobile = await context.newPage();
  watch(mobile);
  await mobile.setViewportSize({ width: 390, height: 844 });
  await mobile.goto(HOST + '/');
  const button = launcher(mobile);
  await button.waitFor({ state: 'visible' });
  await button.click();
  await iframeEl(mobile).waitFor({ state: 'visible' });
  const box = await until(
    'the iframe to cover the viewport',
    async () => {
      const b = await iframeEl(mobile).boundingBox();
      return b && b.x <= 0.5 && b.y <= 0.5 && b.width >= 390 && b.height >= 843 ? b : null;
    },
    3000,
  );
  expect(!(await button.isVisible()), 'the button stays visible over the full-screen chat');
  const f = await chatFrame(mobile);
  await f.locator('.msg[data-role="user"]').first().waitFor({ timeout: 10_000 });
  await sleep(300);
  await mobile.screenshot({ path: path.join(ARTIFACTS, 'widget-mobile.png') });
  await f.getByRole('button', { name: 'Close chat' }).click();
  await iframeEl(mobile).waitFor({ state: 'hidden' });
  await button.waitFor({ state: 'visible' });
  console.log(`  iframe box ${box.width}x${box.height} at ${box.x},${box.y}`);
  await mobile.close();
});

await check('keyboard: Tab reaches the button with a visible focus ring and Enter opens the chat', async () => {
  const k = await context.newPage();
  watch(k);
  await k.goto(HOST + '/');
  const button = launcher(k);
  await button.waitFor({ state: 'visible' });
  let reached = false;
  for (let i = 0; i < 12 && !reached; i++) {
    await k.keyboard.press('Tab');
    reached = await launcherFocused(k);
  }
  expect(reached, 'Tab never reached the chat button');
  const ring = await k.evaluate(() => {
    const b = document.getElementById('parley-widget').shadowRoot.activeElement;
    const s = getComputedStyle(b);
    return { focusVisible: b.matches(':focus-visible'), style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  expect(ring.focusVisible, 'the button does not match :focus-visible after Tab');
  expect(ring.style !== 'none' && ring.width > 0, `no visible focus ring on the button (outline ${ring.style} ${ring.width}px)`);
  await k.keyboard.press('Enter');
  await iframeEl(k).waitFor({ state: 'visible' });
  expect((await button.getAttribute('aria-expanded')) === 'true', 'Enter did not open the chat');
  const f = await chatFrame(k);
  await until('focus to move into the chat', () => f.evaluate(() => document.activeElement && document.activeElement.id === 'input'), 5000);
  await k.close();
});

await check('no Content Security Policy violation and no uncaught error', async () => {
  expect(problems.length === 0, problems.join('\n'));
});

clearTimeout(deadline);
await cleanup();

let raw = 0;
let gz = 0;
const sizes = WIDGET_FILES.map((f) => {
  const buf = fs.readFileSync(path.join(WIDGET_DIR, f));
  const g = zlib.gzipSync(buf, { level: 9 }).length;
  raw += buf.length;
  gz += g;
  return `${f} ${buf.length}/${g}`;
});
console.log(`widget size (raw/gzip bytes): ${sizes.join(', ')}; total ${raw}/${gz}`);
console.log(`screenshots: ${path.join(ARTIFACTS, 'widget-desktop.png')}, ${path.join(ARTIFACTS, 'widget-mobile.png')}`);
console.log(`browser test finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, 0 failed`);
