// Opens circuit-tracer's own local viewer (its frontend, served by its local_server) on a
// graph file, with the scripts it loads from transformer-circuits.pub and unpkg answered
// from npm packages, and screenshots it; fails if the page reports an error, fetches from
// another host or draws no node. Usage: node shot.mjs URL OUT.png MODULES_DIR
// (scripts/ct_viewer.sh runs it).
import { readFile } from "node:fs/promises";
import { chromium } from "playwright-core";
const [url, out, modules] = process.argv.slice(2);
const LIBS = [
  [/static_js\/lib\/d3\.js$/, [`${modules}/d3/dist/d3.js`, `${modules}/d3-collection/dist/d3-collection.js`]],
  [/static_js\/lib\/jetpack_.*\.js$/, [`${modules}/d3-jetpack/build/d3-jetpack.js`, "shim:conventions"]],
  [/static_js\/lib\/hotserver-client-ws\.js$/, null],
  [/static_js\/lib\/npy_v0\.js$/, null],
  [/dagre@0\.8\.5\/dist\/dagre\.min\.js$/, `${modules}/dagre/dist/dagre.min.js`],
  [/pako@2\.1\.0\/dist\/pako\.min\.js$/, `${modules}/pako/dist/pako.min.js`],
];
// The 2024 jetpack build the viewer loads gives conventions() a drawAxis(svg) method; npm's
// 2.1.0 has d3.drawAxis(c) instead.
const SHIMS = {
  "shim:conventions": "(function(){var conv=d3.conventions;d3.conventions=function(c){c=conv(c);" +
    "c.drawAxis=function(svg){return d3.drawAxis(Object.assign({},c,{svg:svg||c.svg}))};return c}})()",
};
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const errors = [], elsewhere = [];
page.on("pageerror", (e) => errors.push(String(e.stack)));
page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
await page.route((u) => !u.href.startsWith(new URL(url).origin), async (route) => {
  const href = route.request().url();
  const lib = LIBS.find(([re]) => re.test(href));
  if (!lib) { elsewhere.push(href); return route.abort(); }
  const files = lib[1] ? [].concat(lib[1]) : [];
  const body = (await Promise.all(files.map((f) => f in SHIMS ? SHIMS[f] : readFile(f, "utf8")))).join(";\n");
  return route.fulfill({ status: 200, contentType: "application/javascript", body });
});
await page.goto(url);
await page.waitForTimeout(4000);
await page.screenshot({ path: out, fullPage: true });
const nodes = await page.$$eval("circle, .node", (n) => n.length);
console.log(JSON.stringify({ errors, elsewhere, nodes }));
await browser.close();
process.exit(errors.length || elsewhere.length || !nodes ? 1 : 0);
