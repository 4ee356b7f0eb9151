// Opens pages written by `gpt2-inspect report` in headless Chromium and checks what a person
// would do with them. Usage: node check.mjs CONFIG.json, where CONFIG names the pages (cat,
// hostile, big), the hostile text, the output folder and the neuron view's expected numbers
// (from Hugging Face). Prints one line per check; exits 1 if any failed. tests/suite/browser.rs
// runs it.
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

if (process.argv.length !== 3) {
  console.error("usage: node check.mjs CONFIG.json");
  process.exit(2);
}
const config = JSON.parse(await readFile(process.argv[2], "utf8"));
const { cat: catPath, hostile: hostilePath, hostileText, big: bigPath, bigNeuron, outDir } = config;
// Hugging Face's numbers may differ from the page's by float rounding and the 4 decimals shown.
const TOL = 1e-4;
// Opening a 256-token page of gpt2's shape takes at most this (issue: under 2 s).
const OPEN_MS = 2000;

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
  const start = Date.now();
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });
  return { page, seen, openMs: Date.now() - start };
}

// The attention matrix canvas as a data URL, to tell whether a click redrew it.
const matrixPixels = (page) => page.$eval("#matrix", (c) => c.toDataURL());
const viewState = (page) =>
  page.$eval("#head-view", (v) => ({ layer: v.dataset.layer, head: v.dataset.head }));

async function catPage(context) {
  const { page, seen } = await open(context, catPath);
  const data = await page.$eval("#page-data", (s) => JSON.parse(s.textContent));
  const T = data.labels.length;

  const lines = await page.$eval("#head-view .lines", (g) => +g.dataset.count);
  check("head view draws lines", lines > 0, `${lines} lines`);
  const labels = await page.$$eval("#head-view text[data-side]", (ts) => ts.length);
  check("head view labels every token on both sides", labels === 2 * T, `${labels} of ${2 * T}`);
  check("head view starts at layer 0 head 0", JSON.stringify(await viewState(page)) ===
    JSON.stringify({ layer: "0", head: "0" }));

  // Hovering a query leaves only that query's lines.
  await page.hover(`#head-view text[data-side=q][data-i="${T - 1}"]`);
  const hovered = await page.$$eval("#head-view .lines line", (ls) => ls.map((l) => l.dataset.q));
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
    (attnValue(data, 0, 0, T - 1, 0) / 1e4).toFixed(4);
  check("pointing at a matrix cell shows its value", cell === want, `${cell} (want ${want})`);
  const lit = await page.$$eval("#head-view .highlight line", (ls) => ls.map((l) => `${l.dataset.q}/${l.dataset.k}`));
  check("pointing at a matrix cell lights up its line", lit.join() === `${T - 1}/0`, lit.join());
  await page.mouse.move(0, 0);
  const unlit = await page.$$eval("#head-view .highlight line", (ls) => ls.length);
  check("leaving the matrix puts the line out", unlit === 0, `${unlit} lines`);

  // Overlaying a second head draws its lines in another colour; its button is pressed.
  await page.click('#overlay button[data-head="1"]');
  const overlaid = await page.$$eval("#head-view .lines [data-head]", (ls) => [...new Set(ls.map((l) => `${l.dataset.head}:${l.getAttribute("stroke")}`))]);
  const heads = new Set(overlaid.map((x) => x.split(":")[0]));
  const colours = new Set(overlaid.map((x) => x.split(":")[1]));
  check("overlaying a head adds its lines", heads.has("0") && heads.has("1"), overlaid.join(" "));
  check("each overlaid head has its own colour", colours.size === heads.size, overlaid.join(" "));
  check("the overlay button says it is on",
    (await page.getAttribute('#overlay button[data-head="1"]', "aria-pressed")) === "true");
  await page.click('#overlay button[data-head="1"]');
  const back = await page.$$eval("#head-view .lines [data-head]", (ls) => [...new Set(ls.map((l) => l.dataset.head))]);
  check("a second click takes the head off again", back.join() === "0", back.join());

  // The matrix's rows and columns are labelled with the tokens.
  const rowsShown = await page.$$eval(".matrix-rows span", (ss) => ss.map((s) => s.textContent));
  const colsShown = await page.$$eval(".matrix-cols span", (ss) => ss.map((s) => s.textContent));
  check("the matrix labels its rows and columns with the tokens",
    rowsShown.join("|") === data.labels.join("|") && colsShown.join("|") === data.labels.join("|"),
    `${rowsShown.join("|")} / ${colsShown.join("|")}`);

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
  const strip = await page.$$eval("#saliency ol.saliency li", (ls) => ls.length);
  check("the saliency strip has a cell per token", strip === data.labels.length, `${strip} cells`);

  await neuronView(page, data);

  await page.selectOption("#layer", "0");
  await page.selectOption("#head", "0");
  await page.screenshot({ path: join(outDir, "report.png"), fullPage: true });
  check("no console errors or exceptions", seen.errors.length === 0, seen.errors.join(" | "));
  check("no network requests", seen.requests.length === 0, seen.requests.join(" "));
  await page.close();
}

