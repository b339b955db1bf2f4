// Browser test of the map's editing, monitoring and the HTML pages (issues 11 item 12, 14 item 8,
// 16's leftovers) in headless Chromium (Debian's /usr/bin/chromium, playwright-core from npm).
// Usage:
//
//   node tests/browser/work.test.mjs URL EDITOR_TOKEN [URL_WITH_TIANDITU_KEY]
//
// EDITOR_TOKEN is the token `yizhangtu user add … --role editor --districts 500111` printed (大足).
// Checks, each through the page as a planner uses it and read back over HTTP:
// 1. sign in with the token (the box names the user and 大足区); edit a property of a 大足 feature
//    and a vertex of its polygon (terra-draw), both read back from the API with the new version;
//    an edit of a 武隆 feature shows the 403 in Chinese naming 武隆区 and 大足区, nothing changed;
//    the feature's history lists the two versions with who and why; comparing the two times around
//    the edits highlights exactly the features /changes lists.
// 2. 武隆区's monitoring view: a warning as /monitoring gives it, the towns coloured by their share
//    of projects on time, each indicator's chart points equal to /indicators' baseline and target
//    and the observations' values.
// 3. The status filter; the district panel's 全区性项目; the items page (Chinese headers, the name
//    first); one pivot table of coverage by village; an f=html error as an HTML page; the 天地图
//    basemap on by default when the server has a key (tiles intercepted), the offline outlines when not.
// Screenshots go to test-artifacts/ (edit-*.png, monitor.png, …). Exits non-zero when a check fails.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = (process.argv[2] || 'http://127.0.0.1:8080').replace(/\/$/, '');
const token = process.argv[3] || process.env.YIZHANGTU_EDITOR_TOKEN || '';
const keyed = (process.argv[4] || '').replace(/\/$/, '');
const artifacts = process.env.YIZHANGTU_ARTIFACTS || 'test-artifacts';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(artifacts, { recursive: true });

let passed = 0;
let failed = 0;
function check(ok, what, detail = '') {
  if (ok) { passed++; console.log(`ok - ${what}`); } else { failed++; console.log(`not ok - ${what}${detail ? `: ${detail}` : ''}`); }
}
if (!token) {
  check(false, 'an editor token is given (second argument)');
  process.exit(1);
}

const deadline = setTimeout(() => { console.log('not ok - the whole test took longer than 300 s'); process.exit(2); }, 300_000);
const browser = await chromium.launch({
  executablePath, headless: true, chromiumSandbox: false,
  args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist', '--enable-webgl',
    '--disable-background-networking', '--disable-quic', '--disable-component-update', '--disable-sync', '--disable-default-apps',
    '--no-first-run', '--no-default-browser-check', '--disable-dev-shm-usage', '--lang=zh-CN'],
});

