// 一张图 yizhangtu — the monitoring view (监测评估预警, issue 14 item 8).
//
// - The map: the towns (or villages) of the chosen area coloured by the share of their projects that
//   are not late (按期率) or by the share of planned investment done, from GET /monitoring/{area}
//   (by_unit); towns without projects are left grey.
// - The panel: the area's summary, its warnings (预警: projects past their end date and not completed,
//   months late) and one chart per indicator (指标): the straight planned line from the baseline to
//   the target, and the observations, from GET /indicators?area= and /indicators/{id}/observations.
//   Clicking a town's row (or the town on the map) narrows the panel to it.
//
// Charts are Chart.js (npm `chart.js`, its UMD build at /vendor/chart.js/chart.umd.min.js, window.Chart):
// a small (≈200 kB), widely used and actively maintained canvas library whose line charts with a
// linear x axis do what is needed here; ECharts would have cost five times the weight for the same.
//
// Test hooks: window.yzt.monitor = {open(code), close(), data, charts()}.

const TEXT = {
  zh: {
    title: '规划实施监测', area: '区域', colour_by: '着色', by_ontime: '按期率（未逾期项目占比）', by_invest: '投资完成率',
    summary: '概况', projects: '项目', late: '预警', invest_planned: '计划投资', invest_done: '已完成投资', wan: '万元',
    warnings: '预警项目', months_late: '逾期 {n} 个月', ended: '计划完成', no_warnings: '没有逾期项目。',
    indicators: '指标', baseline: '基期', target: '目标', observed: '观测值', planned_line: '规划路径', no_indicators: '该区域没有量化指标。',
    towns: '下级单位', ontime: '按期率', no_projects: '无项目', legend_low: '低', legend_high: '高', loading: '加载中…', failed: '加载失败',
    status_achieved: '已达成', status_on_track: '正常', status_behind: '滞后', status_no_data: '无数据', share: '完成度',
    back: '返回上级', asof: '截至', close: '关闭',
  },
  en: {
    title: 'Plan monitoring', area: 'Area', colour_by: 'Colour by', by_ontime: 'On time (share of projects not late)', by_invest: 'Investment done',
    summary: 'Summary', projects: 'Projects', late: 'Late', invest_planned: 'Investment planned', invest_done: 'Investment done', wan: '10k yuan',
    warnings: 'Late projects', months_late: '{n} months late', ended: 'due', no_warnings: 'No project is late.',
    indicators: 'Indicators', baseline: 'Baseline', target: 'Target', observed: 'Observed', planned_line: 'Planned path', no_indicators: 'No quantitative target here.',
    towns: 'Units below', ontime: 'On time', no_projects: 'no projects', legend_low: 'low', legend_high: 'high', loading: 'Loading…', failed: 'Could not load',
    status_achieved: 'achieved', status_on_track: 'on track', status_behind: 'behind', status_no_data: 'no data', share: 'of the way',
    back: 'Up', asof: 'as of', close: 'Close',
  },
};
const STATUS_COLORS = { achieved: '#1e9e4a', on_track: '#1f6fd1', behind: '#d7263d', no_data: '#8b98a5' };
// Red → yellow → green for 0 → 0.5 → 1.
const RAMP = ['interpolate', ['linear'], ['coalesce', ['feature-state', 'share'], -1], -1, 'rgba(0,0,0,0)', -0.001, 'rgba(0,0,0,0)', 0, '#d7263d', 0.5, '#f2c12e', 1, '#2e9d3a'];