// The stored value (round(p × 10⁴)) of query i attending to key j ≤ i, from the page data.
function attnValue(data, l, h, i, j) {
  const bytes = Buffer.from(data.attn, "base64");
  const T = data.labels.length;
  const at = (l * data.heads + h) * (T * (T + 1)) / 2 + (i * (i + 1)) / 2 + j;
  return bytes.readUInt16LE(2 * at);
}

// Numbers in a hover line, in order.
const numbers = (s) => (s.match(/-?\d+\.\d+/g) || []).map(Number);

// Choose a head and a query, hover cells of the neuron view, and compare what it says with
// Hugging Face's q, k, scores and pattern.
async function neuronView(page, data) {
  const e = config.neuron;
  await page.selectOption("#layer", String(e.layer));
  await page.selectOption("#head", String(e.head));
  await page.selectOption("#neuron-query", String(e.query));
  const shown = await page.$eval("#neuron-view", (c) => ({ ...c.dataset }));
  check("the neuron view follows the layer, head and query selects",
    shown.layer === String(e.layer) && shown.head === String(e.head) && shown.query === String(e.query),
    JSON.stringify(shown));
  // The canvas's own layout, read from where its columns are drawn.
  // Where the canvas is once the page has stopped scrolling (a thumbnail click scrolls it
  // smoothly).
  const settled = async () => {
    let last = "";
    for (let n = 0; n < 40; n++) {
      const box = await page.$eval("#neuron-view", (c) => {
        c.scrollIntoView({ block: "center" });
        const r = c.getBoundingClientRect();
        return { x: r.left, y: r.top, sx: r.width / c.width, sy: r.height / c.height };
      });
      if (JSON.stringify(box) === last) return box;
      last = JSON.stringify(box);
      await page.waitForTimeout(50);
    }
    throw new Error("the page never stopped scrolling");
  };
  const at = async (x, y) => {
    const box = await settled();
    await page.mouse.move(box.x + x * box.sx, box.y + y * box.sy);
    return page.textContent("#neuron-info");
  };
  const geo = await page.$eval("#neuron-view", (c) => JSON.parse(c.dataset.layout));
  const rowY = (j) => geo.top + j * geo.row + geo.row / 2;
  const cellX = (x0, el) => x0 + el * geo.cell + geo.cell / 2;
  const close = (got, want) => Math.abs(got - want) <= TOL;

  const q = await at(cellX(geo.kx, e.element), geo.row + geo.row / 2);
  check("hovering q shows q[e] as HF computed it", close(numbers(q)[0], e.q), `${q} (HF ${e.q})`);
  const k = await at(cellX(geo.kx, e.element), rowY(e.key));
  check("hovering k shows k[e] as HF computed it", k.includes(`key ${e.key} ${data.labels[e.key]}`) &&
    close(numbers(k)[0], e.k), `${k} (HF ${e.k})`);
  const qk = await at(cellX(geo.qkx, e.element), rowY(e.key));
  const [a, b, prod] = numbers(qk);
  check("hovering q × k shows the product of HF's q and k",
    close(a, e.q) && close(b, e.k) && close(prod, e.qk), `${qk} (HF ${e.q} × ${e.k} = ${e.qk})`);
  const sums = await at(geo.numx + 10, rowY(e.key));
  const [dot, score, weight] = numbers(sums);
  check("hovering the numbers shows q · k, the score and the weight as HF computed them",
    close(dot, e.dot) && close(score, e.score) && close(weight, e.weight),
    `${sums} (HF q·k ${e.dot}, score ${e.score}, weight ${e.weight})`);
  const masked = await at(cellX(geo.qkx, 0), rowY(e.query + 1));
  check("keys after the query are masked", masked.includes("masked"), masked);
  await page.mouse.move(0, 0);
}

