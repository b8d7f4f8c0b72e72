// Drives the watch page (/api/ui) in headless Chromium (Debian's package) with playwright-core, as a person would
// look at it: the composition's row appears, its chart fills in while it runs, it completes, its weights and
// report.png show. Prints one JSON line of what it saw; exits 1 with a message when something does not show.
// Env: LORAHUB_UI (the page's URL), CHROMIUM, NODE_TOOLS (node_modules holding playwright-core), SCREENSHOT,
// MODULES (how many weights to expect). Prints "ready" once the page shows, then reads the composition's id (started
// by the test only then, so the page sees it run) from stdin.
"use strict";
const path = require("path");
const fs = require("fs");
const os = require("os");
const { chromium } = require(path.join(process.env.NODE_TOOLS, "playwright-core"));

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "lorahub-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on("pageerror", e => errors.push(e.message));
    await page.goto(process.env.LORAHUB_UI);
    await page.waitForFunction(() => !document.getElementById("empty").hidden || document.querySelector("#compositions tbody tr"), null, { timeout: 30000 });
    console.log("ready");
    const id = await new Promise(resolve => process.stdin.once("data", d => resolve(String(d).trim())));
    process.stdin.destroy(); // or the open stdin keeps node alive after the end
    await page.goto(`${process.env.LORAHUB_UI}&id=${id}`);
    const row = page.locator(`#compositions tbody tr[data-id="${id}"]`);
    await row.waitFor({ timeout: 30000 });

    // While it runs, the chart gains points (the page polls every 1.5 s).
    const seen = new Set();
    const deadline = Date.now() + 120000;
    let status = "";
    while (Date.now() < deadline) {
      status = await row.getAttribute("data-status");
      const points = Number(await page.locator("#chart").getAttribute("data-points") || 0);
      if (status !== "Completed") { if (points > 0) seen.add(points); } else break;
      await page.waitForTimeout(250);
    }
    if (status !== "Completed") throw new Error(`the composition's row says ${status}, not Completed, after 2 minutes`);
    await page.locator('#status[data-status="Completed"]').waitFor({ timeout: 10000 });
    await page.locator("#weights tbody tr").nth(Number(process.env.MODULES) - 1).waitFor({ timeout: 10000 });
    await page.waitForFunction(() => { const img = document.getElementById("report"); return !img.hidden && img.complete && img.naturalWidth > 0; }, null, { timeout: 15000 });
    await page.waitForFunction(() => Number(document.getElementById("chart").dataset.points) > 0, null, { timeout: 10000 });

    const saw = await page.evaluate(() => {
      const canvas = document.getElementById("chart");
      const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      let blue = 0, green = 0;
      for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i] === 0x4a && pixels[i + 1] === 0x78 && pixels[i + 2] === 0xc2) blue++;
        if (pixels[i] === 0x17 && pixels[i + 1] === 0x6b && pixels[i + 2] === 0x2c) green++;
      }
      const img = document.getElementById("report");
      return {
        status: document.getElementById("status").textContent,
        rowText: document.querySelector(`#compositions tbody tr.selected`)?.textContent,
        points: Number(canvas.dataset.points),
        dotPixels: blue, bestLinePixels: green,
        weights: [...document.querySelectorAll("#weights tbody tr")].map(r => ({ module: r.dataset.module, weight: Number(r.children[1].textContent) })),
        report: { width: img.naturalWidth, height: img.naturalHeight },
        error: document.getElementById("error").textContent,
      };
    });
    saw.pointsWhileRunning = [...seen].sort((a, b) => a - b);
    saw.pageErrors = errors;
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
    console.log(JSON.stringify(saw));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch(e => { console.error(`watch-page: ${e.stack || e}`); process.exit(1); });