const problems = [];
// Answers the test provokes on purpose (the 武隆 edit's 403) are not problems.
const expected = [];
function watch(page, label) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (expected.some((e) => text.includes(`status of ${e.status}`))) return;
    problems.push(`${label} console error: ${text} (${msg.location().url || ''})`);
  });
  page.on('pageerror', (err) => problems.push(`${label} page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    const why = req.failure()?.errorText || '';
    const u = new URL(req.url());
    // Tiles MapLibre no longer needs, and a page's styles when the test moves on to the next page.
    if (why === 'net::ERR_ABORTED' && (u.protocol === 'blob:' || u.pathname.startsWith('/tiles/') || u.pathname.startsWith('/vendor/'))) return;
    problems.push(`${label} request failed: ${req.url()} ${why}`);
  });
  page.on('response', (res) => {
    if (res.status() < 400) return;
    const u = new URL(res.url());
    if (expected.some((e) => e.status === res.status() && u.pathname === e.path)) return;
    problems.push(`${label} HTTP ${res.status()}: ${res.url()}`);
  });
}

try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'zh-CN', deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  watch(page, '');
  const idle = () => page.evaluate(() => new Promise((resolve, reject) => {
    const m = window.yzt.map;
    const timer = setTimeout(() => reject(new Error('map never became idle')), 45_000);
    m.once('idle', () => { clearTimeout(timer); resolve(); });
    m.triggerRepaint();
  }));
  const api = (path, opts) => page.evaluate(async ([p, o]) => {
    const r = await fetch(p, { headers: { Accept: 'application/json' }, ...(o || {}) });
    return { status: r.status, etag: r.headers.get('ETag'), body: await r.json().catch(() => null) };
  }, [path, opts]);

  await page.goto(`${base}/`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.yzt && window.yzt.map && window.yzt.edit);
  await page.evaluate(() => window.yzt.ready);
  await idle();
  check(await page.locator('#basemap').inputValue() === 'none', 'without a server key the basemap is the offline outline style');

  // ------------------------------------------------------------------ 1. sign in, edit, history, compare
  check(await page.locator('#signin').isVisible(), 'the sign-in box is shown');
  await page.fill('#token', 'yzt_nosuchid_nosecret');
  expected.push({ status: 401, path: '/me' });
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#signin-err:not([hidden])');
  check((await page.locator('#signin-err').innerText()).includes('令牌无效'), 'a wrong token is refused in Chinese');
  await page.fill('#token', token);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#whoami:not([hidden])');
  const who = await page.locator('#whoami').innerText();
  check(who.includes('编辑') && who.includes('大足区') && who.includes('500111'), `signed in as a 大足 editor (${who.replace(/\s+/g, ' ')})`);
  check(!(await page.evaluate(() => sessionStorage.getItem('yzt.token') === null)), 'the token is kept for this tab only (sessionStorage)');

  // A polygon of a plan layer drawn inside 大足 (not a whole unit), small enough to edit by hand.
  const pick = (district) => page.evaluate(async (d) => {
    for (const layer of ['vegetable_bases', 'agricultural_bases', 'industrial_parks', 'projects', 'land_consolidation', 'tourism_sites']) {
      const fc = await (await fetch(`/collections/${layer}/items?limit=2000`)).json();
      // One ring: a Polygon, or a MultiPolygon of one part (as the seeded blobs are).
      const ring = (g) => (g.type === 'Polygon' && g.coordinates.length === 1 ? g.coordinates[0]
        : g.type === 'MultiPolygon' && g.coordinates.length === 1 && g.coordinates[0].length === 1 ? g.coordinates[0][0] : null);
      const f = fc.features.find((x) => x.geometry && ring(x.geometry) && String(x.properties.admin_code || '').startsWith(d)
        && /^polygon-in-unit/.test(x.properties.geometry_method || '') && ring(x.geometry).length >= 5 && ring(x.geometry).length < 400);
      if (f) return { layer, id: String(f.id), name: f.properties.name, ring: ring(f.geometry) };
    }
    return null;
  }, district);
  const dazu = await pick('500111');
  check(!!dazu, `a 大足 polygon to edit (${dazu && `${dazu.layer}/${dazu.id} ${dazu.name}`})`);
  const before = await api(`/collections/${dazu.layer}/items/${encodeURIComponent(dazu.id)}`);
  const t0 = await page.evaluate(() => Date.now());
  // Show the feature and open its popup, as a click or a list would.
  await page.evaluate(async (f) => {
    const y = window.yzt;
    y.setVisible(f.layer, true);
    const xs = f.ring.map((c) => c[0]), ys = f.ring.map((c) => c[1]);
    y.map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { padding: 200, animate: false });
    await new Promise((r) => { y.map.once('idle', r); y.map.triggerRepaint(); });
    await y.openFeature(f.layer, f.id, null);
  }, dazu);
  await page.waitForSelector('.maplibregl-popup .edit-bar .edit-props');
  await page.click('.maplibregl-popup .edit-props');
  await page.waitForSelector('.maplibregl-popup form.edit-form input[name="name"]');
  const newName = `${dazu.name}（已核实）`;
  await page.fill('.maplibregl-popup form.edit-form input[name="name"]', newName);
  await page.fill('.maplibregl-popup form.edit-form input[name="__reason"]', '浏览器测试：核实名称');
  await page.screenshot({ path: join(artifacts, 'edit-properties.png') });
  await page.click('.maplibregl-popup form.edit-form button.save');
  await page.waitForSelector('.maplibregl-popup .edit-ok');
  const after1 = await api(`/collections/${dazu.layer}/items/${encodeURIComponent(dazu.id)}`);
  const v0 = Number(/(\d+)/.exec(before.etag || '')?.[1]);
  const v1 = Number(/(\d+)/.exec(after1.etag || '')?.[1]);
  check(after1.body.properties.name === newName && v1 === v0 + 1, `the property edit is read back over HTTP (“${after1.body.properties.name}”, version ${v0} → ${v1})`);
  check(JSON.stringify(after1.body.geometry) === JSON.stringify(before.body.geometry), 'the property edit left the geometry as it was');

  // Move one vertex with the mouse (terra-draw's select mode).
  await page.click('.maplibregl-popup .edit-geom');
  await page.waitForSelector('#tool-result .geom-edit');
  await idle();
  const vertex = await page.evaluate(() => {
    const g = window.yzt.edit.geometryEdit().geometry;
    const ring = g.type === 'MultiPolygon' ? g.coordinates[0][0] : g.coordinates[0];
    // The vertex farthest to the east: nothing else of the shape lies under the pointer there.
    let k = 0;
    for (let i = 0; i < ring.length - 1; i++) if (ring[i][0] > ring[k][0]) k = i;
    const p = window.yzt.map.project(ring[k]), r = window.yzt.map.getCanvas().getBoundingClientRect();
    return { k, at: ring[k], x: r.left + p.x, y: r.top + p.y, n: ring.length };
  });
  await page.mouse.move(vertex.x, vertex.y);
  await page.mouse.down();
  for (let s = 1; s <= 6; s++) { await page.mouse.move(vertex.x + 4 * s, vertex.y + 2 * s); await page.waitForTimeout(30); }
  await page.mouse.up();
  await page.waitForTimeout(200);
  const ringOf = (g) => (g.type === 'MultiPolygon' ? g.coordinates[0][0] : g.coordinates[0]);
  const moved = await page.evaluate((k) => { const g = window.yzt.edit.geometryEdit().geometry; return (g.type === 'MultiPolygon' ? g.coordinates[0][0] : g.coordinates[0])[k]; }, vertex.k);
  check(moved && (Math.abs(moved[0] - vertex.at[0]) > 1e-6 || Math.abs(moved[1] - vertex.at[1]) > 1e-6), `the vertex was dragged (${JSON.stringify(vertex.at)} → ${JSON.stringify(moved)})`);
  await page.fill('#tool-result .geom-reason', '浏览器测试：调整界址点');
  await page.screenshot({ path: join(artifacts, 'edit-geometry.png') });
  await page.click('#tool-result .geom-save');
  await page.waitForSelector('#tool-result .edit-ok');
  const after2 = await api(`/collections/${dazu.layer}/items/${encodeURIComponent(dazu.id)}`);
  const v2 = Number(/(\d+)/.exec(after2.etag || '')?.[1]);
  const ring2 = ringOf(after2.body.geometry);
  const same = (a, b) => Math.abs(a[0] - b[0]) < 1e-8 && Math.abs(a[1] - b[1]) < 1e-8;
  const orig = ringOf(before.body.geometry);
  const changedIdx = orig.map((c, i) => (ring2[i] && same(c, ring2[i]) ? -1 : i)).filter((i) => i >= 0);
  check(v2 === v1 + 1 && ring2.length === orig.length && same(ring2[vertex.k], moved), `the moved vertex is read back over HTTP (version ${v2}, vertex ${vertex.k} at ${JSON.stringify(ring2[vertex.k])})`);
  check(changedIdx.every((i) => i === vertex.k || (vertex.k === 0 && i === orig.length - 1)), `only that vertex changed (${changedIdx.join(',')})`);
  check(after2.body.properties.name === newName, 'the geometry edit kept the edited name');

  // A new point drawn in 大足 (terra-draw's point mode), named and saved: POST, read back.
  await page.selectOption('#new-layer', 'projects');
  await page.selectOption('#new-kind', 'point');
  await page.click('#new-feature');
  await page.waitForSelector('#tool-result p.muted');
  const spot = await page.evaluate((f) => {
    const xs = f.ring.map((c) => c[0]), ys = f.ring.map((c) => c[1]);
    const c = [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2];
    const p = window.yzt.map.project(c), r = window.yzt.map.getCanvas().getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y };
  }, dazu);
  await page.mouse.click(spot.x, spot.y);
  await page.waitForSelector('#tool-result form.new-form');
  const clicked = await page.evaluate(() => window.yzt.state.draw.getSnapshot().find((f) => f.geometry.type === 'Point').geometry.coordinates);
  await page.fill('#tool-result form.new-form [name="name"]', '浏览器测试新建项目');
  await page.fill('#tool-result form.new-form [name="reason"]', '浏览器测试：新建');
  await page.click('#tool-result form.new-form button[type=submit]');
  await page.waitForSelector('#tool-result .edit-ok');
  const createdText = await page.locator('#tool-result .edit-ok').innerText();
  const newId = (/已新建 (\S+)/.exec(createdText) || [])[1];
  const created = newId ? await api(`/collections/projects/items/${encodeURIComponent(newId)}`) : { status: 0 };
  check(created.status === 200 && created.body.properties.name === '浏览器测试新建项目' && created.body.geometry.type === 'Point'
    && Math.abs(created.body.geometry.coordinates[0] - clicked[0]) < 1e-8 && Math.abs(created.body.geometry.coordinates[1] - clicked[1]) < 1e-8,
  `a point drawn on the map is created and read back (${newId} at ${JSON.stringify(created.body && created.body.geometry && created.body.geometry.coordinates)})`, createdText);
  const newHist = newId ? await api(`/collections/projects/items/${encodeURIComponent(newId)}/history`) : { body: null };
  check(newHist.body && newHist.body.versions.length === 1 && newHist.body.versions[0].user === 'dazu' && newHist.body.versions[0].reason === '浏览器测试：新建', 'its history says who created it and why');
  await page.screenshot({ path: join(artifacts, 'edit-new.png') });
  if (await page.locator('.maplibregl-popup-close-button').count()) await page.locator('.maplibregl-popup-close-button').click();

  // An edit in 武隆: refused, in Chinese, naming both districts; nothing changed.
  const wulong = await pick('500156');
  check(!!wulong, `a 武隆 feature to try (${wulong && `${wulong.layer}/${wulong.id}`})`);
  const wBefore = await api(`/collections/${wulong.layer}/items/${encodeURIComponent(wulong.id)}`);
  expected.push({ status: 403, path: `/collections/${wulong.layer}/items/${encodeURIComponent(wulong.id)}` });
  await page.evaluate((f) => window.yzt.openFeature(f.layer, f.id, null, true), wulong);
  await page.waitForSelector(`.maplibregl-popup .popup[data-id="${wulong.id}"] .edit-props`);
  await page.click('.maplibregl-popup .edit-props');
  await page.waitForSelector('.maplibregl-popup form.edit-form input[name="name"]');
  await page.fill('.maplibregl-popup form.edit-form input[name="name"]', `${wulong.name}（越权）`);
  await page.click('.maplibregl-popup form.edit-form button.save');
  await page.waitForSelector('.maplibregl-popup .edit-err');
  const refusal = await page.locator('.maplibregl-popup .edit-err').innerText();
  check(refusal.includes('无权修改') && refusal.includes('武隆区') && refusal.includes('大足区'), `the 403 is shown in Chinese naming the districts (“${refusal}”)`);
  await page.screenshot({ path: join(artifacts, 'edit-403.png') });
  const wAfter = await api(`/collections/${wulong.layer}/items/${encodeURIComponent(wulong.id)}`);
  check(wAfter.body.properties.name === wulong.name && wAfter.etag === wBefore.etag, 'the 武隆 feature is unchanged');

  // History: the popup lists the versions the API has, newest first, with who and why.
  await page.evaluate((f) => window.yzt.openFeature(f.layer, f.id, null, true), dazu);
  await page.waitForSelector(`.maplibregl-popup .popup[data-id="${dazu.id}"] .history`);
  await page.click('.maplibregl-popup .history');
  await page.waitForSelector('.maplibregl-popup .history-list li');
  const hist = await api(`/collections/${dazu.layer}/items/${encodeURIComponent(dazu.id)}/history`);
  const shown = await page.locator('.maplibregl-popup .history-list li').allInnerTexts();
  check(hist.status === 200 && shown.length === hist.body.versions.length && shown[0].includes(`v${v2}`) && shown[0].includes('dazu') && shown[0].includes('调整界址点') && shown[1].includes('核实名称'),
    `the history shows ${shown.length} versions, newest first, with who and why`, shown.slice(0, 3).join(' | '));
  await page.screenshot({ path: join(artifacts, 'edit-history.png') });
  await page.locator('.maplibregl-popup-close-button').click();

  // Compare: from just before the edits to now; the highlighted features are /changes' list.
  await page.click('#compare-open');
  await page.waitForSelector('#tool-result form.compare-form');
  const local = (ms) => page.evaluate((x) => { const d = new Date(x); return new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 19); }, ms);
  await page.selectOption('#tool-result [name="layer"]', dazu.layer);
  await page.fill('#tool-result [name="from"]', await local(t0 - 1000));
  await page.fill('#tool-result [name="to"]', await local(Date.now() + 2000));
  await page.click('#tool-result form.compare-form button[type=submit]');
  await page.waitForSelector('#tool-result .compare-out[data-done]');
  const listed = await page.evaluate(() => [...document.querySelectorAll('#tool-result .compare-out li')].map((li) => `${li.dataset.change}:${li.dataset.id}`).sort());
  const highlighted = await page.evaluate(async () => (await window.yzt.map.getSource('changes').getData()).features.map((f) => `${f.properties.change}:${f.properties.id}`).sort());
  const fromIso = new Date(Math.floor((t0 - 1000) / 1000) * 1000).toISOString();
  const c = await api(`/collections/${dazu.layer}/changes?from=${encodeURIComponent(fromIso)}&to=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
  const want = [...c.body.added.map((x) => `added:${x.id}`), ...c.body.changed.map((x) => `changed:${x.id}`), ...c.body.removed.map((x) => `removed:${x.id}`)].sort();
  check(listed.includes(`changed:${dazu.id}`) && JSON.stringify(listed) === JSON.stringify(want), `the comparison lists what /changes does (${listed.join(', ')})`, JSON.stringify(want));
  check(JSON.stringify(highlighted) === JSON.stringify(want), 'the changed features are highlighted on the map', JSON.stringify(highlighted));
  await idle();
  const drawnChanges = await page.evaluate(() => window.yzt.map.queryRenderedFeatures({ layers: ['changes-fill', 'changes-line', 'changes-point'] }).length);
  check(drawnChanges > 0, `the highlight is drawn (${drawnChanges})`);
  await page.screenshot({ path: join(artifacts, 'edit-compare.png') });
  await page.click('#tools .clear');

  // ------------------------------------------------------------------ 2. monitoring, 武隆区
  await page.fill('#q', '武隆区');
  await page.press('#q', 'Enter');
  await page.waitForFunction(() => (document.querySelector('#area-title')?.textContent || '').includes('武隆区'));
  await page.click('#monitor-open');
  await page.waitForSelector('#monitor .monitor-body .figures');
  await page.waitForFunction(() => window.yzt.monitor.data && window.yzt.monitor.charts().length === window.yzt.monitor.data.indicators.length);
  const mon = await api('/monitoring/500156');
  const inds = await api('/indicators?area=500156');
  const warn = await page.locator('#monitor .warnings li').first().innerText().catch(() => '');
  const w0 = mon.body.warnings[0];
  check(mon.body.warnings.length > 0 && warn.includes(w0.name) && warn.includes(`逾期 ${w0.months_late} 个月`), `a warning reads as /monitoring gives it (“${warn.replace(/\s+/g, ' ')}”)`);
  check(await page.locator('#monitor .warnings li').count() === mon.body.warnings.length, `the warnings panel lists all ${mon.body.warnings.length} late projects`);
  // Towns coloured by the share of their projects on time.
  await idle();
  const colours = await page.evaluate((rows) => rows.map((r) => ({ code: r.code, want: r.projects_total ? (r.projects_total - r.late) / r.projects_total : -1,
    got: (window.yzt.map.getFeatureState({ source: 'yzt', sourceLayer: 'towns', id: r.code }) || {}).share })), mon.body.by_unit);
  check(colours.length > 0 && colours.every((c) => Math.abs(c.got - c.want) < 1e-12), `the ${colours.length} towns are coloured by their share on time`, JSON.stringify(colours.filter((c) => Math.abs(c.got - c.want) >= 1e-12).slice(0, 3)));
  const painted = await page.evaluate(() => window.yzt.map.queryRenderedFeatures({ layers: ['monitor-fill'] }).filter((f) => f.state && f.state.share >= 0).length);
  check(painted > 0, `the coloured towns are drawn (${painted})`);
  // Every chart: the planned line from the baseline (end of its year) to the target, and the observations.
  const charts = await page.evaluate(() => window.yzt.monitor.charts());
  const obsOf = async (id) => (await api(`/indicators/${encodeURIComponent(id)}/observations`)).body;
  let bad = [];
  let withObs = 0;
  for (const ind of inds.body.indicators) {
    const ch = charts.find((x) => x.id === ind.id);
    if (!ch) { bad.push(`${ind.id}: no chart`); continue; }
    const plan = ch.datasets.find((d) => d.kind === 'plan').points;
    const wantPlan = [...(ind.baseline_value != null && ind.baseline_year ? [{ x: ind.baseline_year + 1, y: ind.baseline_value }] : []), { x: ind.target_year + 1, y: ind.target_value }];
    if (JSON.stringify(plan) !== JSON.stringify(wantPlan)) bad.push(`${ind.id}: plan ${JSON.stringify(plan)} ≠ ${JSON.stringify(wantPlan)}`);
    const observed = ch.datasets.find((d) => d.kind === 'observed').points.map((p) => p.y);
    if (ind.latest_value != null) {
      withObs++;
      const o = await obsOf(ind.id);
      const list = (Array.isArray(o) ? o : o.observations || []).slice().sort((a, b) => a.date.localeCompare(b.date));
      if (JSON.stringify(observed) !== JSON.stringify(list.map((x) => x.value))) bad.push(`${ind.id}: observed ${observed} ≠ ${list.map((x) => x.value)}`);
    } else if (observed.length) bad.push(`${ind.id}: points without observations`);
  }
  check(inds.body.indicators.length > 0 && bad.length === 0, `each of the ${inds.body.indicators.length} charts has /indicators' baseline and target (${withObs} with observations)`, bad.slice(0, 4).join(' | '));
  check(withObs > 0, 'at least one chart shows observations');
  await page.locator('#monitor').screenshot({ path: join(artifacts, 'monitor-panel.png') });
  await page.screenshot({ path: join(artifacts, 'monitor.png') });
  // A town's row narrows the panel to it.
  const town = mon.body.by_unit.find((u) => u.late > 0) || mon.body.by_unit[0];
  await page.click(`#monitor .mon-units tr[data-code="${town.code}"]`);
  await page.waitForFunction((n) => (document.querySelector('#monitor-title')?.textContent || '').includes(n), town.name);
  const townLate = await page.locator('#monitor .late-n').innerText();
  check(+townLate === town.late, `the town's row opens its own view (${town.name}: ${townLate} late)`);
  await page.click('#monitor .close');

  // ------------------------------------------------------------------ 3. issue 16's leftovers
  // The district panel lists its district-wide items (no geometry) as 全区性项目.
  await page.waitForSelector('#area-body .coverage h4');
  const feats = await api('/areas/500156/features');
  const wide = feats.body.features.filter((f) => !f.geometry || /^(no-geometry|district-polygon)/.test(f.properties.geometry_method || '')).length;
  const summary = await page.locator('#area-body details.district-wide summary').innerText().catch(() => '');
  check(wide > 0 && summary.includes(`全区性项目（${wide}）`), `the district panel lists its ${wide} district-wide items (${summary})`);
  // The status filter.
  await page.selectOption('#filter-status', 'started');
  const sf = await page.evaluate(() => ({ hash: location.hash, filter: JSON.stringify(window.yzt.map.getFilter('projects:point')) }));
  check(sf.hash.includes('status=started') && sf.filter.includes('"status"') && sf.filter.includes('started'), 'the status filter applies to the map and the URL', JSON.stringify(sf));
  await page.selectOption('#filter-status', '');

  const html = await context.newPage();
  watch(html, '(HTML page)');
  // Each HTML page's minimap asks for its resource (and an area's outline) after `load`; moving
  // on before it is done would abort those requests.
  const open = async (url) => {
    const res = await html.goto(url, { waitUntil: 'load' });
    await html.waitForFunction(() => document.documentElement.dataset.minimap, null, { timeout: 30_000 });
    return res;
  };
  let r = await open(`${base}/collections/projects/items?f=html&limit=5`);
  const heads = await html.locator('table th').allInnerTexts();
  check(r.status() === 200 && heads[0].startsWith('名称') && heads.includes('编号 id'), `the items page has Chinese headers, the name first (${heads.slice(0, 5).join(' | ')})`);
  r = await open(`${base}/areas/500111100/coverage?layers=vegetable_bases,projects&by=village&f=html`);
  const cov = await api('/areas/500111100/coverage?layers=vegetable_bases,projects&by=village');
  const pivotRows = await html.locator('table.pivot tr').count();
  const tables = await html.locator('table').count();
  await html.screenshot({ path: join(artifacts, 'html-pivot.png'), fullPage: true });
  await open(`${base}/areas/500111100/coverage?layers=vegetable_bases,projects&f=html`);
  const tablesAlone = await html.locator('table').count();
  check(r.status() === 200 && pivotRows === cov.body.breakdown.length + 1 && tables === tablesAlone + 1,
    `coverage by village is one pivot table (${pivotRows - 1} villages; ${tables} tables, ${tablesAlone} without the breakdown)`);
  expected.push({ status: 400, path: '/collections/projects/items' });
  r = await open(`${base}/collections/projects/items?f=html&limit=abc`);
  const errText = await html.locator('body').innerText();
  check(r.status() === 400 && (r.headers()['content-type'] || '').startsWith('text/html') && errText.includes('400') && errText.includes('limit'), `an f=html error is an HTML page (${r.status()}, ${r.headers()['content-type']})`, errText.slice(0, 200));
  await html.screenshot({ path: join(artifacts, 'html-error.png') });
  const asJson = await api('/collections/projects/items?limit=abc');
  check(asJson.status === 400 && asJson.body && asJson.body.code, 'the same error stays JSON for an API client');
  await html.close();

  // Sign out: the edit buttons go.
  await page.click('#signout');
  await page.evaluate((f) => window.yzt.openFeature(f.layer, f.id, null, true), dazu);
  await page.waitForSelector(`.maplibregl-popup .popup[data-id="${dazu.id}"] .history`);
  check(await page.locator('.maplibregl-popup .edit-props').count() === 0 && await page.locator('#signin').isVisible(), 'signed out, the popup offers no editing');

  // 天地图 on by default when the server has a key (tiles intercepted: no internet in tests).
  if (keyed) {
    const k = await browser.newContext({ viewport: { width: 1000, height: 700 }, locale: 'zh-CN' });
    const tiles = [];
    await k.route(/tianditu\.gov\.cn/, (route) => {
      tiles.push(route.request().url());
      route.fulfill({ status: 200, contentType: 'image/png', body: Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64') });
    });
    const kp = await k.newPage();
    watch(kp, '(keyed)');
    await kp.goto(`${keyed}/`, { waitUntil: 'load' });
    await kp.waitForFunction(() => window.yzt && window.yzt.map);
    await kp.evaluate(() => window.yzt.ready);
    await kp.waitForFunction(() => window.yzt.map.getSource('basemap-0'));
    await kp.evaluate(() => new Promise((r) => { window.yzt.map.once('idle', r); window.yzt.map.triggerRepaint(); }));
    check(await kp.locator('#basemap').inputValue() === 'tdt-vec' && tiles.length > 0 && tiles.every((u) => u.includes('tk=browser-test-key')),
      `with --tianditu-key the 天地图 basemap is on by default (${tiles.length} tiles asked with the server's key)`);
    await kp.screenshot({ path: join(artifacts, 'basemap-tianditu.png') });
    await k.close();
  } else {
    check(false, 'a server with a 天地图 key is given (third argument)');
  }

  check(problems.length === 0, 'no console errors, page errors or failed requests', problems.slice(0, 10).join(' | '));
} catch (e) {
  check(false, 'the test ran to the end', e && e.stack ? e.stack : String(e));
  if (problems.length) console.log(problems.slice(0, 20).join('\n'));
} finally {
  await browser.close().catch(() => {});
  clearTimeout(deadline);
}
console.log(`browser (editing, monitoring, pages): ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
