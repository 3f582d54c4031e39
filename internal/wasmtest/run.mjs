// Runs a Go test binary compiled for GOOS=js GOARCH=wasm in Chromium.
// TestWasmInChromium (chromium_test.go) passes:
//   WSCHAN_WASM_PAGE   the page that loads wasm_exec.js and the test binary
//   WSCHAN_CHROMIUM    Debian's Chromium; nothing is downloaded
// The Go test's output goes to stdout; the exit code is the test binary's.
import { chromium } from 'playwright-core';

const browser = await chromium.launch({
  executablePath: process.env.WSCHAN_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
let code = 1;
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(m.text()));
  page.on('pageerror', (e) => console.log(`page error: ${e}`));
  await page.goto(process.env.WSCHAN_WASM_PAGE);
  await page.waitForFunction(() => window.goExit !== undefined, null, { timeout: 170_000, polling: 100 });
  code = await page.evaluate(() => window.goExit);
} finally {
  await browser.close();
}
process.exit(code);