// Opens a page three times; the last opening and the median time to ready (from the start
// of navigation, as the page measures it).
async function openTimed(context, path) {
  const times = [];
  let last;
  for (let n = 0; n < 3; n++) {
    if (last) await last.page.close();
    last = await open(context, path);
    times.push(await last.page.evaluate(() => +document.body.dataset.readyMs));
  }
  times.sort((a, b) => a - b);
  const size = (await stat(path)).size;
  return { ...last, median: times[1], times, mb: (size / 1e6).toFixed(1) };
}

// A 256-token page of gpt2's shape opens quickly, every view still works, thumbnails are
// drawn as they come into view. Without q and k (the default at this length), the neuron
// view says how to get it.
async function bigPage(context) {
  const { page, seen, median, times, mb } = await openTimed(context, bigPath);
  check(`a 256-token gpt2-shaped page (${mb} MB) is ready in under ${OPEN_MS} ms`,
    median < OPEN_MS, `median ${median} ms of ${times.join(", ")}`);
  const data = await page.$eval("#page-data", (s) => JSON.parse(s.textContent));
  check("the page holds 12 × 12 heads of 256 tokens",
    data.layers === 12 && data.heads === 12 && data.labels.length === 256 && data.dHead === 64);
  const atReady = await page.evaluate(() => +document.body.dataset.drawnAtReady);
  check("the page is ready before the thumbnails out of view are drawn", atReady < 144, `${atReady} of 144 drawn when ready`);
  await page.waitForSelector("body[data-all-drawn=true]", { timeout: 30000 });
  const drawn = await page.$$eval("#model-view canvas[data-drawn]", (cs) => cs.length);
  check("then every thumbnail is drawn while the page is idle", drawn === 144, `${drawn} of 144`);
  await page.click('#model-view canvas[data-layer="11"][data-head="11"]');
  check("a far thumbnail is drawn when clicked",
    (await page.getAttribute('#model-view canvas[data-layer="11"][data-head="11"]', "data-drawn")) === "true");
  const lines = await page.$eval("#head-view .lines", (g) => +g.dataset.count);
  check("the head view draws", lines > 0, `${lines} lines`);
  const missing = await page.textContent("#neuron-missing");
  check("without q and k the neuron view says how to get them", missing.includes("--neuron-view always"), missing);
  check("no console errors or exceptions", seen.errors.length === 0, seen.errors.join(" | "));
  await page.close();

  const withQk = await openTimed(context, bigNeuron);
  console.log(`info the same page with q and k (${withQk.mb} MB) is ready in a median ${withQk.median} ms of ${withQk.times.join(", ")}`);
  await withQk.page.selectOption("#neuron-query", "255");
  check("with q and k the neuron view draws the last query",
    (await withQk.page.$eval("#neuron-view", (c) => c.dataset.query)) === "255");
  // d_head 64: the view fits the page, so its weight column is in sight without scrolling.
  const fit = await withQk.page.$eval("#neuron-view", (c) => [c.getBoundingClientRect().right, c.parentElement.getBoundingClientRect().right]);
  check("a d_head-64 neuron view fits the page, weight column and all", fit[0] <= fit[1] + 1, `canvas ends at ${fit[0]}, its box at ${fit[1]}`);
  check("no console errors or exceptions", withQk.seen.errors.length === 0, withQk.seen.errors.join(" | "));
  await withQk.page.close();
}

// A link can open the page at a layer with heads overlaid.
async function linkedPage(context) {
  const page = await context.newPage();
  await page.goto(pathToFileURL(resolve(catPath)).href + "#L1H0,2");
  await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });
  const shown = await page.$eval("#head-view", (v) => ({ layer: v.dataset.layer, heads: v.dataset.heads }));
  check("#L1H0,2 opens layer 1 with heads 0 and 2 overlaid",
    shown.layer === "1" && shown.heads === "0,2", JSON.stringify(shown));
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
  await linkedPage(context);
  await bigPage(context);
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
