// Browser tests for the demo page, run by TestBrowser (browser_test.go),
// which starts a real wschan server and passes:
//   WSCHAN_WEB_URL      the page, http://127.0.0.1:PORT/ (https:// with a self-signed certificate for h2)
//   WSCHAN_WEB_PROTO    http/1.1 or h2: the suite runs once per protocol
//   WSCHAN_WEB_CONTROL  POST /stop and /start stop and restart the server on the same port;
//                       GET /stats: TCP connections accepted, WebSockets accepted per HTTP version
//   WSCHAN_CHROMIUM     Debian's Chromium (/usr/bin/chromium); nothing is downloaded
//   WSCHAN_ARTIFACTS    where screenshots go
// Run them with `go test ./server/web/ -run TestBrowser -v`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const BASE = process.env.WSCHAN_WEB_URL;
const CONTROL = process.env.WSCHAN_WEB_CONTROL;
const ARTIFACTS = process.env.WSCHAN_ARTIFACTS;
const AXE = require.resolve('axe-core/axe.min.js');
const WS_URL = BASE.replace(/^http/, 'ws') + 'ws';
const PROTO = process.env.WSCHAN_WEB_PROTO || 'http/1.1';

const PHONE = { width: 360, height: 740 };
const DESKTOP = { width: 1280, height: 800 };

let browser;

before(async () => {
  assert.ok(BASE && CONTROL && ARTIFACTS, 'run these tests through go test (TestBrowser)');
  browser = await chromium.launch({
    executablePath: process.env.WSCHAN_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // playwright-core gives every launch a fresh --user-data-dir of its own
    // (under TMPDIR, which TestBrowser points at a directory it removes).
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run',
      // /dev/shm is small in containers (Debian's launcher means to add this itself, but its check can fail)
      '--disable-dev-shm-usage',
      // The h2 run's certificate is self-signed (made by the server at
      // start). Accepted at the handshake, not per context (Playwright's
      // ignoreHTTPSErrors): that way Chromium does not fail a first TLS
      // connection and open another, and the connection count is exact.
      ...(BASE.startsWith('https:') ? ['--ignore-certificate-errors'] : [])],
  });
});

after(async () => {
  await browser?.close();
});

// open loads the page in a new context and waits until it is connected.
// It records console errors (failing the test unless allowed) and the
// WebSocket frames the page sends.
async function open(t, { viewport = DESKTOP, locale = 'en-US', colorScheme = 'light', allow = [], ...opts } = {}) {
  const context = await browser.newContext({ viewport, locale, colorScheme, ...opts });
  t.after(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));
  const sent = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(f.payload)));
  t.after(() => {
    const left = problems.filter((p) => !allow.some((re) => re.test(p)));
    assert.deepEqual(left, [], 'the page logged errors');
  });
  const response = await page.goto(BASE);
  assert.equal(response.status(), 200);
  await waitState(page, 'open');
  return { page, context, response, sent };
}

function waitState(page, ...states) {
  return page.waitForFunction(
    (want) => want.includes(document.getElementById('state').dataset.state),
    states,
  );
}

const sendButton = (page, name = 'Send message') => page.getByRole('button', { name, exact: true });

// sendText types text and clicks the send button, then waits for the echo
// to become the latest message.
async function sendText(page, text) {
  await page.getByLabel('Send a message').fill(text);
  await sendButton(page).click();
  await waitLatest(page, text);
}

function waitLatest(page, text) {
  return page.waitForFunction((want) => document.getElementById('latest-body').textContent === want, text);
}

async function control(what) {
  const resp = await fetch(CONTROL + '/' + what, { method: 'POST' });
  assert.equal(resp.status, 200, `${what}: ${await resp.text()}`);
}

async function noHorizontalScroll(page) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width, `page is ${scroll}px wide in a ${width}px viewport`);
}

async function inViewport(page, locator) {
  const box = await locator.boundingBox();
  const vw = page.viewportSize().width;
  assert.ok(box && box.x >= 0 && box.x + box.width <= vw, `${locator} is outside the ${vw}px viewport: ${JSON.stringify(box)}`);
}