export function setupMonitoring(ctx) {
  const { map, state, esc, getJSON } = ctx;
  const tx = (k, vars) => String((TEXT[ctx.lang()] || TEXT.zh)[k] ?? TEXT.zh[k] ?? k).replace(/\{(\w+)\}/g, (_, v) => (vars && v in vars ? vars[v] : ''));
  const $ = (s) => document.querySelector(s);
  const panel = $('#monitor');
  const mon = { code: null, data: null, mode: 'ontime', charts: [], coloured: [] };
  const api = window.yzt.monitor = {
    open, close,
    get data() { return mon.data; },
    charts: () => mon.charts.map((c) => ({ id: c.canvas.dataset.indicator, datasets: c.data.datasets.map((d) => ({ label: d.label, kind: d.kind, points: d.data.map((p) => ({ x: p.x, y: p.y })) })) })),
  };

  // Towns (or villages) of the area, coloured through feature-state on the tiles' own polygons.
  const childLayer = (level) => ({ district: 'towns', town: 'villages' }[level] || null);
  map.addLayer({ id: 'monitor-fill', type: 'fill', source: 'yzt', 'source-layer': 'towns', layout: { visibility: 'none' }, paint: { 'fill-color': RAMP, 'fill-opacity': 0.55 } }, firstLabelLayer());
  map.addLayer({ id: 'monitor-fill-villages', type: 'fill', source: 'yzt', 'source-layer': 'villages', layout: { visibility: 'none' }, paint: { 'fill-color': RAMP, 'fill-opacity': 0.55 } }, firstLabelLayer());
  function firstLabelLayer() {
    return (map.getStyle().layers.find((l) => l.id.endsWith(':label')) || {}).id;
  }
  // The vector source is promoted by `id`, so feature-state is keyed by the unit's code.
  function colour(rows, level) {
    for (const c of mon.coloured) map.removeFeatureState(c);
    mon.coloured = [];
    const layer = childLayer(level);
    for (const id of ['monitor-fill', 'monitor-fill-villages']) map.setLayoutProperty(id, 'visibility', 'none');
    if (!layer) return;
    map.setLayoutProperty(layer === 'towns' ? 'monitor-fill' : 'monitor-fill-villages', 'visibility', 'visible');
    for (const r of rows) {
      const share = shareOf(r);
      const target = { source: 'yzt', sourceLayer: layer, id: r.code };
      map.setFeatureState(target, { share: share === null ? -1 : share });
      mon.coloured.push(target);
    }
  }
  function shareOf(r) {
    if (mon.mode === 'invest') return r.investment_planned_wan_yuan > 0 ? Math.min(1, r.investment_done_wan_yuan / r.investment_planned_wan_yuan) : null;
    return r.projects_total > 0 ? (r.projects_total - r.late) / r.projects_total : null;
  }

  async function open(code) {
    code = code || (state.area && state.area.code) || mon.code || '500156';
    mon.code = code;
    panel.hidden = false;
    const body = panel.querySelector('.monitor-body');
    body.innerHTML = `<p class="muted">${esc(tx('loading'))}</p>`;
    let m, inds;
    try {
      [m, inds] = await Promise.all([getJSON(`/monitoring/${encodeURIComponent(code)}`), getJSON(`/indicators?area=${encodeURIComponent(code)}`)]);
    } catch (e) {
      body.innerHTML = `<p class="err">${esc(tx('failed'))}: ${esc(e.message)}</p>`;
      return null;
    }
    if (mon.code !== code) return null;
    mon.data = { monitoring: m, indicators: inds.indicators || [] };
    render();
    colour(m.by_unit || [], m.area.level);
    const ab = await getJSON(`/areas/${encodeURIComponent(m.area.code)}`).catch(() => null);
    if (ab && ab.bbox) map.fitBounds([[ab.bbox[0], ab.bbox[1]], [ab.bbox[2], ab.bbox[3]]], { padding: 40, duration: 500 });
    await drawCharts(mon.data.indicators);
    return mon.data;
  }
  function close() {
    panel.hidden = true;
    for (const c of mon.charts) c.destroy();
    mon.charts = [];
    colour([], null);
    mon.data = null;
  }

  const money = (v) => `${ctx.num(v || 0, 0)} ${tx('wan')}`;
  function render() {
    const { monitoring: m, indicators } = mon.data;
    const s = m.summary || {};
    $('#monitor-title').textContent = `${m.area.name} · ${tx('title')}`;
    const parent = m.area.level === 'town' ? m.area.code.slice(0, 6) : m.area.level === 'village' ? m.area.code.slice(0, 9) : null;
    const units = (m.by_unit || []).slice().sort((a, b) => (shareOf(a) ?? 2) - (shareOf(b) ?? 2));
    panel.querySelector('.monitor-body').innerHTML = `
      <div class="codes">${esc(tx('asof'))} ${esc(m.asof)}${parent ? ` · <button type="button" class="mon-up" data-code="${parent}">${esc(tx('back'))}</button>` : ''}</div>
      <label class="mon-mode">${esc(tx('colour_by'))} <select><option value="ontime">${esc(tx('by_ontime'))}</option><option value="invest">${esc(tx('by_invest'))}</option></select></label>
      <div class="mon-legend"><span>${esc(tx('legend_low'))}</span><i class="ramp"></i><span>${esc(tx('legend_high'))}</span> <i class="none"></i><span>${esc(tx('no_projects'))}</span></div>
      <div class="figures"><span>${esc(tx('projects'))} <b>${s.projects_total ?? 0}</b></span><span>${esc(tx('late'))} <b class="late-n">${s.late ?? 0}</b></span>
        <span>${esc(tx('invest_done'))} <b>${esc(money(s.investment_done_wan_yuan))}</b> / ${esc(money(s.investment_planned_wan_yuan))}</span></div>
      <h4>${esc(tx('warnings'))}（${(m.warnings || []).length}）</h4>
      ${(m.warnings || []).length ? `<ul class="warnings">${m.warnings.map((w) => `<li data-layer="${esc(w.layer)}" data-id="${esc(w.id)}"><b>${esc(w.name)}</b>
        <span class="late">${esc(tx('months_late', { n: w.months_late ?? '?' }))}</span><br><span class="muted small">${esc(w.status_zh || w.status)} · ${esc(tx('ended'))} ${esc(w.end_date || '')}${(w.admin_names || []).length ? ' · ' + esc(w.admin_names.join('、')) : ''}${w.progress_percent != null ? ` · ${esc(ctx.num(w.progress_percent, 0))}%` : ''}</span></li>`).join('')}</ul>`
        : `<p class="muted">${esc(tx('no_warnings'))}</p>`}
      ${units.length ? `<h4>${esc(tx('towns'))}</h4><table class="list mon-units"><thead><tr><th>${esc(ctx.lang() === 'en' ? 'Name' : '名称')}</th><th class="num">${esc(tx('projects'))}</th><th class="num">${esc(tx('late'))}</th><th class="num">${esc(mon.mode === 'invest' ? tx('by_invest') : tx('ontime'))}</th></tr></thead>
        <tbody>${units.map((u) => { const sh = shareOf(u); return `<tr data-code="${esc(u.code)}"><td>${esc(u.name)}</td><td class="num">${u.projects_total}</td><td class="num">${u.late}</td><td class="num">${sh === null ? '—' : `${Math.round(sh * 100)}%`}</td></tr>`; }).join('')}</tbody></table>` : ''}
      <h4>${esc(tx('indicators'))}（${indicators.length}）</h4>
      ${indicators.length ? `<div class="charts">${indicators.map((i) => `<figure class="ind" data-indicator="${esc(i.id)}"><figcaption><b>${esc(i.name)}</b>
        <span class="badge" style="background:${STATUS_COLORS[i.status] || '#888'}">${esc(tx(`status_${i.status}`))}</span>
        <span class="muted small">${i.baseline_value != null ? `${esc(tx('baseline'))} ${esc(ctx.num(i.baseline_value))}（${esc(i.baseline_year ?? '')}）→ ` : ''}${esc(tx('target'))} ${esc(ctx.num(i.target_value))} ${esc(i.unit || '')}（${esc(i.target_year)}）${typeof i.share_of_way === 'number' ? ` · ${esc(tx('share'))} ${Math.round(i.share_of_way * 100)}%` : ''}</span></figcaption>
        <div class="chart-box"><canvas data-indicator="${esc(i.id)}"></canvas></div></figure>`).join('')}</div>` : `<p class="muted">${esc(tx('no_indicators'))}</p>`}`;
    const sel = panel.querySelector('.mon-mode select');
    sel.value = mon.mode;
    sel.addEventListener('change', () => { mon.mode = sel.value; render(); colour(m.by_unit || [], m.area.level); drawCharts(indicators); });
    const up = panel.querySelector('.mon-up');
    if (up) up.addEventListener('click', () => open(up.dataset.code));
    for (const tr of panel.querySelectorAll('.mon-units tbody tr')) tr.addEventListener('click', () => open(tr.dataset.code));
    for (const li of panel.querySelectorAll('.warnings li')) li.addEventListener('click', () => ctx.openFeature(li.dataset.layer, li.dataset.id, null, true));
  }

  // A year as a number on the x axis: a value "for 2025" stands at the end of 2025; a dated
  // observation at its day of the year.
  const endOf = (y) => y + 1;
  function dateX(d) {
    const t = Date.parse(`${d}T00:00:00Z`);
    if (Number.isNaN(t)) return null;
    const y = new Date(t).getUTCFullYear();
    const start = Date.UTC(y, 0, 1), next = Date.UTC(y + 1, 0, 1);
    return y + (t - start) / (next - start);
  }
  async function drawCharts(indicators) {
    for (const c of mon.charts) c.destroy();
    mon.charts = [];
    const Chart = window.Chart;
    if (!Chart) return;
    // Observations only for the indicators that have any (latest_value is set).
    const obs = new Map(await Promise.all(indicators.filter((i) => i.latest_value !== null && i.latest_value !== undefined).map(async (i) => {
      const o = await getJSON(`/indicators/${encodeURIComponent(i.id)}/observations`).catch(() => null);
      const list = Array.isArray(o) ? o : (o && (o.observations || o.items)) || [];
      return [i.id, list];
    })));
    if (!mon.data) return;
    for (const i of indicators) {
      const canvas = panel.querySelector(`canvas[data-indicator="${CSS.escape(i.id)}"]`);
      if (!canvas) continue;
      const line = [];
      if (i.baseline_value !== null && i.baseline_value !== undefined && i.baseline_year) line.push({ x: endOf(i.baseline_year), y: i.baseline_value });
      line.push({ x: endOf(i.target_year), y: i.target_value });
      const points = (obs.get(i.id) || []).map((o) => ({ x: dateX(o.date), y: o.value, date: o.date })).filter((p) => p.x !== null).sort((a, b) => a.x - b.x);
      const datasets = [
        { label: tx('planned_line'), kind: 'plan', data: line, borderColor: '#7c8896', borderDash: [5, 4], pointRadius: line.map((_, k) => (k === line.length - 1 ? 5 : 4)), pointStyle: line.map((_, k) => (k === line.length - 1 ? 'star' : 'circle')), showLine: true, fill: false },
        { label: tx('observed'), kind: 'observed', data: points, borderColor: STATUS_COLORS[i.status] || '#1f6fd1', backgroundColor: STATUS_COLORS[i.status] || '#1f6fd1', pointRadius: 4, showLine: true, fill: false },
      ];
      const xs = [...line, ...points].map((p) => p.x);
      const chart = new Chart(canvas, {
        type: 'line',
        data: { datasets },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
          scales: {
            x: { type: 'linear', min: Math.floor(Math.min(...xs) - 0.5), max: Math.ceil(Math.max(...xs) + 0.5), ticks: { stepSize: 1, callback: (v) => (Number.isInteger(v) ? String(v - 1) : '') }, title: { display: false } },
            y: { title: { display: !!i.unit, text: i.unit || '' } },
          },
          plugins: {
            legend: { display: true, labels: { boxWidth: 10, font: { size: 10 } } },
            tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${ctx.num(c.raw.y)} ${i.unit || ''}${c.raw.date ? `（${c.raw.date}）` : ''}` } },
          },
        },
      });
      mon.charts.push(chart);
    }
  }

  $('#monitor-open').addEventListener('click', () => (panel.hidden ? open() : close()));
  panel.querySelector('.close').addEventListener('click', close);
  // Clicking a unit on the map while the view is open narrows it to that unit.
  map.on('click', (e) => {
    if (panel.hidden || state.tool) return;
    const layers = ['monitor-fill', 'monitor-fill-villages'].filter((id) => map.getLayoutProperty(id, 'visibility') === 'visible');
    const hit = layers.length ? map.queryRenderedFeatures(e.point, { layers })[0] : null;
    if (hit && hit.state && typeof hit.state.share === 'number') open(String(hit.id));
  });
  ctx.languageHooks.push(() => { if (mon.data) { render(); drawCharts(mon.data.indicators); } });
}
