// Opens two pages written by `gpt2-inspect report` in headless Chromium and checks what a
// person would do with them. Usage: node check.mjs CAT.html HOSTILE.html HOSTILE_TEXT OUT_DIR
// Prints one line per check; exits 1 if any failed. tests/browser.rs runs it.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const [catPath, hostilePath, hostileText, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: node check.mjs CAT.html HOSTILE.html HOSTILE_TEXT OUT_DIR");
  process.exit(2);
}

// The flags Debian's Chromium needs on a machine without network or display.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const failures = [];
function check(what, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? ": " + detail : ""}`);
  if (!ok) failures.push(what);
}

// A page of the report with everything that should never happen recorded: console errors,
// uncaught exceptions, dialogs, and any request that is not the file itself.
async function open(context, path) {
  const page = await context.newPage();
  const seen = { errors: [], dialogs: [], requests: [] };
  const url = pathToFileURL(resolve(path)).href;
  page.on("console", (m) => m.type() === "error" && seen.errors.push(m.text()));
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  page.on("dialog", async (d) => {
    seen.dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss();
  });
  page.on("request", (r) => r.url() !== url && seen.requests.push(r.url()));
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 10000 });
  return { page, seen };
}

// The attention matrix canvas as a data URL, to tell whether a click redrew it.
const matrixPixels = (page) => page.$eval("#matrix", (c) => c.toDataURL());
const viewState = (page) =>
  page.$eval("#head-view", (v) => ({ layer: v.dataset.layer, head: v.dataset.head }));

async function catPage(context) {
  const { page, seen } = await open(context, catPath);
  const data = await page.$eval("#page-data", (s) => JSON.parse(s.textContent));
  const T = data.labels.length;

  const lines = await page.$$eval("#head-view line", (ls) => ls.length);
  check("head view draws lines", lines > 0, `${lines} lines`);
  const labels = await page.$$eval("#head-view text[data-side]", (ts) => ts.length);
  check("head view labels every token on both sides", labels === 2 * T, `${labels} of ${2 * T}`);
  check("head view starts at layer 0 head 0", JSON.stringify(await viewState(page)) ===
    JSON.stringify({ layer: "0", head: "0" }));

  // Hovering a query leaves only that query's lines.
  await page.hover(`#head-view text[data-side=q][data-i="${T - 1}"]`);
  const hovered = await page.$$eval("#head-view line", (ls) => ls.map((l) => l.dataset.q));
  check("hovering a query shows only its lines",
    hovered.length > 0 && hovered.every((q) => q === String(T - 1)), hovered.join(","));
  const info = await page.textContent("#hover-info");
  check("hovering a query names where it attends", info.includes("attends most to"), info);
  await page.mouse.move(0, 0);

  // Pointing at a matrix cell reads its value from the page data.
  const box = await page.$eval("#matrix", (c) => {
    c.scrollIntoView({ block: "center" });
    const r = c.getBoundingClientRect();
    return { x: r.left, y: r.top, w: r.width, h: r.height };
  });
  await page.mouse.move(box.x + box.w / T / 2, box.y + box.h - box.h / T / 2);
  const cell = await page.textContent("#hover-info");
  const want = `query ${T - 1} ${data.labels[T - 1]} → key 0 ${data.labels[0]}: ` +
    data.attn[0][0][T - 1][0].toFixed(4);
  check("pointing at a matrix cell shows its value", cell === want, `${cell} (want ${want})`);
  await page.mouse.move(0, 0);

  const thumbs = await page.$$eval("#model-view canvas", (cs) => cs.length);
  check("model view has a map per layer and head", thumbs === data.layers * data.heads,
    `${thumbs} maps`);

  // Clicking the last thumbnail shows that head in the head view and the matrix.
  const before = await matrixPixels(page);
  const [l, h] = [data.layers - 1, data.heads - 1];
  await page.click(`#model-view canvas[data-layer="${l}"][data-head="${h}"]`);
  const after = await viewState(page);
  check("clicking a thumbnail changes the head view",
    after.layer === String(l) && after.head === String(h), JSON.stringify(after));
  check("clicking a thumbnail redraws the matrix", (await matrixPixels(page)) !== before);
  const selected = await page.$$eval("#model-view canvas.selected",
    (cs) => cs.map((c) => `${c.dataset.layer}/${c.dataset.head}`));
  check("the clicked thumbnail is marked", selected.join() === `${l}/${h}`, selected.join());
  check("the selects follow the click",
    (await page.inputValue("#layer")) === String(l) && (await page.inputValue("#head")) === String(h));

  // The selects drive the view too.
  await page.selectOption("#layer", "0");
  check("choosing a layer changes the head view", (await viewState(page)).layer === "0");

  const rows = await page.$$eval("#lens tbody tr", (rs) => rs.length);
  check("logit lens has a row per depth", rows === data.layers + 1, `${rows} rows`);
  const next = await page.$$eval("#next tbody tr", (rs) => rs.length);
  check("next-token table is filled", next > 0, `${next} rows`);

  await page.selectOption("#layer", "0");
  await page.screenshot({ path: join(outDir, "report.png"), fullPage: true });
  check("no console errors or exceptions", seen.errors.length === 0, seen.errors.join(" | "));
  check("no network requests", seen.requests.length === 0, seen.requests.join(" "));
  await page.close();
}

async function hostilePage(context) {
  const { page, seen } = await open(context, hostilePath);
  // Give an injected onerror handler or script time to run, had one got in.
  await page.waitForTimeout(500);
  check("the injection prompt opens no dialog", seen.dialogs.length === 0, seen.dialogs.join(" | "));
  const images = await page.$$eval("img", (is) => is.length);
  check("the injection prompt adds no element", images === 0, `${images} img`);
  const shown = await page.textContent("pre.text");
  check("the injection prompt shows as text", shown === hostileText, JSON.stringify(shown));
  const scripts = await page.$$eval("script", (ss) => ss.length);
  check("only the page's own two scripts", scripts === 2, `${scripts} scripts`);
  await page.hover('#head-view text[data-side=q][data-i="0"]');
  check("hovering hostile tokens opens no dialog", seen.dialogs.length === 0);
  await page.screenshot({ path: join(outDir, "report-injection.png"), fullPage: true });
  check("no console errors or exceptions", seen.errors.length === 0, seen.errors.join(" | "));
  await page.close();
}

const userDataDir = await mkdtemp(join(tmpdir(), "gpt2-inspect-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
  });
  await catPage(context);
  await hostilePage(context);
} catch (e) {
  check("the browser run finishes", false, String(e && e.stack ? e.stack : e));
} finally {
  if (context) await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}
if (failures.length > 0) {
  console.error(`${failures.length} check(s) failed`);
  process.exit(1);
}
