// Drives the example page in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core from clients/typescript/node_modules; no browser download) for
// test_browser.py. Prints one JSON object: what the page reported.
//   node drive.mjs <chromium> <page url> <clicks: accepted|refused>
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(fileURLToPath(new URL("../../clients/typescript/package.json", import.meta.url)));
const { chromium } = require("playwright-core");

const [executablePath, url, expect] = process.argv.slice(2);
/** Bounds of one run; the test's own timeout is larger. */
const STEP_TIMEOUT_MS = 15_000;

const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const console = [];
  page.on("console", (message) => console.push(message.text()));
  page.on("pageerror", (error) => console.push(`pageerror: ${error.message}`));
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("status")?.textContent?.startsWith("ready"));
  // Every text the status line shows, in order: a later failure report from the client
  // ("not delivered yet") can replace the LogMessage answer before it could be read.
  await page.evaluate(() => {
    const status = document.getElementById("status");
    window.statusHistory = [];
    new MutationObserver(() => window.statusHistory.push(status.textContent)).observe(status, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
  for (const id of ["buy", "throw", "reject"]) await page.click(`#${id}`);
  await page.click("#hello");
  const answer = await page.waitForFunction(() => window.statusHistory.find((text) => /^LogMessage/.test(text)));
  const hello = await answer.jsonValue();
  // The error and the rejection are logged a moment after their clicks.
  await page.waitForFunction(() => window.exampleLog.stats.buffered + window.exampleLog.stats.delivered >= 6);
  const flush = await page.evaluate(
    (timeoutMs) =>
      window.exampleLog.flush(timeoutMs).then(
        () => "flushed",
        (error) => `${error.name}: ${error.message}`,
      ),
    expect === "refused" ? 1000 : 10_000,
  );
  const stats = await page.evaluate(() => window.exampleLog.stats);
  const origin = await page.evaluate(() => location.origin);
  if (expect === "refused") {
    // Chromium reports the CORS refusal on the console on its own schedule, which on a busy
    // machine can come after the flush gave up: wait for it (5 s at most).
    const until = Date.now() + 5000;
    while (!console.some((line) => line.includes("blocked by CORS policy")) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  process.stdout.write(JSON.stringify({ origin, hello, flush, stats, console }) + "\n");
} finally {
  await browser.close();
}
