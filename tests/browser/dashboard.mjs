// Opens a page written by `gpt2-inspect feature --html` in headless Chromium and checks it
// against the same run's JSON. Usage: node dashboard.mjs CONFIG.json, where CONFIG names the
// page, the JSON report, a hostile text of the corpus and the output folder. Prints one
// line per check; exits 1 if any failed. tests/suite/browser.rs runs it.
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const config = JSON.parse(await readFile(process.argv[2], "utf8"));
const report = JSON.parse(await readFile(config.json, "utf8"));
// The page shows 3 decimals; its data- attributes hold the JSON's own numbers.
const TOL = 1e-6;
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const failures = [];
function check(what, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? ": " + detail : ""}`);
  if (!ok) failures.push(what);
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: FLAGS });
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const url = pathToFileURL(resolve(config.page)).href;
  const seen = { errors: [], dialogs: [], requests: [] };
  page.on("console", (m) => m.type() === "error" && seen.errors.push(m.text()));
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  page.on("dialog", async (d) => { seen.dialogs.push(d.message()); await d.dismiss(); });
  page.on("request", (r) => r.url() !== url && seen.requests.push(r.url()));
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });

  const shown = await page.evaluate(() => [...document.querySelectorAll("section.feature")].map((s) => ({
    id: Number(s.dataset.feature),
    bins: [...s.querySelectorAll("rect.bin")].map((r) => ({
      lo: Number(r.dataset.lo), count: Number(r.dataset.count), height: r.getBoundingClientRect().height })),
    promotes: [...s.querySelectorAll(".promotes tr[data-id]")].map((r) => [Number(r.dataset.id), Number(r.dataset.value)]),
    suppresses: [...s.querySelectorAll(".suppresses tr[data-id]")].map((r) => [Number(r.dataset.id), Number(r.dataset.value)]),
    contexts: [...s.querySelectorAll("ol.contexts li")].map((li) => ({
      text: Number(li.dataset.text), peak: Number(li.dataset.peak),
      tokens: [...li.querySelectorAll(".tok")].map((t) => ({
        text: t.textContent, act: Number(t.dataset.act), peak: t.classList.contains("peak"),
        bg: getComputedStyle(t).backgroundColor })),
    })),
  })));
  check("one section per feature", JSON.stringify(shown.map((s) => s.id)) === JSON.stringify(report.features.map((f) => f.id)));
  for (const [s, f] of shown.map((s, i) => [s, report.features[i]])) {
    const c = f.corpus;
    const bins = c.histogram.map((n, i) => [i * c.bin_width, n]).filter(([, n]) => n > 0);
    check(`feature ${f.id}: a bar per non-empty bin`, s.bins.length === bins.length && s.bins.every((b, i) =>
      Math.abs(b.lo - bins[i][0]) < TOL && b.count === bins[i][1]), JSON.stringify(s.bins.map((b) => b.count)));
    const most = Math.max(...s.bins.map((b) => b.count));
    const tallest = Math.max(...s.bins.map((b) => b.height));
    check(`feature ${f.id}: bar heights follow the counts`, s.bins.every((b) =>
      Math.abs(b.height / tallest - b.count / most) < 0.02 || b.height <= 1.5));
    for (const [name, rows, want] of [["promotes", s.promotes, f.top_logits], ["suppresses", s.suppresses, f.bottom_logits]]) {
      check(`feature ${f.id}: the ${name} table`, rows.length === want.length && rows.every(([id, v], i) =>
        id === want[i].id && Math.abs(v - want[i].value) < TOL));
    }
    check(`feature ${f.id}: every context, highest first`, s.contexts.length === c.contexts.length);
    s.contexts.forEach((ctx, i) => {
      const w = c.contexts[i];
      const tokensOk = ctx.tokens.length === w.tokens.length && ctx.tokens.every((t, j) =>
        t.text === w.tokens[j].replaceAll("\n", "↵") && Math.abs(t.act - w.activations[j]) < TOL);
      check(`feature ${f.id} context ${i}: its tokens and activations`, ctx.text === w.text && tokensOk);
      const peaks = ctx.tokens.map((t, j) => (t.peak ? j : -1)).filter((j) => j >= 0);
      check(`feature ${f.id} context ${i}: the peak is outlined`,
        peaks.length === 1 && peaks[0] === w.peak_position - w.start, JSON.stringify(peaks));
      // Blues: the darker, the larger; the peak is the darkest of its context.
      const lum = (bg) => bg.match(/\d+/g).slice(0, 3).map(Number).reduce((a, b) => a + b, 0);
      const darkest = Math.min(...ctx.tokens.map((t) => lum(t.bg)));
      check(`feature ${f.id} context ${i}: the peak is the darkest`, lum(ctx.tokens[peaks[0]].bg) === darkest);
    });
  }
  check("no script ran from the page's text", seen.dialogs.length === 0, seen.dialogs.join("; "));
  check("no console errors", seen.errors.length === 0, seen.errors.join("; "));
  check("no requests but the file", seen.requests.length === 0, seen.requests.join(" "));
  const scripts = await page.evaluate(() => document.querySelectorAll("script").length);
  check("the page has no script", scripts === 0);
  await page.screenshot({ path: join(config.outDir, "dashboard.png"), fullPage: true });
} finally {
  await browser.close();
}
if (failures.length) {
  console.log(`${failures.length} checks failed`);
  process.exit(1);
}
