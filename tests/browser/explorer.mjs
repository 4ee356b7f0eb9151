// Drives the explorer (`gpt2-inspect serve`) in headless Chromium as a person would: types a
// prompt, presses Enter, clicks a token, switches the head, reloads the URL, and checks that
// the numbers shown equal the API's, that nothing is fetched from another host and that the
// console stays clean. Usage: node explorer.mjs CONFIG.json, where CONFIG names the server's
// URL, the prompt and the output folder. Prints one line per check; exits 1 if any failed.
// tests/suite/browser.rs runs it.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(await readFile(process.argv[2], "utf8"));
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const failures = [];
function check(what, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? ": " + detail : ""}`);
  if (!ok) failures.push(what);
}
async function api(command, options) {
  const r = await fetch(config.url + "api/" + command, { method: "POST", body: JSON.stringify(options) });
  return r.json();
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: FLAGS });
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  const origin = new URL(config.url).origin;
  const seen = { errors: [], elsewhere: [] };
  page.on("console", (m) => m.type() === "error" && seen.errors.push(m.text()));
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  page.on("request", (r) => new URL(r.url()).origin !== origin && seen.elsewhere.push(r.url()));
  await page.goto(config.url);
  await page.waitForFunction(() => document.querySelectorAll("#layer option").length > 0, null, { timeout: 30000 });
  await page.fill("#prompt", config.prompt);
  await page.press("#prompt", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#lens tr").length > 1, null, { timeout: 30000 });

  const tokens = await api("tokenize", { text: config.prompt });
  const shownTokens = await page.$$eval("#tokens .tok", (bs) => bs.map((b) => b.firstChild.textContent));
  check("a button per token", shownTokens.length === tokens.tokens.length, JSON.stringify(shownTokens));
  const next = await api("next", { text: config.prompt, top_k: 10 });
  const rows = await page.$$eval("#next tr", (trs) => trs.slice(1).map((tr) => [...tr.cells].map((c) => c.textContent)));
  check("the next-token table is the API's", rows.length === next.predictions.length && rows.every((r, i) =>
    Number(r[2]) === next.predictions[i].id && r[3] === next.predictions[i].prob.toFixed(4)), JSON.stringify(rows[0]));
  const lens = await api("lens", { text: config.prompt, all_positions: true });
  const cells = await page.$$eval("#lens tr", (trs) => trs.slice(1).map((tr) => [...tr.cells].slice(1).map((c) => c.title)));
  check("the lens grid is the API's", cells.length === lens.top.length && cells.every((r, d) =>
    r.every((t, p) => t.includes(`id ${lens.top[d][p].id},`))));

  // Saliency at the last token, as the API explains it.
  await page.waitForFunction(() => document.querySelectorAll("#saliency .tok").length > 0, null, { timeout: 30000 });
  const last = tokens.tokens.length - 1;
  const sal = await api("saliency", { text: config.prompt, position: last, method: "gradient" });
  const scores = await page.$$eval("#saliency .tok", (ts) => ts.map((t) => Number(t.dataset.score)));
  check("the saliency strip is the API's", scores.length === sal.scores.length && scores.every((v, i) => v === sal.scores[i]),
    JSON.stringify(scores));
  await page.selectOption("#method", "integrated-gradients");
  await page.waitForFunction(() => document.querySelector("#saliency-cmd").textContent.includes("integrated-gradients"), null, { timeout: 60000 });
  const ig = await api("saliency", { text: config.prompt, position: last, method: "integrated-gradients", steps: 16 });
  const igShown = await page.$$eval("#saliency .tok", (ts) => ts.map((t) => Number(t.dataset.score)));
  check("integrated gradients are the API's", igShown.every((v, i) => v === ig.scores[i]));
  await page.fill("#n", "4");
  await page.click("#continue");
  await page.waitForFunction(() => document.querySelectorAll("#generated b").length > 0, null, { timeout: 30000 });
  const gen = await api("generate", { text: config.prompt, max_new_tokens: 4 });
  const genShown = await page.$$eval("#generated b", (bs) => bs.map((b) => b.textContent));
  check("generation is the API's", JSON.stringify(genShown) === JSON.stringify(gen.steps.map((s) => s.token)), JSON.stringify(genShown));

  await page.click("#tokens .tok >> nth=1");
  check("a click selects the token", await page.$eval("#tokens .tok >> nth=1", (b) => b.classList.contains("sel")));
  check("the URL keeps the selection", (await page.evaluate(() => location.hash)).includes("pos=1"));
  await page.selectOption("#head", "1");
  await page.waitForFunction(() => document.querySelector("#attention-cmd").textContent.includes("--head 1"), null, { timeout: 30000 });
  const cmd = await page.$eval("#attention-cmd", (c) => c.textContent);
  check("the attention view shows its command line", cmd.includes("gpt2-inspect attention --layer 0 --head 1") && cmd.endsWith("--json"), cmd);
  await page.screenshot({ path: join(config.out, "explorer.png"), fullPage: true });

  const url = page.url();
  await page.goto("about:blank");
  await page.goto(url);
  await page.waitForFunction(() => document.querySelectorAll("#lens tr").length > 1, null, { timeout: 30000 });
  check("a reload restores the prompt", (await page.inputValue("#prompt")) === config.prompt);
  check("a reload restores the head", (await page.inputValue("#head")) === "1");
  check("no console errors", seen.errors.length === 0, seen.errors.join(" | "));
  check("nothing fetched from another host", seen.elsewhere.length === 0, seen.elsewhere.join(" "));
} finally {
  await browser.close();
}
process.exit(failures.length ? 1 : 0);
