// 一张图 yizhangtu — the small map on the API's HTML pages (collection, items, item, area).
//
// Loaded by every HTML page (src/http/html.rs); draws what the page shows when the path is one of
// /collections/{id}, /collections/{id}/items[/{fid}] or /areas/{code}[/features], by asking the same
// resource as JSON. MapLibre GL JS comes from npm (/vendor/maplibre-gl/); without it, nothing happens.
// When it is done (its requests answered), <html data-minimap> says `drawn` or `none`.

const path = location.pathname;
const json = (url) => fetch(url, { headers: { Accept: 'application/json' } }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
const withF = (p, extra = {}) => {
  const q = new URLSearchParams(location.search);
  q.set('f', 'json');
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return `${p}?${q}`;
};

async function data() {
  let m;
  if ((m = /^\/collections\/[^/]+\/items\/[^/]+$/.exec(path))) return { shapes: await json(withF(path)) };
  if ((m = /^\/collections\/[^/]+\/items$/.exec(path))) return { shapes: await json(withF(path)) };
  if ((m = /^\/collections\/([^/]+)$/.exec(path))) return { shapes: await json(`${path}/items?limit=500&f=json`) };
  if ((m = /^\/areas\/([^/]+)(\/features|\/coverage)?$/.exec(path))) {
    const area = await json(`/areas/${m[1]}?f=json`);
    const link = area && (area.links || []).find((l) => l.rel === 'describedby');
    const outline = link ? await json(new URL(link.href).pathname + '?f=json') : null;
    const shapes = m[2] === '/features' ? await json(withF(path)) : null;
    return { outline, shapes };
  }
  return null;
}
const asCollection = (x) => (!x ? { type: 'FeatureCollection', features: [] } : x.type === 'Feature' ? { type: 'FeatureCollection', features: [x] } : { type: 'FeatureCollection', features: (x.features || []).filter((f) => f.geometry) });
function bbox(fcs) {
  let b = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c) => (typeof c[0] === 'number' ? (b = [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])]) : c.forEach(walk));
  for (const fc of fcs) for (const f of fc.features) if (f.geometry && f.geometry.coordinates) walk(f.geometry.coordinates);
  return Number.isFinite(b[0]) ? b : null;
}
function load(tag, attrs) {
  return new Promise((resolve, reject) => {
    const el = Object.assign(document.createElement(tag), attrs);
    el.onload = resolve;
    el.onerror = reject;
    document.head.appendChild(el);
  });
}

const done = (state) => { document.documentElement.dataset.minimap = state; };
const d = await data();
if (d) {
  const outline = asCollection(d.outline), shapes = asCollection(d.shapes);
  const b = bbox([outline, shapes]);
  if (b) {
    try {
      await Promise.all([load('script', { src: '/vendor/maplibre-gl/maplibre-gl.js' }), load('link', { rel: 'stylesheet', href: '/vendor/maplibre-gl/maplibre-gl.css' })]);
    } catch { /* no MapLibre: the page stays as it is */ }
    if (window.maplibregl) {
      const box = document.createElement('div');
      box.id = 'minimap';
      box.style.cssText = 'height:320px;margin:.5rem 0 1rem;border:1px solid #d5dbe1;border-radius:4px';
      const note = document.createElement('p');
      note.className = 'muted';
      note.textContent = '乡镇/村界与要素位置为示意，非法定界线 · Boundaries and positions are approximate';
      document.querySelector('h1').after(box, note);
      const map = new window.maplibregl.Map({
        container: box,
        style: { version: 8, sources: {}, layers: [{ id: 'bg', type: 'background', paint: { 'background-color': '#f3f1ec' } }] },
        bounds: [[b[0], b[1]], [b[2], b[3]]],
        fitBoundsOptions: { padding: 30, maxZoom: 14 },
        attributionControl: false,
      });
      map.on('load', () => {
        map.addSource('outline', { type: 'geojson', data: outline });
        map.addSource('shapes', { type: 'geojson', data: shapes });
        map.addLayer({ id: 'outline', type: 'line', source: 'outline', paint: { 'line-color': '#2f3b48', 'line-width': 2, 'line-dasharray': [3, 2] } });
        map.addLayer({ id: 'fill', type: 'fill', source: 'shapes', filter: ['match', ['geometry-type'], ['Polygon', 'MultiPolygon'], true, false], paint: { 'fill-color': '#1f6fd1', 'fill-opacity': 0.15 } });
        map.addLayer({ id: 'line', type: 'line', source: 'shapes', filter: ['!=', ['geometry-type'], 'Point'], paint: { 'line-color': '#1f6fd1', 'line-width': 1.5 } });
        map.addLayer({ id: 'point', type: 'circle', source: 'shapes', filter: ['match', ['geometry-type'], ['Point', 'MultiPoint'], true, false], paint: { 'circle-radius': 4, 'circle-color': '#1f6fd1', 'circle-stroke-color': '#fff', 'circle-stroke-width': 1 } });
        done('drawn');
      });
      window.minimap = map;
    }
  }
}
if (!window.minimap) done('none');
