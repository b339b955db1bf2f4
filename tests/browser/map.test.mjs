// Browser test of the map viewer in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core from npm). Usage:
//
//   node tests/browser/map.test.mjs http://127.0.0.1:8080
//
// Checks: the landing page is the map and loads with no console errors; every layer with features
// renders some; clicking a feature opens its popup (name, attributes, plan quote); the search box
// finds 龙水镇 and shows its coverage; the English toggle works. Writes screenshots to
// test-artifacts/ (map.png: the default view). Exits non-zero when a check fails.
//
// Environment: CHROMIUM (default /usr/bin/chromium), YIZHANGTU_ARTIFACTS (default test-artifacts).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = (process.argv[2] || process.env.YIZHANGTU_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const artifacts = process.env.YIZHANGTU_ARTIFACTS || 'test-artifacts';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(artifacts, { recursive: true });

let passed = 0;
let failed = 0;
const failures = [];
function check(ok, what, detail = '') {
  if (ok) {
    passed++;
    console.log(`ok - ${what}`);
  } else {
    failed++;
    failures.push(what);
    console.log(`not ok - ${what}${detail ? `: ${detail}` : ''}`);
  }
}

const deadline = setTimeout(() => {
  console.log('not ok - the whole test took longer than 240 s');
  process.exit(2);
}, 240_000);

const browser = await chromium.launch({
  executablePath,
  headless: true,
  chromiumSandbox: false,
  args: [
    '--no-sandbox',
    '--use-angle=swiftshader',
    '--enable-unsafe-swiftshader',
    '--ignore-gpu-blocklist',
    '--enable-webgl',
    '--disable-background-networking',
    '--disable-quic',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-dev-shm-usage',
    '--lang=zh-CN',
  ],
});

