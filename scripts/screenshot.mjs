// Screenshots for the README: node scripts/screenshot.mjs SHOT... where SHOT is
// INPUT[#FRAGMENT]=OUTPUT.png[@SELECTOR] (default: the full page). Uses the Playwright of
// tests/browser (npm ci --prefix tests/browser) and Debian's Chromium ($CHROMIUM).
import { createRequire } from "node:module";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(fileURLToPath(import.meta.url), "../..");
const require = createRequire(join(root, "tests/browser/package.json"));
const { chromium } = require("playwright-core");

const userDataDir = await mkdtemp(join(tmpdir(), "gpt2-inspect-shots-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1100, height: 900 },
  deviceScaleFactor: 2,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await context.newPage();
  for (const shot of process.argv.slice(2)) {
    const [input, rest] = shot.split("=");
    const [output, selector] = rest.split("@");
    // INPUT may end in a #fragment (a report's #L1H0,2), kept out of the file name.
    const [file, fragment] = input.split("#");
    await page.goto(pathToFileURL(resolve(file)).href + (fragment ? "#" + fragment : ""));
    // A report draws its thumbnails while idle: wait for all of them.
    if (file.endsWith(".html") && (await page.$("#model-view"))) {
      await page.waitForSelector("body[data-all-drawn=true]", { timeout: 30000 });
    }
    if (selector) {
      await page.locator(selector).first().screenshot({ path: output });
    } else {
      await page.screenshot({ path: output, fullPage: true });
    }
    console.log(`${input} -> ${output}`);
  }
} finally {
  await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}