test('the recipe: type, click Send, the echo is the latest message', async (t) => {
  const { page, response } = await open(t);
  assert.equal(await page.title(), 'WebSocket Demo');
  assert.match(response.headers()['content-security-policy'], /default-src 'self'/);
  await page.getByRole('heading', { level: 1, name: 'WebSocket Demo' }).waitFor();
  assert.equal(await page.getByLabel('Server URL').inputValue(), WS_URL);
  const button = sendButton(page);
  assert.equal(await button.getAttribute('title'), 'Send message');

  await page.getByLabel('Send a message').fill('Hello!');
  await button.click();
  await waitLatest(page, 'Hello!');
  assert.equal(await page.getByLabel('Send a message').inputValue(), '', 'the field is cleared after sending');
  const log = page.locator('#log li[data-kind="text"]');
  assert.deepEqual(await log.evaluateAll((li) => li.map((l) => [l.dataset.dir, l.querySelector('.body').textContent])),
    [['sent', 'Hello!'], ['received', 'Hello!']]);
  assert.match(await page.locator('#log li[data-dir="received"] time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
});

test('Enter sends', async (t) => {
  const { page } = await open(t);
  await page.getByLabel('Send a message').fill('sent with Enter');
  await page.getByLabel('Send a message').press('Enter');
  await waitLatest(page, 'sent with Enter');
});

test('empty text is not sent', async (t) => {
  const { page, sent } = await open(t);
  await sendButton(page).click();
  await page.getByLabel('Send a message').press('Enter');
  await sendText(page, 'after the empty ones');
  assert.deepEqual(sent, ['after the empty ones'], 'frames sent');
  assert.equal(await page.locator('#log li[data-dir="sent"]').count(), 1);
});

test('received markup is shown as text', async (t) => {
  const { page } = await open(t);
  await sendText(page, '<b>x</b><img src=x onerror=alert(1)>');
  assert.equal(await page.locator('#latest b, #log b, #latest img, #log img').count(), 0, 'no element made from a message');
  assert.equal(await page.locator('#log li[data-dir="received"] .body').textContent(), '<b>x</b><img src=x onerror=alert(1)>');
});

test('binary messages are shown as binary', async (t) => {
  const { page, sent } = await open(t);
  await page.getByLabel('Send a message').fill('hi');
  await page.getByRole('button', { name: 'Send as binary' }).click();
  await waitLatest(page, '68 69');
  assert.equal(await page.locator('#latest-body').getAttribute('data-kind'), 'binary');
  assert.match(await page.locator('#latest-meta').textContent(), /binary, 2 bytes/);
  assert.ok(Buffer.isBuffer(sent[0]) && sent[0].equals(Buffer.from('hi')), `sent ${sent[0]}`);
  assert.deepEqual(await page.locator('#log li[data-kind="binary"]').evaluateAll((li) => li.map((l) => l.dataset.dir)),
    ['sent', 'received']);
  // Text that looks like hex stays text. (The latest message already reads
  // "68 69": wait for its kind to change, not for its text.)
  await page.getByLabel('Send a message').fill('68 69');
  await sendButton(page).click();
  await page.waitForFunction(() => document.getElementById('latest-body').dataset.kind === 'text');
  assert.equal(await page.locator('#latest-body').textContent(), '68 69');
});

// exchange sends a few messages so the screenshots show a used page.
async function exchange(page) {
  await sendText(page, 'Hello!');
  await page.getByLabel('Send a message').fill('bytes');
  await page.getByRole('button', { name: 'Send as binary' }).click();
  await waitLatest(page, '62 79 74 65 73');
  await sendText(page, '<b>x</b> stays text');
}

for (const [name, viewport, extra] of [
  ['phone', PHONE, { isMobile: true, hasTouch: true, deviceScaleFactor: 2 }],
  ['desktop', DESKTOP, {}],
]) {
  test(`${name} viewport ${viewport.width}x${viewport.height}`, async (t) => {
    const { page } = await open(t, { viewport, ...extra });
    await exchange(page);
    await noHorizontalScroll(page);
    for (const loc of [page.getByLabel('Send a message'), sendButton(page), page.getByRole('button', { name: 'Send as binary' }),
      page.locator('#latest-body'), page.getByRole('button', { name: 'Connect', exact: true })]) {
      await inViewport(page, loc);
    }
    // One column on a phone, the log beside the app on a desktop.
    const [app, log] = await Promise.all([page.locator('section.app').boundingBox(), page.locator('section.log-panel').boundingBox()]);
    if (name === 'phone') assert.ok(log.y >= app.y + app.height, 'the log is below the app');
    else assert.ok(log.x >= app.x + app.width && log.y === app.y, 'the log is beside the app');
    const file = path.join(ARTIFACTS, `web-${name}.png`);
    await page.screenshot({ path: file, fullPage: name === 'phone' });
    t.diagnostic(`screenshot: ${file}`);
  });
}

test('accessibility: roles, names, live regions and axe-core', async (t) => {
  for (const [viewport, colorScheme] of [[DESKTOP, 'light'], [PHONE, 'dark']]) {
    // axe-core is injected as an inline script, which the page's policy
    // rightly refuses: this context alone bypasses it.
    const { page } = await open(t, { viewport, colorScheme, bypassCSP: true });
    await exchange(page);
    await page.getByRole('heading', { level: 1, name: 'WebSocket Demo' }).waitFor();
    await page.getByRole('textbox', { name: 'Send a message' }).waitFor();
    await page.getByRole('textbox', { name: 'Server URL' }).waitFor();
    await page.getByRole('combobox', { name: 'Language' }).waitFor();
    await page.getByRole('status').filter({ hasText: 'Open' }).waitFor();
    await page.getByRole('list', { name: 'Message log' }).waitFor();
    assert.equal(await page.locator('#latest').getAttribute('aria-live'), 'polite');
    for (const name of ['Send message', 'Send as binary', 'Connect', 'Disconnect', 'Join room', 'Clear',
      'Copy the wschan command', 'Copy the wscat command']) {
      assert.equal(await page.getByRole('button', { name, exact: true }).count(), 1, `button ${name}`);
    }
    await page.locator('details summary').click(); // check the endpoint list too
    // Enough messages for the log to scroll.
    for (let i = 1; i <= 30; i++) {
      await page.getByLabel('Send a message').fill(`message ${i}`);
      await page.getByLabel('Send a message').press('Enter');
    }
    await waitLatest(page, 'message 30');
    assert.ok(await page.locator('#log').evaluate((l) => l.scrollHeight > l.clientHeight), 'the log scrolls');
    await page.addScriptTag({ path: AXE });
    const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join(', ')}`), [],
      `axe-core, ${colorScheme}, ${viewport.width}px`);
    for (const v of results.violations) t.diagnostic(`axe ${v.impact}: ${v.id}: ${v.help}`);
    if (colorScheme === 'dark') await page.screenshot({ path: path.join(ARTIFACTS, 'web-phone-dark.png'), fullPage: true });
  }
});

test('keyboard only: every control is reachable, Enter and Space work', async (t) => {
  const { page } = await open(t);
  const order = [];
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => {
      const a = document.activeElement;
      return a.id || a.dataset.copy || a.tagName.toLowerCase();
    }));
  }
  for (const id of ['lang', 'message', 'send', 'send-binary', 'url', 'connect', 'disconnect', 'room', 'join-room', 'cmd-wschan', 'cmd-wscat',
    'clear-log', 'summary']) {
    assert.ok(order.includes(id), `${id} is not reachable with Tab: ${order.join(' → ')}`);
  }
  assert.ok(order.indexOf('message') < order.indexOf('send'), 'the field comes before its button');

  await page.getByLabel('Send a message').focus();
  await page.keyboard.type('typed');
  await page.keyboard.press('Enter');
  await waitLatest(page, 'typed');
  await page.keyboard.type('with Space');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'send');
  await page.keyboard.press('Space');
  await waitLatest(page, 'with Space');
});

test('the Content-Security-Policy blocks inline script', async (t) => {
  const { page, response } = await open(t, { allow: [/Content Security Policy/] });
  const csp = response.headers()['content-security-policy'];
  for (const d of ["default-src 'self'", "connect-src 'self' ws: wss:", "object-src 'none'", "base-uri 'none'",
    "frame-ancestors 'none'"]) {
    assert.ok(csp.includes(d), `policy lacks ${d}: ${csp}`);
  }
  await page.addScriptTag({ content: 'window.inlineRan = true' }).catch(() => {});
  assert.equal(await page.evaluate(() => window.inlineRan), undefined, 'an inline script ran');
  await sendText(page, 'still works');
});

test('languages: 中文 from the browser, switchable on the page', async (t) => {
  await t.test('zh-CN browser', async (t) => {
    const { page } = await open(t, { locale: 'zh-CN' });
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
    assert.equal(await page.title(), 'WebSocket 演示');
    await page.getByRole('textbox', { name: '发送一条消息' }).fill('你好');
    const button = sendButton(page, '发送消息');
    assert.equal(await button.getAttribute('title'), '发送消息');
    await button.click();
    await waitLatest(page, '你好');
    assert.match(await page.locator('#state-text').textContent(), /^已连接/);
    assert.match(await page.locator('#latest-meta').textContent(), /文本/);
    // An error, in Chinese.
    await page.getByLabel('服务器 URL').fill('http://example.com/');
    await page.getByRole('button', { name: '连接', exact: true }).click();
    assert.equal(await page.locator('#connect-error').textContent(), '请输入 ws:// 或 wss:// 开头的 URL。');
    assert.equal(await page.getByRole('alert').filter({ hasText: 'ws://' }).count(), 1);
  });

  await t.test('switch', async (t) => {
    const { page } = await open(t);
    await sendText(page, 'before');
    await page.getByLabel('Language').selectOption('zh-CN');
    await page.getByLabel('发送一条消息').waitFor();
    assert.equal(await sendButton(page, '发送消息').count(), 1);
    assert.match(await page.locator('#state-text').textContent(), /^已连接/);
    assert.deepEqual(await page.locator('#log .dir').allTextContents(), ['事件', '已发送', '已接收']);
    assert.equal(await page.locator('#latest-body').textContent(), 'before', 'messages are not translated');
    // The choice survives a reload.
    await page.reload();
    await waitState(page, 'open');
    await page.getByLabel('发送一条消息').waitFor();
    await page.getByRole('combobox', { name: '语言' }).selectOption('en');
    await page.getByLabel('Send a message').waitFor();
    await page.getByLabel('Server URL').fill('not a url');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    assert.equal(await page.locator('#connect-error').textContent(), 'Not a valid WebSocket URL: not a url');
  });

  await t.test('one message table', async (t) => {
    const { page } = await open(t);
    const { missing, onlyEn, onlyZh } = await page.evaluate(async () => {
      const { messages } = await import(document.querySelector('script[type="module"]').src);
      const en = Object.keys(messages.en);
      const zh = Object.keys(messages['zh-CN']);
      const used = [...document.querySelectorAll('[data-i18n], [data-i18n-title], [data-i18n-aria-label]')]
        .flatMap((n) => [n.dataset.i18n, n.dataset.i18nTitle, n.dataset.i18nAriaLabel]).filter(Boolean);
      return {
        missing: used.filter((k) => !(k in messages.en) || !(k in messages['zh-CN'])),
        onlyEn: en.filter((k) => !zh.includes(k)),
        onlyZh: zh.filter((k) => !en.includes(k)),
      };
    });
    assert.deepEqual({ missing, onlyEn, onlyZh }, { missing: [], onlyEn: [], onlyZh: [] });
  });
});

test('helpers: default URL, backoff, quoting, URL checks, language choice', async (t) => {
  const { page } = await open(t);
  const got = await page.evaluate(async () => {
    const m = await import(document.querySelector('script[type="module"]').src);
    const delays = (n) => [m.backoffDelay(n, () => 0), m.backoffDelay(n, () => 0.999999)].map(Math.round);
    return {
      https: m.defaultURL({ protocol: 'https:', host: 'example.com:8443' }),
      http: m.defaultURL({ protocol: 'http:', host: '127.0.0.1:8080' }),
      delays: [1, 2, 3, 7, 8, 50].map(delays),
      quoted: [m.shellQuote('ws://h:1/ws'), m.shellQuote('ws://h/ws/close/4000?after=1&reason=it\'s')],
      checks: ['ws://h/ws', 'wss://h/x?y=1', 'http://h/', 'h/ws', 'ws://h/#x'].map((u) => m.checkURL(u)?.key ?? 'ok'),
      langs: [['zh-TW', 'en'], ['fr', 'zh'], ['en-GB'], ['de'], []].map(m.pickLanguage),
      hex: [m.hex(new Uint8Array([0, 15, 255])), m.hex(new Uint8Array(70)).split(' ').length],
    };
  });
  assert.deepEqual(got, {
    https: 'wss://example.com:8443/ws',
    http: 'ws://127.0.0.1:8080/ws',
    // attempt n: [d/2, d] with d = 250ms·2^(n-1), at most 30s
    delays: [[125, 250], [250, 500], [500, 1000], [8000, 16000], [15000, 30000], [15000, 30000]],
    quoted: ['ws://h:1/ws', "'ws://h/ws/close/4000?after=1&reason=it'\\''s'"],
    checks: ['ok', 'ok', 'errScheme', 'errBadUrl', 'errBadUrl'],
    langs: ['zh-CN', 'zh-CN', 'en', 'en', 'en'],
    hex: ['00 0f ff', 65],
  });
});

test('connect, disconnect, close codes and the command hint', async (t) => {
  const { page, context } = await open(t);
  assert.equal(await page.locator('#cmd-wschan').textContent(), `wschan connect ${WS_URL}`);
  assert.equal(await page.locator('#cmd-wscat').textContent(), `wscat -c ${WS_URL}`);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  await page.getByRole('button', { name: 'Copy the wscat command' }).click();
  await page.getByText('Copied to the clipboard.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `wscat -c ${WS_URL}`);

  await page.getByRole('button', { name: 'Disconnect' }).click();
  await waitState(page, 'closed');
  assert.match(await page.locator('#state-text').textContent(), /^Closed: code 1000 \(normal closure\)/);
  await page.getByLabel('Send a message').fill('nobody listens');
  await sendButton(page).click();
  assert.equal(await page.getByRole('alert').filter({ hasText: 'Not connected' }).count(), 1);

  // A server that closes with an application code: shown, not retried.
  const scenario = `${WS_URL}/close/4000?after=1&reason=done here`;
  await page.getByLabel('Server URL').fill(scenario);
  assert.equal(await page.locator('#cmd-wschan').textContent(), `wschan connect '${scenario}'`);
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await waitState(page, 'open');
  await sendText(page, 'one');
  await waitState(page, 'closed');
  assert.equal(await page.locator('#state-text').textContent(), 'Closed: code 4000, reason “done here”');

  await page.getByLabel('Server URL').fill(WS_URL);
  await page.getByLabel('Server URL').press('Enter');
  await waitState(page, 'open');
  await sendText(page, 'back');
});

test('reconnect: the server stops, then starts again on the same port', async (t) => {
  const { page } = await open(t, { allow: [/WebSocket connection to .* failed/, /Failed to load resource/] });
  await sendText(page, 'before the restart');
  // Record every state the page shows from here on.
  await page.evaluate(() => {
    const el = document.getElementById('state');
    window.states = [];
    new MutationObserver(() => window.states.push(`${el.dataset.state}: ${el.textContent}`))
      .observe(el, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await control('stop');
  await waitState(page, 'reconnecting');
  assert.match(await page.locator('#log li[data-dir="event"]').last().textContent(),
    /closed: code 1001 \(going away\), reason “server shutting down”$/);
  await page.getByLabel('Send a message').fill('while down');
  await sendButton(page).click();
  await page.getByRole('alert').filter({ hasText: 'Not connected' }).waitFor();

  await control('start');
  await waitState(page, 'open');
  await sendText(page, 'after the restart');
  const states = [...new Set(await page.evaluate(() => window.states))];
  t.diagnostic(states.join(' | '));
  assert.match(states[0], /^reconnecting: Reconnecting in [\d.]+ s \(attempt 1\): code 1001 \(going away\), reason “server shutting down”$/);
  assert.ok(states.some((s) => /^reconnecting: Reconnecting \(attempt 1\)…$/.test(s)), 'no reconnect attempt shown');
  assert.match(states.at(-1), /^open: Open: wss?:/);
});

async function stats() {
  const resp = await fetch(CONTROL + '/stats');
  assert.equal(resp.status, 200);
  return resp.json();
}

test('the socket rides the page\'s HTTP/2 connection', { skip: PROTO !== 'h2' && 'HTTP/2 run only' }, async (t) => {
  const before = await stats();
  const { page, response } = await open(t);
  assert.equal((await response.request().allHeaders())[':method'], 'GET', 'the page was not loaded over HTTP/2');
  await sendText(page, 'over HTTP/2');
  const after = await stats();
  t.diagnostic(`before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
  assert.equal(after.h2 - before.h2, 1, 'the server did not accept the socket over HTTP/2');
  assert.equal(after.h1 - before.h1, 0, 'the socket went over HTTP/1.1');
  assert.equal(after.tcp - before.tcp, 1, 'the page and its socket used more than one TCP connection');
});

// joinRoom types a room name and joins it with Enter, then waits until the
// server has welcomed the page.
async function joinRoom(page, name) {
  await page.getByLabel('Room name').fill(name);
  await page.getByLabel('Room name').press('Enter');
  await page.locator('#room-status').filter({ hasText: `Room ${name}:` }).waitFor();
}

function waitRoomStatus(page, text) {
  return page.waitForFunction((want) => document.getElementById('room-status').textContent === want, text);
}

test('room mode: two pages in one room see each other, the sender and the member count', async (t) => {
  const a = await open(t);
  const b = await open(t);
  await joinRoom(a.page, 'e2e-lobby');
  await waitRoomStatus(a.page, 'Room e2e-lobby: 1 member');
  assert.equal(await a.page.getByLabel('Server URL').inputValue(), WS_URL + '/room/e2e-lobby');
  assert.match(await a.page.locator('#cmd-wschan').textContent(), /^wschan connect wss?:\/\/.*\/ws\/room\/e2e-lobby$/);
  await joinRoom(b.page, 'e2e-lobby');
  await waitRoomStatus(b.page, 'Room e2e-lobby: 2 members');
  await waitRoomStatus(a.page, 'Room e2e-lobby: 2 members');
  const me = async (page) => (await page.locator('#log .entry.event').allTextContents()).join('\n').match(/as (\S+) \(/)[1];
  const idA = await me(a.page);
  const idB = await me(b.page);
  assert.notEqual(idA, idB);
  await a.page.locator('#log').getByText(`${idB} joined (2 members)`).waitFor();

  // A's message reaches both, markup shown as text, with who sent it.
  await a.page.getByLabel('Send a message').fill('<b>hello from A</b>');
  await a.page.getByLabel('Send a message').press('Enter');
  await waitLatest(b.page, '<b>hello from A</b>');
  await waitLatest(a.page, '<b>hello from A</b>');
  assert.match(await b.page.locator('#latest-meta').textContent(), new RegExp(`^text · from ${idA} · `));
  assert.match(await a.page.locator('#latest-meta').textContent(), /^text · from you · /);
  assert.equal(await b.page.locator('#latest-body b').count(), 0, 'markup was rendered');

  // B's binary message reaches A.
  await b.page.getByLabel('Send a message').fill('bytes');
  await b.page.getByRole('button', { name: 'Send as binary', exact: true }).click();
  await waitLatest(a.page, '62 79 74 65 73');
  assert.match(await a.page.locator('#latest-meta').textContent(), new RegExp(`^binary, 5 bytes · from ${idB} · `));

  // An invalid name is refused on the page, with the reason.
  await b.page.getByLabel('Room name').fill('no spaces');
  await b.page.getByRole('button', { name: 'Join room', exact: true }).click();
  assert.equal(await b.page.locator('#room-error').textContent(), 'A room name is 1 to 64 letters, digits, - or _.');

  // B leaves: A sees the count drop.
  await b.page.getByRole('button', { name: 'Disconnect', exact: true }).click();
  await waitRoomStatus(a.page, 'Room e2e-lobby: 1 member');
  await a.page.locator('#log').getByText(`${idB} left (1 member)`).waitFor();

  // In Chinese.
  await a.page.getByLabel('Language').selectOption('zh-CN');
  await waitRoomStatus(a.page, '房间 e2e-lobby：1 位成员');
  assert.match(await a.page.locator('#latest-meta').textContent(), new RegExp(`来自 ${idB}`));
});