const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'zh-CN', deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()} (${msg.location().url || ''})`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText || ''}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });

  // Waits until the map has rendered everything it asked for.
  const idle = () => page.evaluate(() => new Promise((resolve, reject) => {
    const m = window.yzt.map;
    const timer = setTimeout(() => reject(new Error('map never became idle')), 45_000);
    m.once('idle', () => { clearTimeout(timer); resolve(); });
    m.triggerRepaint();
  }));

  // 1. The landing page, as a browser asks for it, is the map.
  const res = await page.goto(`${base}/`, { waitUntil: 'load' });
  check(res && res.status() === 200, 'GET / answers 200', res ? String(res.status()) : 'no response');
  const hasMap = await page.locator('#map').count();
  check(hasMap === 1, 'the landing page is the map viewer', await page.title());
  if (!hasMap) throw new Error('no map on the landing page');
  const webgl = await page.evaluate(() => !!document.createElement('canvas').getContext('webgl2'));
  check(webgl, 'WebGL2 is available (swiftshader)');
  await page.waitForFunction(() => window.yzt && window.yzt.map, null, { timeout: 30_000 });
  await page.evaluate(() => window.yzt.ready);
  await idle();
  const layers = await page.evaluate(() => window.yzt.layers());
  check(layers.length >= 5, `the layer list has every layer (${layers.length})`);
  const listed = await page.locator('#layers .layer').count();
  check(listed === layers.length, `the legend lists ${layers.length} layers`, `${listed}`);
  const title = await page.locator('#brand h1').innerText();
  check(title.includes('一张图'), 'the interface is Chinese by default', title);
  // Default view: the five districts.
  const view = await page.evaluate(() => {
    const b = window.yzt.map.getBounds();
    return { w: b.getWest(), s: b.getSouth(), e: b.getEast(), n: b.getNorth(), z: window.yzt.map.getZoom() };
  });
  const districts = layers.find((l) => l.id === 'districts');
  if (districts && districts.bbox) {
    const [w, s, e, n] = districts.bbox;
    check(view.w <= w + 0.05 && view.e >= e - 0.05 && view.s <= s + 0.05 && view.n >= n - 0.05,
      'the default view shows all districts', JSON.stringify(view));
  }
  const visibleDefault = await page.evaluate(() => {
    const ids = [...window.yzt.state.visible];
    return ids.filter((id) => window.yzt.map.queryRenderedFeatures({ layers: window.yzt.styleLayers(id).filter((s) => !s.endsWith(':label')) }).length > 0);
  });
  check(visibleDefault.length >= 5, `the default view draws features of several layers (${visibleDefault.join(', ')})`);
  await page.screenshot({ path: join(artifacts, 'map.png') });

  // 2. Every layer renders features (each in turn, at one of its features).
  for (const l of layers) {
    if (!l.count) continue;
    const n = await page.evaluate(async (id) => {
      const y = window.yzt;
      y.setVisible(id, true);
      const fc = await (await fetch(`/collections/${id}/items?limit=1`)).json();
      const g = fc.features[0].geometry;
      let b = [Infinity, Infinity, -Infinity, -Infinity];
      const walk = (c) => (typeof c[0] === 'number'
        ? (b = [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])])
        : c.forEach(walk));
      walk(g.coordinates);
      y.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 60, maxZoom: 13, animate: false });
      await new Promise((r) => { y.map.once('idle', r); y.map.triggerRepaint(); });
      const styleIds = y.styleLayers(id).filter((s) => !s.endsWith(':label'));
      return y.map.queryRenderedFeatures({ layers: styleIds }).length;
    }, l.id);
    check(n > 0, `layer ${l.id} renders features (${n})`);
  }

  // 3. Clicking a feature opens its popup: a plan point feature with a quote.
  const target = await page.evaluate(async () => {
    for (const id of ['public_facilities', 'projects', 'markets', 'tourism_sites', 'infrastructure']) {
      const fc = await (await fetch(`/collections/${id}/items?limit=200`)).json();
      const f = fc.features.find((x) => x.geometry && x.geometry.type === 'Point' && x.properties.source && x.properties.source.quote);
      if (f) return { layer: id, id: String(f.id), name: f.properties.name, lonlat: f.geometry.coordinates };
    }
    return null;
  });
  check(!!target, 'found a plan point feature to click');
  if (target) {
    const px = await page.evaluate(async (t) => {
      const y = window.yzt;
      y.setVisible(t.layer, true);
      y.map.jumpTo({ center: t.lonlat, zoom: 13 });
      await new Promise((r) => { y.map.once('idle', r); y.map.triggerRepaint(); });
      const p = y.map.project(t.lonlat);
      const r = y.map.getCanvas().getBoundingClientRect();
      return { x: r.left + p.x, y: r.top + p.y };
    }, target);
    await page.mouse.click(px.x, px.y);
    const popup = page.locator('.maplibregl-popup .popup h3');
    await popup.waitFor({ timeout: 20_000 });
    const popupTitle = await popup.innerText();
    const clickedId = await page.locator('.maplibregl-popup .popup').getAttribute('data-id');
    check(popupTitle.trim().length > 0, `clicking a feature opens its popup (“${popupTitle}”, ${clickedId})`);
    check(await page.locator('.maplibregl-popup blockquote').count() === 1, 'the popup quotes the plan');
    check(await page.locator('.maplibregl-popup table tr').count() > 0, 'the popup has an attribute table');
    await page.screenshot({ path: join(artifacts, 'map-popup.png') });
    await page.locator('.maplibregl-popup-close-button').click();
  }

  // 4. The search box finds 龙水镇, goes there and shows its coverage.
  await page.fill('#q', '龙水镇');
  await page.press('#q', 'Enter');
  await page.waitForFunction(() => (document.querySelector('#area-title')?.textContent || '').includes('龙水镇'), null, { timeout: 20_000 });
  check(true, 'the search box finds 龙水镇');
  await page.waitForSelector('#area-body table', { timeout: 30_000 });
  const rows = await page.locator('#area-body table tbody tr').count();
  check(rows > 0, `龙水镇 shows coverage figures for ${rows} layers`);
  await page.evaluate(() => new Promise((r) => (window.yzt.map.isMoving() ? window.yzt.map.once('moveend', r) : r())));
  await idle();
  const at = await page.evaluate(async () => {
    const a = await (await fetch('/areas/%E9%BE%99%E6%B0%B4%E9%95%87')).json();
    const c = window.yzt.map.getCenter();
    return { bbox: a.bbox, c: [c.lng, c.lat], z: window.yzt.map.getZoom() };
  });
  check(at.bbox && at.c[0] > at.bbox[0] && at.c[0] < at.bbox[2] && at.c[1] > at.bbox[1] && at.c[1] < at.bbox[3] && at.z > 9,
    'the map flew to 龙水镇', JSON.stringify(at));
  await page.screenshot({ path: join(artifacts, 'map-search.png') });

  // 5. English toggle.
  await page.click('#lang');
  const en = await page.locator('#layers').innerText();
  check(en.includes('Districts'), 'the English toggle switches the interface');
  await page.click('#lang');

  // 6. Nothing went wrong along the way.
  check(problems.length === 0, 'no console errors, page errors or failed requests', problems.slice(0, 10).join(' | '));
} catch (e) {
  check(false, `the test ran to the end`, e && e.stack ? e.stack : String(e));
  if (problems.length) console.log(problems.slice(0, 20).join('\n'));
} finally {
  await browser.close().catch(() => {});
  clearTimeout(deadline);
}
console.log(`browser: ${passed} passed, ${failed} failed`);
console.log(`screenshots: ${join(artifacts, 'map.png')}, map-popup.png, map-search.png`);
process.exit(failed ? 1 : 0);
