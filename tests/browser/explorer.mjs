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
async function api(command, options, as) {
  const r = await fetch(config.url + "api/" + command + (as ? "?as=" + as : ""), { method: "POST", body: JSON.stringify(options) });
  return as ? r.text() : r.json();
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

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

  // A download is what the API's ?as= answers, which is what the command line writes.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#next-dl button[data-as=csv]")]);
  const csv = await readFile(await download.path(), "utf8");
  check("the CSV download is the API's", csv === await api("next", { text: config.prompt, top_k: 10 }, "csv"), csv.slice(0, 80));
  check("the download names its command line", (await page.$eval("#next-dl button[data-as=csv]", (b) => b.title)).endsWith("--top-k 10 " + "'" + config.prompt + "' --csv"));

  // The lens: a cell's top 10.
  await page.click("#lens td[data-depth='1'][data-position='2']");
  await page.waitForFunction(() => document.querySelectorAll("#lens-topk tr").length > 1, null, { timeout: 30000 });
  const cellApi = await api("lens", { text: config.prompt, top_k: 10, position: 2 });
  const cellIds = await page.$$eval("#lens-topk tr", (trs) => trs.slice(1).map((tr) => Number(tr.cells[2].textContent)));
  check("a lens cell's top 10 are the API's", same(cellIds, cellApi.depths[1].predictions.map((p) => p.id)), JSON.stringify(cellIds));
  // The lens chooser: the served Jacobian lens reads the depths it has, with the statistics.
  await page.selectOption("#lens-choice", config.lens);
  await page.waitForFunction(() => document.querySelectorAll("#lens tr").length === 4, null, { timeout: 30000 });
  const jl = await api("lens", { text: config.prompt, all_positions: true, lens: config.lens });
  const jCells = await page.$$eval("#lens tr", (trs) => trs.slice(1).map((tr) => [...tr.cells].slice(1).map((c) => c.title)));
  check("the chosen lens's grid and statistics are the API's", jl.lens === "jacobian" && jCells.length === jl.top.length && jCells.every((r, d) =>
    r.every((t, p) => t.includes(`id ${jl.top[d][p].id},`) && t.includes(`KL ${jl.stats.kl_to_final[d][p].toFixed(3)},`))));
  check("the chosen lens is in the URL", decodeURIComponent(page.url()).includes("lens=" + config.lens));
  await page.click("#lens td[data-depth='2'][data-position='1']");
  await page.waitForFunction(() => document.querySelector("#lens-cell-title").textContent.includes("jacobian"), null, { timeout: 30000 });
  const jCell = await api("lens", { text: config.prompt, top_k: 10, position: 1, lens: config.lens });
  const jIds = await page.$$eval("#lens-topk tr", (trs) => trs.slice(1).map((tr) => Number(tr.cells[2].textContent)));
  check("the chosen lens's cell top 10 are the API's", same(jIds, jCell.depths[1].predictions.map((p) => p.id)), JSON.stringify(jIds));
  await page.selectOption("#lens-choice", "logit");
  await page.waitForFunction(() => document.querySelectorAll("#lens tr").length === 5, null, { timeout: 30000 });

  // Saliency of a given answer.
  await page.fill("#answer", config.answer); await page.dispatchEvent("#answer", "change");
  await page.selectOption("#method", "gradient");
  await page.waitForFunction((a) => document.querySelector("#saliency-cmd").textContent.includes("--answer"), null, { timeout: 30000 });
  const salAns = await api("saliency", { text: config.prompt, position: last, method: "gradient", answer: config.answer });
  const ansShown = await page.$$eval("#saliency .tok", (ts) => ts.map((t) => Number(t.dataset.score)));
  check("saliency of the given answer is the API's", same(ansShown, salAns.scores), JSON.stringify(ansShown));

  // Patching and a circuit with a corrupt prompt.
  await page.fill("#corrupt", config.corrupt); await page.dispatchEvent("#corrupt", "change");
  await page.click("#run-patch");
  await page.waitForFunction(() => document.querySelectorAll("#patch-head td[data-value]").length > 0, null, { timeout: 60000 });
  const pair = { clean: config.prompt, corrupt: config.corrupt, answer: config.answer };
  for (const site of ["resid_pre", "head"]) {
    const r = await api("patch", { ...pair, site });
    const id = site === "head" ? "#patch-head" : "#patch-resid";
    const shownValues = await page.$$eval(id + " tr", (trs) => trs.slice(1).map((tr) => [...tr.cells].slice(1).map((c) => Number(c.dataset.value))));
    check(`patch ${site}'s grid is the API's`, same(shownValues, r.restored), JSON.stringify(shownValues).slice(0, 120));
  }
  await page.click("#run-circuit");
  await page.waitForFunction(() => document.querySelectorAll("#circuit-graph line").length > 0, null, { timeout: 60000 });
  const edgesShown = await page.$$eval("#circuit-graph line title", (ts) => ts.map((t) => t.textContent));
  const circ = await api("circuit", { ...pair, top: 20, faithfulness: [1, 2, 5, 10, 20, 50] });
  const strongest = circ.edges.slice().sort((a, b) => Math.abs(b.score) - Math.abs(a.score)).slice(0, 10);
  check("the circuit graph draws the API's 10 strongest edges", same(edgesShown, strongest.map((e) => `${e.writer} → ${e.reader}: ${e.score.toFixed(4)}`)), edgesShown[0]);
  await page.fill("#edges", "3");
  check("the slider keeps that many edges", (await page.$$eval("#circuit-graph line", (l) => l.length)) === 3);
  check("the faithfulness curve has a point per size", (await page.$$eval("#faith circle", (c) => c.length)) === circ.faithfulness.length);

  // Features of the selected token, a feature's logits, and steering.
  await page.waitForFunction(() => document.querySelectorAll("#features tr").length > 1, null, { timeout: 30000 });
  const feats = await api("features", { text: config.prompt, sae: config.sae, per_token: 10 });
  const featShown = await page.$$eval("#features tr", (trs) => trs.slice(1).map((tr) => Number(tr.dataset.feature)));
  check("the features at the selected token are the API's", same(featShown, feats.features[last].map((f) => f.id)), JSON.stringify(featShown));
  await page.click("#features tr >> nth=1");
  await page.waitForFunction(() => document.querySelectorAll("#steer-after tr").length > 1, null, { timeout: 30000 });
  const f = featShown[0];
  const steered = await api("next", { text: config.prompt, sae: config.sae, steer: `${f}=10`, top_k: 5 });
  const after = await page.$$eval("#steer-after tr", (trs) => trs.slice(1).map((tr) => Number(tr.cells[2].textContent)));
  check("steering's next tokens are the API's", same(after, steered.predictions.map((p) => p.id)), JSON.stringify(after));
  const logits = await api("feature", { features: [f], text: config.prompt, sae: config.sae, top_k: 10 });
  const promoted = await page.$$eval("#feature-logits tr", (trs) => trs.slice(1).map((tr) => JSON.parse(tr.cells[0].textContent)));
  check("a feature's logit table is the API's", same(promoted, logits.features[0].top_logits.map((p) => p.token)), JSON.stringify(promoted));

  // The attribution graph: traced on request, every node and drawn edge the API's, and a
  // clicked feature's activations, logits and strongest edges.
  await page.click("#trace");
  await page.waitForFunction(() => document.querySelectorAll("#graph [data-node]").length > 0, null, { timeout: 60000 });
  const graph = await api("graph", { text: config.prompt, transcoders: config.transcoders });
  const g = graph.graph;
  const drawnNodes = await page.$$eval("#graph [data-node]", (ns) => ns.map((n) => n.querySelector("title").textContent));
  check("the graph draws the API's nodes", same(drawnNodes, g.nodes.map((n) => n.label)), drawnNodes[0]);
  check("the graph draws the API's strongest edges", (await page.$$eval("#graph line", (l) => l.length)) === g.edges.length);
  const fi = g.nodes.findIndex((n) => n.kind === "feature");
  check("the graph has a feature node", fi >= 0);
  await page.click(`#graph [data-node="${fi}"]`);
  await page.waitForFunction(() => !document.querySelector("#node-box").hidden, null, { timeout: 30000 });
  const title = await page.$eval("#node-title", (t) => t.textContent);
  check("a clicked node is named", title.startsWith(g.nodes[fi].label), title);
  const promotes = await page.$$eval("#node-logits tr", (trs) => trs.slice(1).map((tr) => JSON.parse(tr.cells[0].textContent)));
  check("a feature's top logits are the API's", same(promotes, g.nodes[fi].top_logits.map((t) => t.token)), JSON.stringify(promotes));
  const actsShown = await page.$$eval("#node-acts tr:nth-child(2) td", (ts) => ts.map((t) => t.textContent));
  check("a feature's activations over the prompt are the API's", same(actsShown, g.nodes[fi].activations.map((a) => a ? a.toFixed(2) : "")), JSON.stringify(actsShown));
  const inShown = await page.$$eval("#node-in tr", (trs) => trs.slice(1).map((tr) => tr.cells[0].textContent));
  const inWant = g.edges.filter((e) => e.target === fi).sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)).slice(0, 8).map((e) => g.nodes[e.source].node_id);
  check("a node's strongest in-edges are the API's", same(inShown, inWant), JSON.stringify(inShown));
  const outWant = g.edges.filter((e) => e.source === fi).sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)).slice(0, 8).map((e) => g.nodes[e.target].node_id);
  const outShown = await page.$$eval("#node-out tr", (trs) => trs.slice(1).map((tr) => tr.cells[0].textContent));
  check("a node's strongest out-edges are the API's", same(outShown, outWant) && outWant.length > 0, JSON.stringify(outShown));
  await page.$eval("#graph-view", (s) => s.scrollIntoView());
  await (await page.$("#graph-view")).screenshot({ path: join(config.out, "explorer-graph.png") });

  // The attention views.
  await page.click("#attn-tabs button[data-view=neuron]");
  await page.waitForFunction(() => document.querySelectorAll("#neuron td[data-weight]").length > 0, null, { timeout: 30000 });
  const neuron = await api("attention", { text: config.prompt, layer: 0, head: 0, query: last });
  const weightsShown = await page.$$eval("#neuron td[data-weight]", (ts) => ts.map((t) => Number(t.dataset.weight)));
  check("the neuron view's weights are the API's", same(weightsShown, neuron.neuron.weights), JSON.stringify(weightsShown));
  await page.click("#attn-tabs button[data-view=stages]");
  await page.waitForFunction(() => document.querySelectorAll("#stages canvas").length === 8, null, { timeout: 30000 });
  check("the stages view draws eight stages", true);
  await page.click("#attn-tabs button[data-view=headview]");
  await page.waitForFunction(() => document.querySelectorAll("#headview line").length > 0, null, { timeout: 30000 });
  check("the head view draws lines", true);
  await page.click("#attn-tabs button[data-view=modelview]");
  await page.waitForFunction((n) => document.querySelectorAll("#modelview canvas").length === n, config.layers * config.heads, { timeout: 30000 });
  check("the model view has a thumbnail per head", true);
  await page.click("#modelview canvas[data-layer='1'][data-head='2']");
  await page.waitForFunction(() => document.querySelector("#attention-cmd").textContent.includes("--layer 1 --head 2"), null, { timeout: 30000 });
  check("a thumbnail opens its head", (await page.inputValue("#head")) === "2");
  await page.selectOption("#layer", "0");

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
  check("a reload restores the corrupt prompt", (await page.inputValue("#corrupt")) === config.corrupt);
  // A long prompt: one head's pattern is drawn, the all-heads views say why they are not.
  const long = Array(150).fill("the cat sat").join(" ");
  await page.fill("#prompt", long);
  await page.press("#prompt", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#tokens .tok").length > 256, null, { timeout: 60000 });
  await page.waitForFunction(() => document.querySelectorAll("#lens tr td").length > 256, null, { timeout: 60000 });
  await page.click("#attn-tabs button[data-view=modelview]");
  await page.waitForFunction(() => document.querySelector("#modelview").textContent.includes("up to 256 tokens"), null, { timeout: 30000 });
  check("the model view says it draws up to 256 tokens", (await page.$$eval("#modelview canvas", (c) => c.length)) === 0);
  await page.click("#attn-tabs button[data-view=head]");
  await page.waitForFunction(() => document.querySelector("#attention-cmd").textContent.includes("--head"), null, { timeout: 30000 });
  check("one head's pattern is drawn for a long prompt", (await page.$eval("#pattern", (c) => c.width)) > 400);
  check("no console errors", seen.errors.length === 0, seen.errors.join(" | "));
  check("nothing fetched from another host", seen.elsewhere.length === 0, seen.elsewhere.join(" "));
} finally {
  await browser.close();
}
process.exit(failures.length ? 1 : 0);
