// Browser test of the map viewer in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core from npm). Usage:
//
//   node tests/browser/map.test.mjs http://127.0.0.1:8080
//
// Checks: the landing page is the map and loads with no console errors; every layer with features
// renders some; clicking a feature opens its popup (the plan's sentence first, Chinese labels); the
// search box finds 龙水镇 and its panel gives the vegetable bases' 亩 as the plan states them, never
// a covered area for whole-unit items; 火炉镇's panel lists its six projects; clicking 万峰林海's
// position offers it in the chooser, smallest first; a polygon drawn on the map gets the coverage
// figures POST /analysis/coverage gives for it; 龙水镇 exported as Shapefiles opens in GDAL
// (ogrinfo); the English toggle keeps the panel open; at 390×844 the districts fit and nothing is
// off-screen. Writes screenshots of each step to test-artifacts/. Exits non-zero when a check fails.
//
// Environment: CHROMIUM (default /usr/bin/chromium), OGRINFO (default ogrinfo),
// YIZHANGTU_ARTIFACTS (default test-artifacts).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';

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
  page.on('requestfailed', (req) => {
    const why = req.failure()?.errorText || '';
    // MapLibre cancels the tiles it no longer needs when the view jumps elsewhere: not a failure.
    if (why === 'net::ERR_ABORTED' && new URL(req.url()).pathname.startsWith('/tiles/')) return;
    problems.push(`request failed: ${req.url()} ${why}`);
  });
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
      const fc = await (await fetch(`/collections/${id}/items?limit=50`)).json();
      const g = (fc.features.find((f) => f.geometry) || {}).geometry;
      if (!g) return -1;
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
    if (n !== -1) check(n > 0, `layer ${l.id} renders features (${n})`);
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
    // Several things under the pointer: the chooser lists them; pick the one aimed at.
    const chooser = page.locator('.popup.chooser li[data-id="' + target.id + '"]');
    await page.waitForSelector('.maplibregl-popup .popup', { timeout: 20_000 });
    if (await chooser.count()) await chooser.first().click();
    const popup = page.locator('.maplibregl-popup .popup[data-id] h3');
    await popup.waitFor({ timeout: 20_000 });
    const popupTitle = await popup.innerText();
    const clickedId = await page.locator('.maplibregl-popup .popup').getAttribute('data-id');
    check(popupTitle.trim().length > 0, `clicking a feature opens its popup (“${popupTitle}”, ${clickedId})`);
    check(await page.locator('.maplibregl-popup blockquote').count() === 1, 'the popup quotes the plan');
    check(await page.locator('.maplibregl-popup table tr').count() > 0, 'the popup has an attribute table');
    const firstBlock = await page.evaluate(() => document.querySelector('.maplibregl-popup .popup[data-id] blockquote')
      .compareDocumentPosition(document.querySelector('.maplibregl-popup .popup[data-id] table')) & Node.DOCUMENT_POSITION_FOLLOWING);
    check(!!firstBlock, "the plan's sentence comes before the attributes");
    const popupText = await page.locator('.maplibregl-popup .popup[data-id]').innerText();
    const english = popupText.match(/\b[a-z]{3,}(?:[ -][a-z]{2,}){2,}\b/g);
    check(!english, 'no English prose in the Chinese popup', english ? english.join(' | ') : '');
    check(!/\b\d,\d{3}\s*年/.test(popupText), 'years are printed without thousands separators', popupText.slice(0, 200));
    await page.screenshot({ path: join(artifacts, 'map-popup.png') });
    await page.locator('.maplibregl-popup-close-button').click();
  }

  // 4. The search box finds 龙水镇, goes there and shows its coverage.
  await page.fill('#q', '龙水镇');
  await page.press('#q', 'Enter');
  await page.waitForFunction(() => (document.querySelector('#area-title')?.textContent || '').includes('龙水镇'), null, { timeout: 20_000 });
  check(true, 'the search box finds 龙水镇');
  await page.waitForSelector('#area-body .cov-row', { timeout: 30_000 });
  const rows = await page.locator('#area-body .cov-row').count();
  check(rows > 0, `龙水镇 shows figures for ${rows} layers`);
  const panel = await page.locator('#area-body').innerText();
  check(!panel.includes('覆盖面积') && !panel.includes('占比'), 'the area panel gives no covered area or share', panel.slice(0, 300));
  check(panel.includes('乡镇/村界与要素位置为示意，非法定界线'), 'the area panel carries the approximate-position note');
  check(await page.locator('#disclaimer').isVisible(), 'the map carries the approximate-position note');
  // The vegetable bases' 亩 as the plan states them (features wholly inside the town), from the API.
  const stated = await page.evaluate(async () => {
    const fc = await (await fetch('/areas/500111100/features?layers=vegetable_bases')).json();
    let sum = 0, n = 0;
    for (const f of fc.features) {
      const p = f.properties, a = p.attributes || {};
      const mu = [p.area_mu, p.area_mu_nominal, a.area_mu, a.area_mu_nominal].find((v) => typeof v === 'number' && v > 0);
      if (mu && !(p.share_inside < 0.999)) { sum += mu; n++; }
    }
    return { sum, n, whole: fc.features.filter((f) => /^(unit|town|village|district)-polygon|default (size|length) for the kind/.test(f.properties.geometry_method || '')).length };
  });
  const veg = await page.locator('#area-body .cov-row[data-layer="vegetable_bases"] .cov-fig').innerText();
  check(stated.n > 0 && veg.includes(`文本所述 ${stated.sum.toLocaleString('zh-CN')} 亩`), `龙水镇's vegetable bases: the plan's ${stated.sum} 亩`, veg);
  check(stated.whole === 0 || veg.includes(`涉及 ${stated.whole} 项`) || /涉及 \d+ 项/.test(veg), 'items placed on the whole unit or at a default size are only counted', veg);
  const areaFig = await page.locator('#area-body .figures').first().innerText();
  const unitArea = await page.evaluate(async () => (await (await fetch('/areas/500111100')).json()).area);
  check(areaFig.includes((unitArea.m2 / 1e6).toLocaleString('zh-CN', { maximumFractionDigits: 2 })), 'the panel gives the unit\'s one area', areaFig);
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

  // 5. English toggle: the interface switches, the area panel stays open.
  await page.click('#lang');
  const en = await page.locator('#layers').innerText();
  check(en.includes('Districts'), 'the English toggle switches the interface');
  check(await page.locator('#area').isVisible() && (await page.locator('#area-title').innerText()).includes('龙水镇'), 'switching the language keeps the area panel');
  await page.click('#lang');
  await page.waitForSelector('#area-body .cov-row', { timeout: 30_000 });

  // 5b. Export 龙水镇 as Shapefiles (GBK, Gauss-Krüger) from the panel and open them with GDAL.
  await page.selectOption('#area-body .export .ex-format', 'shp');
  await page.selectOption('#area-body .export .ex-crs', 'auto-gk');
  const href = await page.locator('#area-body .export .ex-go').getAttribute('href');
  check(/format=shp/.test(href) && /area=500111100/.test(href), 'the export link names the town and the format', href);
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.click('#area-body .export .ex-go')]);
  const zip = resolve(artifacts, 'longshui-shp.zip');
  await dl.saveAs(zip);
  check((dl.suggestedFilename() || '').includes('龙水镇'), `the download is named after the town (${dl.suggestedFilename()})`);
  let ogr = '';
  try {
    ogr = execFileSync(process.env.OGRINFO || 'ogrinfo', ['-ro', '-so', '-al', `/vsizip/${zip}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  } catch (e) {
    ogr = `ogrinfo failed: ${e.message}`;
  }
  // Per layer (Shapefiles split by geometry kind: projects_point, projects_polygon, …) as GDAL reads them.
  const read = {};
  for (const m of ogr.matchAll(/Layer name: (\S+)[\s\S]*?Feature Count: (\d+)/g)) {
    const layer = m[1].replace(/_(point|multipoint|line|polygon)$/, '');
    read[layer] = (read[layer] || 0) + +m[2];
  }
  const apiCounts = await page.evaluate(async () => (await (await fetch('/areas/500111100/features')).json()).counts);
  const plan = Object.entries(apiCounts).filter(([, n]) => n > 0);
  check(plan.length > 0 && plan.every(([l, n]) => read[l] === n), `GDAL reads every plan layer of 龙水镇 with the API's feature counts (${plan.map(([l, n]) => `${l} ${read[l]}/${n}`).join(', ')})`, ogr.slice(0, 300));
  check(/Gauss|Transverse_Mercator|CGCS2000/i.test(ogr), 'the Shapefiles are in a CGCS2000 Gauss-Krüger CRS', ogr.slice(0, 400));

  // 5c. 火炉镇: the projects row opens the list of its six projects.
  await page.fill('#q', '火炉镇');
  await page.press('#q', 'Enter');
  await page.waitForFunction(() => (document.querySelector('#area-title')?.textContent || '').includes('火炉镇'), null, { timeout: 20_000 });
  await page.waitForSelector('#area-body .cov-row[data-layer="projects"]', { timeout: 30_000 });
  await page.click('#area-body .cov-row[data-layer="projects"] .cov-head');
  await page.waitForSelector('#area-body .cov-row[data-layer="projects"] table.list tbody tr');
  const listed6 = await page.locator('#area-body .cov-row[data-layer="projects"] table.list tbody tr td:first-child').allInnerTexts();
  const api6 = await page.evaluate(async () => (await (await fetch('/areas/500156104/features?layers=projects')).json()).features.map((f) => f.properties.name));
  check(listed6.length === 6 && api6.length === 6 && [...listed6].sort().join('|') === [...api6].sort().join('|'), `火炉镇's list names its six projects (${listed6.join('、')})`, JSON.stringify(api6));
  // Sorting by 亩 puts the largest last (ascending, empty cells at the end).
  await page.click('#area-body .cov-row[data-layer="projects"] table.list th[data-key="mu"]');
  const mus = (await page.locator('#area-body .cov-row[data-layer="projects"] table.list tbody tr td:nth-child(3)').allInnerTexts())
    .filter((x) => x.trim()).map((x) => +x.replace(/,/g, ''));
  check(mus.length > 1 && mus.every((v, i) => i === 0 || mus[i - 1] <= v), `the list sorts by 亩 (${mus.join(', ')})`);
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#area-body .cov-row[data-layer="projects"] .csv')]);
  const csvPath = resolve(artifacts, 'huolu-projects.csv');
  await csv.saveAs(csvPath);
  const csvText = (await import('node:fs')).readFileSync(csvPath, 'utf8');
  check(api6.every((n) => csvText.includes(n)), 'the CSV download lists the six projects');
  // The same list as a spreadsheet, read back by GDAL's XLSX driver.
  const [xlsx] = await Promise.all([page.waitForEvent('download'), page.click('#area-body .cov-row[data-layer="projects"] .xlsx')]);
  const xlsxPath = resolve(artifacts, 'huolu-projects.xlsx');
  await xlsx.saveAs(xlsxPath);
  let xlsxText = '';
  try {
    xlsxText = execFileSync(process.env.OGRINFO || 'ogrinfo', ['-ro', '-al', '-oo', 'HEADERS=FORCE', xlsxPath], { encoding: 'utf8' });
  } catch (e) {
    xlsxText = `ogrinfo failed: ${e.message}`;
  }
  check(/Feature Count: 6\b/.test(xlsxText) && api6.every((n) => xlsxText.includes(n)), 'the XLSX download has the six projects (read by GDAL)', xlsxText.slice(0, 300));
  await page.click('#area-body .cov-row[data-layer="projects"] .to-table');
  await page.waitForSelector('#table table.list tbody tr');
  check(await page.locator('#table table.list tbody tr').count() === 6, 'the attribute table shows the six projects of 火炉镇');
  await page.screenshot({ path: join(artifacts, 'map-list.png') });
  await page.click('#table .tbl-close');

  // 5d. Click 万峰林海's position (looked up in the API) and pick it from the chooser.
  const wf = await page.evaluate(async () => {
    const fc = await (await fetch(`/collections/projects/items?filter=${encodeURIComponent("name LIKE '%万峰林海%'")}`)).json();
    const f = fc.features.find((x) => x.geometry);
    if (!f) return null;
    const g = f.geometry;
    const ring = g.type === 'MultiPolygon' ? g.coordinates[0][0] : g.type === 'Polygon' ? g.coordinates[0] : null;
    const c = ring ? ring.slice(1).reduce((a, p) => [a[0] + p[0] / (ring.length - 1), a[1] + p[1] / (ring.length - 1)], [0, 0]) : g.coordinates;
    const y = window.yzt;
    y.setVisible('projects', true);
    if (y.state.popup) y.state.popup.remove();
    y.map.jumpTo({ center: c, zoom: 13 });
    await new Promise((r) => { y.map.once('idle', r); y.map.triggerRepaint(); });
    const p = y.map.project(c), r = y.map.getCanvas().getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y, id: String(f.id) };
  });
  check(!!wf, '万峰林海 is found through the API');
  if (wf) {
    await page.mouse.click(wf.x, wf.y);
    await page.waitForSelector('.popup.chooser', { timeout: 20_000 });
    const items = await page.locator('.popup.chooser > ul > li').allInnerTexts();
    check(items.length > 1 && items[0].includes('万峰林海'), 'the chooser lists 万峰林海 first (smallest first)', items.join(' | '));
    const scopes = await page.locator('.popup.chooser summary').allInnerTexts();
    check(scopes.every((s) => /全(镇|村|区)性项目/.test(s)), `unit-wide items are grouped (${scopes.join('、')})`);
    await page.screenshot({ path: join(artifacts, 'map-chooser.png') });
    await page.locator(`.popup.chooser li[data-id="${wf.id}"]`).first().click();
    await page.waitForSelector(`.maplibregl-popup .popup[data-id="${wf.id}"] h3`, { timeout: 20_000 });
    check((await page.locator('.maplibregl-popup .popup[data-id] h3').innerText()).includes('万峰林海'), 'picking 万峰林海 opens it');
    await page.locator('.maplibregl-popup-close-button').click();
  }

  // 5e. Draw a polygon: the figures equal POST /analysis/coverage for the same polygon.
  await page.evaluate(async () => {
    const y = window.yzt;
    y.map.jumpTo({ center: [105.76, 29.57], zoom: 12 });
    await new Promise((r) => { y.map.once('idle', r); y.map.triggerRepaint(); });
  });
  const mb = await page.locator('#map').boundingBox();
  const cx = mb.x + mb.width / 2, cy = mb.y + mb.height / 2;
  await page.click('#tools button[data-tool="draw"]');
  for (const [dx, dy] of [[-150, -100], [150, -100], [150, 100], [-150, 100], [-150, -100]]) {
    await page.mouse.move(cx + dx, cy + dy);
    await page.mouse.down();
    await page.mouse.up();
    await page.waitForTimeout(150);
  }
  await page.waitForSelector('#tool-result .drawn-mu', { timeout: 30_000 });
  const drawn = await page.evaluate(async () => {
    const g = window.yzt.state.draw.getSnapshot().find((f) => f.geometry.type === 'Polygon').geometry;
    const api = await (await fetch('/analysis/coverage', { method: 'POST', headers: { 'Content-Type': 'application/geo+json' }, body: JSON.stringify(g) })).json();
    const shown = [...document.querySelectorAll('#tool-result .cov-mu')].map((td) => ({ layer: td.closest('tr').dataset.layer, mu: +td.dataset.mu, text: td.textContent }));
    return { api, shown, drawnMu: +document.querySelector('#tool-result .drawn-mu').dataset.mu };
  });
  check(Math.abs(drawn.drawnMu - drawn.api.area.mu) < 1e-6, `the drawn area is the API's (${drawn.drawnMu} 亩)`);
  const pairs = drawn.shown.map((s) => [s, drawn.api.layers.find((l) => l.layer === s.layer)]);
  check(pairs.length > 0 && pairs.every(([s, a]) => a && Math.abs(s.mu - a.covered_area.mu) < 1e-6 && s.text === a.covered_area.mu.toLocaleString('zh-CN', { maximumFractionDigits: 1 })),
    `each layer's figure equals POST /analysis/coverage (${pairs.map(([s]) => `${s.layer} ${s.text}`).join(', ')})`);
  await page.screenshot({ path: join(artifacts, 'map-draw.png') });
  // Measure a distance along the same top edge (300 px).
  await page.click('#tools button[data-tool="measure-line"]');
  for (const [dx, dy] of [[-150, -100], [150, -100]]) {
    await page.mouse.move(cx + dx, cy + dy); await page.mouse.down(); await page.mouse.up(); await page.waitForTimeout(150);
  }
  await page.mouse.move(cx + 150, cy - 100); await page.mouse.down(); await page.mouse.up();
  await page.waitForSelector('#tool-result .measure', { timeout: 20_000 });
  const measured = await page.evaluate(() => {
    const g = window.yzt.state.draw.getSnapshot().find((f) => f.geometry.type === 'LineString').geometry;
    return { shown: +document.querySelector('#tool-result .measure').textContent.replace(/,/g, ''), coords: g.coordinates };
  });
  // Independently: the great-circle length along the parallel of a horizontal line (haversine).
  const [[x1, y1], [x2, y2]] = [measured.coords[0], measured.coords[measured.coords.length - 1]];
  const rad = Math.PI / 180, h = Math.sin((y2 - y1) * rad / 2) ** 2 + Math.cos(y1 * rad) * Math.cos(y2 * rad) * Math.sin((x2 - x1) * rad / 2) ** 2;
  const expect = 2 * 6371008.8 * Math.asin(Math.sqrt(h));
  check(Math.abs(measured.shown - expect) <= 1, `the measured distance is the line's length (${measured.shown} m ≈ ${expect.toFixed(0)} m)`);
  await page.click('#tools .clear');

  // 5f. Print: a PNG with the map, a legend in the layers' colours, title, scale and note.
  const [png] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.click('#print')]);
  const pngPath = resolve(artifacts, 'print.png');
  await png.saveAs(pngPath);
  const pngData = (await import('node:fs')).readFileSync(pngPath).toString('base64');
  const printed = await page.evaluate(async (b64) => {
    const img = new Image();
    await new Promise((r, e) => { img.onload = r; img.onerror = e; img.src = `data:image/png;base64,${b64}`; });
    const c = document.createElement('canvas');
    c.width = img.width; c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const mapW = window.yzt.map.getContainer().clientWidth;
    // The legend column (right of the map): which layer colours appear in it, exactly.
    const data = g.getImageData(mapW + 1, 0, img.width - mapW - 1, img.height).data;
    const found = new Set();
    for (let i = 0; i < data.length; i += 4) found.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
    const hex = (h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)).join(',');
    return { w: img.width, h: img.height, mapW, projects: found.has(hex('#1f6fd1')), vegetable: found.has(hex('#2e9d3a')) };
  }, pngData);
  check(printed.w > printed.mapW && printed.projects && printed.vegetable, `the printed PNG (${printed.w}×${printed.h}) has a legend in the layers' colours`, JSON.stringify(printed));

  // 5g. Filters and opacity: a plan filter narrows what the map draws and goes into the URL.
  const planId = await page.evaluate(() => document.querySelector('#filter-plan option[value]:not([value=""])')?.value);
  check(!!planId, 'the plan filter lists the plans');
  if (planId) {
    await page.selectOption('#filter-plan', planId);
    const f = await page.evaluate(() => ({ hash: location.hash, filter: JSON.stringify(window.yzt.map.getFilter('projects:fill')) }));
    check(f.hash.includes(`plan=${planId}`) && f.filter.includes(planId), 'the plan filter applies to the map and the URL', JSON.stringify(f));
    await page.selectOption('#filter-plan', '');
  }
  await page.locator('#layers .theme[data-theme="theme_plan"] .opacity').fill('40');
  const op = await page.evaluate(() => JSON.stringify(window.yzt.map.getPaintProperty('projects:point', 'circle-opacity')));
  check(op.includes('0.4'), `the opacity slider fades its group (${op})`);

  // 5h. The API's HTML pages: a small map of what they show, a favicon.
  const html = await context.newPage();
  html.on('pageerror', (err) => problems.push(`page error (HTML page): ${err.message}`));
  for (const path of ['/areas/500111100?f=html', `/collections/projects/items?f=html&limit=20`]) {
    await html.goto(`${base}${path}`, { waitUntil: 'load' });
    const drawn = await html.waitForFunction(() => window.minimap && window.minimap.loaded() && window.minimap.getSource('shapes'), null, { timeout: 30_000 }).then(() => true).catch(() => false);
    check(drawn, `${path} shows a small map`);
  }
  await html.screenshot({ path: join(artifacts, 'html-items.png') });
  await html.close();

  // 6. A phone (390×844): the districts fit on load, nothing is off-screen, popups are bottom sheets.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'zh-CN', deviceScaleFactor: 1, isMobile: true, hasTouch: true });
  const mobile = await phone.newPage();
  mobile.on('pageerror', (err) => problems.push(`page error (phone): ${err.message}`));
  await mobile.goto(`${base}/`, { waitUntil: 'load' });
  await mobile.waitForFunction(() => window.yzt && window.yzt.map);
  await mobile.evaluate(() => window.yzt.ready);
  await mobile.evaluate(() => new Promise((r) => { window.yzt.map.once('idle', r); window.yzt.map.triggerRepaint(); }));
  const pv = await mobile.evaluate(() => { const b = window.yzt.map.getBounds(); return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; });
  if (districts && districts.bbox) {
    const [w, s, e, n] = districts.bbox;
    check(pv[0] <= w + 0.05 && pv[2] >= e - 0.05 && pv[1] <= s + 0.05 && pv[3] >= n - 0.05, 'on a phone all districts fit on load', JSON.stringify(pv));
  }
  const offscreen = () => mobile.evaluate(() => {
    const W = innerWidth, H = innerHeight, out = [];
    for (const el of document.querySelectorAll('body *')) {
      const cs = getComputedStyle(el);
      if (cs.display === 'none' || cs.visibility === 'hidden' || el.closest('[hidden]')) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      // What scrolls inside a box may lie below its fold: the box itself must be on screen.
      let p = el.parentElement, scrolled = false;
      while (p && p !== document.body) { const s = getComputedStyle(p); if (/(auto|scroll)/.test(s.overflowY + s.overflowX)) { scrolled = true; break; } p = p.parentElement; }
      if (scrolled) continue;
      if (r.left < -1 || r.top < -1 || r.right > W + 1 || r.bottom > H + 1) out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${String(el.className).split(' ')[0]} [${Math.round(r.left)},${Math.round(r.top)},${Math.round(r.right)},${Math.round(r.bottom)}]`);
    }
    return out;
  });
  let off = await offscreen();
  check(off.length === 0, 'at 390×844 no element is off-screen', off.slice(0, 8).join(' | '));
  const attribOpen = await mobile.locator('.maplibregl-ctrl-attrib.maplibregl-compact-show').count();
  check(attribOpen === 0, 'the attribution starts folded on a phone');
  await mobile.screenshot({ path: join(artifacts, 'phone.png') });
  await mobile.fill('#q', '龙水镇');
  await mobile.press('#q', 'Enter');
  await mobile.waitForSelector('#area-body .cov-row', { timeout: 30_000 });
  const town = await mobile.evaluate(async () => {
    const y = window.yzt;
    await new Promise((r) => (y.map.isMoving() ? y.map.once('moveend', r) : r()));
    const c = y.map.getCenter();
    const p = y.map.project(c), r = y.map.getCanvas().getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y };
  });
  await mobile.mouse.click(town.x, town.y);
  await mobile.waitForSelector('.maplibregl-popup .popup', { timeout: 20_000 });
  await mobile.waitForTimeout(300);
  off = await offscreen();
  check(off.length === 0, 'at 390×844 an open popup (bottom sheet) is on screen', off.slice(0, 8).join(' | '));
  const sheet = await mobile.locator('.maplibregl-popup').boundingBox();
  check(sheet && sheet.x <= 1 && Math.abs(sheet.y + sheet.height - 844) <= 2, 'the popup is a bottom sheet', JSON.stringify(sheet));
  await mobile.screenshot({ path: join(artifacts, 'phone-popup.png') });
  await phone.close();

  // 7. Nothing went wrong along the way.
  check(problems.length === 0, 'no console errors, page errors or failed requests', problems.slice(0, 10).join(' | '));
} catch (e) {
  check(false, `the test ran to the end`, e && e.stack ? e.stack : String(e));
  if (problems.length) console.log(problems.slice(0, 20).join('\n'));
} finally {
  await browser.close().catch(() => {});
  clearTimeout(deadline);
}
console.log(`browser: ${passed} passed, ${failed} failed`);
console.log(`screenshots: ${join(artifacts, 'map.png')}, map-popup.png, map-search.png, map-list.png, map-chooser.png, map-draw.png, print.png, phone.png, phone-popup.png`);
process.exit(failed ? 1 : 0);
