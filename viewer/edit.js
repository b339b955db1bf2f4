// 一张图 yizhangtu — signing in, editing features, history and comparing two dates (issue 11 item 12).
//
// - Sign-in: an API token (`yizhangtu user add NAME --role editor --districts 500111` prints it) is
//   checked with GET /me and kept in sessionStorage for this tab only; every write sends it as
//   `Authorization: Bearer`.
// - Editing (OGC API – Features Part 4): a feature's popup offers 编辑属性 (a form of its plain
//   properties → PATCH with an RFC 7396 merge patch) and 编辑图形 (terra-draw's select mode: drag the
//   shape or its vertices → PATCH of the geometry); 新建要素 draws a point, line or polygon (terra-draw)
//   and POSTs it. Each write sends `If-Match` with the ETag GET gave and the reason in
//   `X-Change-Reason`; 403 (outside the editor's districts), 412 (changed by someone else) and the
//   other refusals are shown in Chinese, naming the districts.
// - 历史: GET …/items/{id}/history, each version's who/when/why; a version can be drawn on the map.
// - 对比: GET /collections/{id}/changes?from&to; added, changed and removed features are highlighted.
//
// Test hooks: window.yzt.edit = {signIn(token), signOut(), me, editProperties(layer, id),
// editGeometry(layer, id), save(), history(layer, id), compare(layer, from, to)}.

const TEXT = {
  zh: {
    account: '登录编辑', token_ph: '令牌（yzt_…）', sign_in: '登录', sign_out: '退出', signing_in: '正在登录…',
    bad_token: '令牌无效（未知、已撤销或格式不对）。', too_many: '登录失败次数过多，请稍后再试。',
    role_viewer: '查看', role_editor: '编辑', role_steward: '数据管理', role_admin: '管理员',
    scope_all: '全部区域', scope: '可编辑范围', edit_props: '编辑属性', edit_geom: '编辑图形', history: '历史版本',
    delete: '删除', save: '保存', cancel: '取消', reason: '修改原因', reason_ph: '如：按2024年实施方案调整',
    saved: '已保存（版本 {v}）', saving: '正在保存…', geom_hint: '拖动图形或其顶点修改位置；拖动边中点可加点。完成后点“保存”。',
    new_feature: '新建要素', new_in: '图层', kind_point: '点', kind_line: '线', kind_polygon: '面', draw_new_hint: '在地图上绘制新要素，完成后填写名称并保存。',
    name: '名称', created: '已新建 {id}', no_history: '该要素尚无历史记录（在留痕启用之前写入）。',
    v_create: '新建', v_update: '修改', v_replace: '替换', v_delete: '删除', v_import: '导入', show_version: '在地图上显示',
    by: '由', at: '于', why: '原因', nobody: '（系统）',
    compare: '对比', compare_title: '对比两个日期', from: '从', to: '到', compare_go: '对比', added: '新增', changed: '修改', removed: '删除',
    changed_keys: '改动', mu_diff: '面积变化', nothing_changed: '这段时间内没有变化。', layer: '图层',
    e401: '登录已失效或未登录，请重新登录。',
    e403_scope: '无权修改：该要素位于{where}，不在您的编辑范围（{scope}）内；未作任何修改。',
    e403_scope_geom: '无权修改：图形有部分超出您的编辑范围（{scope}）；未作任何修改。',
    e403_role: '无权修改：您的角色为“{role}”，修改“{layer}”图层需要“{needed}”或更高角色。',
    e412: '该要素已被他人修改（当前版本 {v}），您的修改未保存。请重新打开后再编辑。',
    e428: '缺少版本号（If-Match），请重新打开该要素。', e400: '输入有误：{d}', e_other: '保存失败（{s}）：{d}',
    read_only: '服务器为只读模式，不能修改。', gcj_no_edit: '当前底图为 GCJ-02 坐标，图形编辑请先切换到天地图或无底图。',
    multi_note: '该要素有 {n} 个部分，分别编辑。',
  },
  en: {
    account: 'Sign in to edit', token_ph: 'Token (yzt_…)', sign_in: 'Sign in', sign_out: 'Sign out', signing_in: 'Signing in…',
    bad_token: 'The token is not valid (unknown, revoked or malformed).', too_many: 'Too many failed sign-ins; try again later.',
    role_viewer: 'viewer', role_editor: 'editor', role_steward: 'steward', role_admin: 'admin',
    scope_all: 'everywhere', scope: 'May edit in', edit_props: 'Edit properties', edit_geom: 'Edit shape', history: 'History',
    delete: 'Delete', save: 'Save', cancel: 'Cancel', reason: 'Reason', reason_ph: 'e.g. adjusted to the 2024 plan',
    saved: 'Saved (version {v})', saving: 'Saving…', geom_hint: 'Drag the shape or its vertices; drag a midpoint to add one. Then Save.',
    new_feature: 'New feature', new_in: 'Layer', kind_point: 'Point', kind_line: 'Line', kind_polygon: 'Polygon', draw_new_hint: 'Draw the new feature on the map, then name it and save.',
    name: 'Name', created: 'Created {id}', no_history: 'No history yet (written before history was kept).',
    v_create: 'created', v_update: 'changed', v_replace: 'replaced', v_delete: 'deleted', v_import: 'imported', show_version: 'Show on the map',
    by: 'by', at: 'at', why: 'why', nobody: '(system)',
    compare: 'Compare', compare_title: 'Compare two dates', from: 'From', to: 'To', compare_go: 'Compare', added: 'Added', changed: 'Changed', removed: 'Removed',
    changed_keys: 'changed', mu_diff: 'area change', nothing_changed: 'Nothing changed in between.', layer: 'Layer',
    e401: 'Not signed in, or the sign-in expired: sign in again.',
    e403_scope: 'Not allowed: the feature lies in {where}, outside the units you may edit ({scope}); nothing was changed.',
    e403_scope_geom: 'Not allowed: part of the shape lies outside the units you may edit ({scope}); nothing was changed.',
    e403_role: 'Not allowed: your role is “{role}”; the layer “{layer}” needs “{needed}” or higher.',
    e412: 'Someone else changed this feature (now version {v}); your change was not saved. Open it again.',
    e428: 'The version (If-Match) is missing: open the feature again.', e400: 'Not accepted: {d}', e_other: 'Could not save ({s}): {d}',
    read_only: 'The server is read-only.', gcj_no_edit: 'The basemap is in GCJ-02: switch to Tianditu or no basemap to edit shapes.',
    multi_note: 'This feature has {n} parts, edited one by one.',
  },
};

// Properties that are the data pipeline's bookkeeping, never edited by hand in the form.
const READONLY_KEYS = new Set(['id', 'layer', 'geometry_method', 'geometry_area_basis', 'approximate', 'source', 'catalog', 'catalog_layer',
  'resolution', 'admin_codes', 'admin_names', 'located_in_text', 'placement', 'attributes', 'share_inside', 'plan_title',
  'plan', 'district', 'district_code', 'geometry_area_mu', 'area_mu_basis', 'version']);
const ROLE_RANK = { viewer: 0, editor: 1, steward: 2, admin: 3 };

export function setupEditing(ctx) {
  const { map, state, esc, getJSON, REFERENCE } = ctx;
  const tx = (k, vars) => String((TEXT[ctx.lang()] || TEXT.zh)[k] ?? TEXT.zh[k] ?? k).replace(/\{(\w+)\}/g, (_, v) => (vars && v in vars ? vars[v] : ''));
  const $ = (s) => document.querySelector(s);
  const auth = { token: sessionStorage.getItem('yzt.token') || '', me: null };
  const api = window.yzt.edit = { get me() { return auth.me; } };

  const authHeaders = (extra = {}) => (auth.token ? { ...extra, Authorization: `Bearer ${auth.token}` } : extra);
  const canEdit = (layer) => auth.me && ROLE_RANK[auth.me.role] >= (REFERENCE.includes(layer) ? ROLE_RANK.steward : ROLE_RANK.editor);
  const scopeText = () => (auth.me && auth.me.scoped ? auth.me.scope.map((u) => `${u.name || ''}（${u.code}）`).join('、') : tx('scope_all'));

  // ------------------------------------------------------------ sign-in box

  function renderAccount() {
    const signed = !!auth.me;
    $('#signin').hidden = signed;
    $('#whoami').hidden = !signed;
    $('#edit-tools').hidden = !signed;
    $('#account h2').textContent = tx('account');
    $('#token').placeholder = tx('token_ph');
    $('#signin button').textContent = tx('sign_in');
    $('#signout').textContent = tx('sign_out');
    $('#new-feature').textContent = tx('new_feature');
    if (signed) {
      const m = auth.me;
      $('#whoami .who').innerHTML = `<b>${esc(m.name)}</b> · ${esc(tx(`role_${m.role}`))}<br><span class="small muted">${esc(tx('scope'))}：${esc(scopeText())}</span>`;
      const sel = $('#new-layer');
      const layers = state.layers.filter((l) => canEdit(l.id) && !REFERENCE.includes(l.id));
      sel.innerHTML = layers.map((l) => `<option value="${esc(l.id)}">${esc(ctx.layerTitle(l))}</option>`).join('');
      $('#new-kind').innerHTML = ['point', 'line', 'polygon'].map((k) => `<option value="${k}">${esc(tx(`kind_${k}`))}</option>`).join('');
    }
  }
  async function signIn(token) {
    token = String(token || '').trim();
    const err = $('#signin-err');
    err.hidden = true;
    if (!token) return null;
    const r = await fetch('/me', { headers: { Accept: 'application/json', Authorization: `Bearer ${token}` } });
    if (!r.ok) {
      err.textContent = r.status === 429 ? tx('too_many') : tx('bad_token');
      err.hidden = false;
      auth.token = ''; auth.me = null;
      sessionStorage.removeItem('yzt.token');
      renderAccount();
      return null;
    }
    auth.token = token;
    auth.me = await r.json();
    sessionStorage.setItem('yzt.token', token);
    $('#token').value = '';
    renderAccount();
    refreshPopup();
    return auth.me;
  }
  function signOut() {
    auth.token = ''; auth.me = null;
    sessionStorage.removeItem('yzt.token');
    stopGeometry();
    renderAccount();
    refreshPopup();
  }
  api.signIn = signIn;
  api.signOut = signOut;
  $('#signin').addEventListener('submit', (e) => { e.preventDefault(); signIn($('#token').value); });
  $('#signout').addEventListener('click', signOut);
  $('#new-feature').addEventListener('click', () => startNew($('#new-layer').value, $('#new-kind').value));
  renderAccount();
  if (auth.token) signIn(auth.token).catch(() => {});

  // The open popup is drawn again, so that its edit buttons follow the sign-in.
  function refreshPopup() {
    if (state.popup && state.popup.isOpen()) {
      const el = state.popup.getElement().querySelector('.popup[data-layer]');
      if (el) ctx.openFeature(el.dataset.layer, el.dataset.id, state.popup.getLngLat());
    }
  }

  // ------------------------------------------------------------ popup buttons

  ctx.popupHooks.push((el, layerId, f) => {
    const bar = document.createElement('div');
    bar.className = 'edit-bar';
    const editable = canEdit(layerId);
    bar.innerHTML = `${editable ? `<button type="button" class="edit-props">${esc(tx('edit_props'))}</button>${f.geometry ? ` <button type="button" class="edit-geom">${esc(tx('edit_geom'))}</button>` : ''} ` : ''}<button type="button" class="history">${esc(tx('history'))}</button>`;
    // Near the top, under the layer's name: reachable without scrolling a long popup.
    const tag = el.querySelector('.popup .layer-tag');
    if (tag) tag.after(bar); else el.querySelector('.popup').appendChild(bar);
    const id = String(f.id);
    bar.querySelector('.history').addEventListener('click', () => showHistory(layerId, id));
    if (editable) {
      bar.querySelector('.edit-props').addEventListener('click', () => editProperties(layerId, id));
      const g = bar.querySelector('.edit-geom');
      if (g) g.addEventListener('click', () => editGeometry(layerId, id));
    }
  });

  // The feature as stored now (no CRS conversion) and its ETag, for If-Match.
  async function current(layerId, id) {
    const r = await fetch(`/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(id)}`, { headers: { Accept: 'application/geo+json' } });
    const body = await r.json();
    if (!r.ok) throw Object.assign(new Error(body.description || r.statusText), { status: r.status, body });
    return { f: body, etag: r.headers.get('ETag') };
  }

  // A refusal in plain Chinese (or English), naming the districts.
  async function explain(r, body, layerId, f) {
    const b = body || {};
    if (r.status === 401) return tx('e401');
    if (r.status === 403 && b.code === 'OutOfScope') {
      const scope = (b.scope || []).map((u) => `${u.name || ''}（${u.code}）`).join('、') || scopeText();
      // The feature's own code outside the scope: name its district. Else its shape reaches out.
      const full = String((f && f.properties && f.properties.admin_code) || '');
      const inScope = !full || (auth.me && auth.me.scope.some((u) => full.startsWith(u.code)));
      if (inScope || !/^\d{6}/.test(full)) return tx('e403_scope_geom', { scope });
      let where = full.slice(0, 6);
      try { const a = await getJSON(`/areas/${where}`); where = `${a.name}（${a.code}）`; } catch { /* the code alone */ }
      return tx('e403_scope', { where, scope });
    }
    if (r.status === 403) {
      const L = state.byId.get(layerId);
      return tx('e403_role', { role: tx(`role_${b.role || auth.me?.role || 'viewer'}`), layer: L ? ctx.layerTitle(L) : layerId, needed: tx(`role_${b.needed || 'editor'}`) });
    }
    if (r.status === 412) return tx('e412', { v: b.currentVersion ?? b.current_version ?? '?' });
    if (r.status === 428) return tx('e428');
    if (r.status === 405 && /read-only/i.test(b.description || '')) return tx('read_only');
    if (r.status === 400 || r.status === 422) return tx('e400', { d: b.description || '' });
    return tx('e_other', { s: r.status, d: b.description || r.statusText });
  }

  // PATCH (merge patch) of one feature; the answer's new version, or throws with the message shown.
  async function patch(layerId, id, etag, body, reason, f) {
    const headers = authHeaders({ 'Content-Type': 'application/merge-patch+json', Accept: 'application/json', 'If-Match': etag });
    if (reason) headers['X-Change-Reason'] = encodeURIComponent(reason);
    const r = await fetch(`/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(id)}`, { method: 'PATCH', headers, body: JSON.stringify(body) });
    let out = null;
    try { out = await r.json(); } catch { /* no body */ }
    if (!r.ok) throw Object.assign(new Error(await explain(r, out, layerId, f)), { status: r.status, body: out });
    const tag = r.headers.get('ETag') || '';
    const v = /(\d+)/.exec(tag);
    return { version: v ? +v[1] : (out && out.properties && out.properties.version), feature: out };
  }

  function popupBody() {
    const el = state.popup && state.popup.getElement() && state.popup.getElement().querySelector('.popup');
    return el;
  }
  function message(box, text, kind) {
    box.innerHTML = `<p class="${kind === 'err' ? 'err edit-err' : 'ok edit-ok'}">${esc(text)}</p>`;
  }
  function afterWrite(layerId) {
    // The tiles are loaded again (the service dropped exactly those the edit touched; tiles are
    // `no-cache`, so the browser revalidates them by ETag).
    if (map.refreshTiles) map.refreshTiles('yzt');
    if (state.area) ctx.showArea(state.area, { fly: false });
    window.yzt.lastWrite = { layer: layerId, at: Date.now() };
  }

  // ------------------------------------------------------------ properties

  const plain = (v) => v === null || ['string', 'number', 'boolean'].includes(typeof v);
  async function editProperties(layerId, id) {
    const el = popupBody();
    if (!el) return;
    let cur;
    try { cur = await current(layerId, id); } catch (e) { return message(el, e.message, 'err'); }
    const p = cur.f.properties || {};
    const keys = Object.keys(p).filter((k) => !READONLY_KEYS.has(k) && plain(p[k]));
    if (!keys.includes('name')) keys.unshift('name');
    el.innerHTML = `<h3>${esc(p.name || id)}</h3><form class="edit-form" data-layer="${esc(layerId)}" data-id="${esc(id)}">
      ${keys.map((k) => `<label><span>${esc(ctx.keyLabel(k))}</span><input name="${esc(k)}" data-type="${typeof p[k]}" value="${esc(p[k] ?? '')}"></label>`).join('')}
      <label><span>${esc(tx('reason'))}</span><input name="__reason" placeholder="${esc(tx('reason_ph'))}"></label>
      <div class="edit-msg"></div>
      <p><button type="submit" class="save">${esc(tx('save'))}</button> <button type="button" class="cancel">${esc(tx('cancel'))}</button></p></form>`;
    const form = el.querySelector('form');
    form.querySelector('.cancel').addEventListener('click', () => ctx.openFeature(layerId, id, state.popup.getLngLat()));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const changed = {};
      for (const input of form.querySelectorAll('input:not([name="__reason"])')) {
        const k = input.name, before = p[k];
        let v = input.value;
        if (input.dataset.type === 'number') v = v.trim() === '' ? null : Number(v);
        else if (input.dataset.type === 'boolean') v = /^(true|是|1|yes)$/i.test(v.trim());
        else if (v === '' && (before === null || before === undefined)) continue;
        if (typeof v === 'number' && !Number.isFinite(v)) { message(form.querySelector('.edit-msg'), tx('e400', { d: `${ctx.keyLabel(k)}: ${input.value}` }), 'err'); return; }
        if (v !== before) changed[k] = v;
      }
      const msg = form.querySelector('.edit-msg');
      if (!Object.keys(changed).length) { ctx.openFeature(layerId, id, state.popup.getLngLat()); return; }
      msg.innerHTML = `<p class="muted">${esc(tx('saving'))}</p>`;
      try {
        const r = await patch(layerId, id, cur.etag, { properties: changed }, form.querySelector('[name="__reason"]').value.trim(), cur.f);
        afterWrite(layerId);
        await ctx.openFeature(layerId, id, state.popup.getLngLat());
        const box = popupBody();
        if (box) box.insertAdjacentHTML('afterbegin', `<p class="ok edit-ok">${esc(tx('saved', { v: r.version }))}</p>`);
      } catch (err) {
        message(msg, err.message, 'err');
      }
    });
  }
  api.editProperties = editProperties;

  // ------------------------------------------------------------ geometry (terra-draw select mode)

  let geomEdit = null; // {layerId, id, etag, f, type, ids: [terra-draw ids], holes}
  const round9 = (c) => (typeof c[0] === 'number' ? c.map((x) => Math.round(x * 1e9) / 1e9) : c.map(round9));
  function parts(g) {
    // terra-draw edits single points, lines and polygons: a Multi* geometry is edited part by part.
    switch (g.type) {
      case 'Point': return [{ mode: 'point', geometry: g }];
      case 'MultiPoint': return g.coordinates.map((c) => ({ mode: 'point', geometry: { type: 'Point', coordinates: c } }));
      case 'LineString': return [{ mode: 'linestring', geometry: g }];
      case 'MultiLineString': return g.coordinates.map((c) => ({ mode: 'linestring', geometry: { type: 'LineString', coordinates: c } }));
      case 'Polygon': return [{ mode: 'polygon', geometry: { type: 'Polygon', coordinates: [g.coordinates[0]] }, holes: g.coordinates.slice(1) }];
      case 'MultiPolygon': return g.coordinates.map((p) => ({ mode: 'polygon', geometry: { type: 'Polygon', coordinates: [p[0]] }, holes: p.slice(1) }));
      default: return [];
    }
  }
  async function editGeometry(layerId, id) {
    const el = popupBody();
    const draw = state.draw;
    if (!el || !draw) return;
    if (state.gcjActive) return message(el, tx('gcj_no_edit'), 'err');
    let cur;
    try { cur = await current(layerId, id); } catch (e) { return message(el, e.message, 'err'); }
    stopGeometry();
    ctx.setTool(null);
    const ps = parts(cur.f.geometry || {});
    if (!ps.length) return;
    draw.setMode('select');
    const features = ps.map((x) => ({ type: 'Feature', geometry: { type: x.geometry.type, coordinates: round9(x.geometry.coordinates) }, properties: { mode: x.mode } }));
    const results = draw.addFeatures(features);
    const ids = results.filter((r) => r.valid).map((r) => r.id);
    if (ids.length !== features.length) {
      draw.removeFeatures(ids);
      return message(el, tx('e400', { d: results.filter((r) => !r.valid).map((r) => r.reason).join('; ') }), 'err');
    }
    geomEdit = { layerId, id, etag: cur.etag, f: cur.f, type: cur.f.geometry.type, ids, holes: ps.map((x) => x.holes || []) };
    draw.selectFeature(ids[0]);
    state.tool = 'edit-geometry';
    // The popup becomes a small bar above the map, so that the shape is free to drag.
    const lngLat = state.popup.getLngLat();
    state.popup.remove();
    const result = $('#tool-result');
    result.hidden = false;
    result.innerHTML = `<div class="geom-edit"><b>${esc(cur.f.properties.name || id)}</b> · ${esc(tx('edit_geom'))}
      <p class="muted">${esc(tx('geom_hint'))}${ids.length > 1 ? ' ' + esc(tx('multi_note', { n: ids.length })) : ''}</p>
      <label>${esc(tx('reason'))} <input class="geom-reason" placeholder="${esc(tx('reason_ph'))}"></label>
      <div class="edit-msg"></div>
      <p><button type="button" class="geom-save">${esc(tx('save'))}</button> <button type="button" class="geom-cancel">${esc(tx('cancel'))}</button></p></div>`;
    result.querySelector('.geom-cancel').addEventListener('click', () => { stopGeometry(); ctx.openFeature(layerId, id, lngLat); });
    result.querySelector('.geom-save').addEventListener('click', () => saveGeometry());
  }
  function editedGeometry() {
    const draw = state.draw, e = geomEdit;
    const gs = e.ids.map((tid) => draw.getSnapshotFeature(tid).geometry);
    switch (e.type) {
      case 'Point': return gs[0];
      case 'MultiPoint': return { type: 'MultiPoint', coordinates: gs.map((g) => g.coordinates) };
      case 'LineString': return gs[0];
      case 'MultiLineString': return { type: 'MultiLineString', coordinates: gs.map((g) => g.coordinates) };
      case 'Polygon': return { type: 'Polygon', coordinates: [gs[0].coordinates[0], ...e.holes[0]] };
      default: return { type: 'MultiPolygon', coordinates: gs.map((g, i) => [g.coordinates[0], ...e.holes[i]]) };
    }
  }
  async function saveGeometry() {
    if (!geomEdit) return null;
    const e = geomEdit, result = $('#tool-result');
    const msg = result.querySelector('.edit-msg');
    const geometry = editedGeometry();
    msg.innerHTML = `<p class="muted">${esc(tx('saving'))}</p>`;
    try {
      const r = await patch(e.layerId, e.id, e.etag, { geometry }, (result.querySelector('.geom-reason')?.value || '').trim(), { ...e.f, geometry });
      stopGeometry();
      afterWrite(e.layerId);
      result.hidden = false;
      result.innerHTML = `<p class="ok edit-ok">${esc(tx('saved', { v: r.version }))}</p>`;
      await ctx.openFeature(e.layerId, e.id, null);
      return r;
    } catch (err) {
      message(msg, err.message, 'err');
      return null;
    }
  }
  function stopGeometry() {
    if (!geomEdit || !state.draw) { geomEdit = null; return; }
    try { state.draw.removeFeatures(geomEdit.ids); } catch { /* already gone */ }
    geomEdit = null;
    state.draw.setMode('static');
    state.tool = null;
  }
  api.editGeometry = editGeometry;
  api.saveGeometry = saveGeometry;
  api.geometryEdit = () => geomEdit && { ...geomEdit, geometry: editedGeometry() };

  // ------------------------------------------------------------ a new feature (terra-draw, then POST)

  function startNew(layerId, kind) {
    const draw = state.draw;
    if (!draw || !layerId) return;
    stopGeometry();
    ctx.setTool(null);
    draw.setMode({ point: 'point', line: 'linestring', polygon: 'polygon' }[kind] || 'polygon');
    state.tool = 'new-feature';
    const result = $('#tool-result');
    result.hidden = false;
    result.innerHTML = `<p class="muted">${esc(tx('draw_new_hint'))}</p>`;
    const onFinish = (tid) => {
      draw.off('finish', onFinish);
      const f = draw.getSnapshotFeature(tid);
      draw.setMode('static');
      result.innerHTML = `<form class="new-form"><b>${esc(tx('new_feature'))}</b> · ${esc(ctx.layerTitle(state.byId.get(layerId) || { id: layerId }))}
        <label>${esc(tx('name'))} <input name="name" required></label>
        <label>${esc(tx('reason'))} <input name="reason" placeholder="${esc(tx('reason_ph'))}"></label>
        <div class="edit-msg"></div><p><button type="submit">${esc(tx('save'))}</button> <button type="button" class="cancel">${esc(tx('cancel'))}</button></p></form>`;
      const form = result.querySelector('form');
      const done = () => { try { draw.removeFeatures([tid]); } catch { /* gone */ } state.tool = null; };
      form.querySelector('.cancel').addEventListener('click', () => { done(); result.hidden = true; });
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const name = form.querySelector('[name="name"]').value.trim();
        const reason = form.querySelector('[name="reason"]').value.trim();
        // The id is chosen here (the service keeps what it is sent): web-<time>-<random>.
        const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
        const fid = `web-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
        const body = { type: 'Feature', id: fid, geometry: f.geometry, properties: { name } };
        const headers = authHeaders({ 'Content-Type': 'application/geo+json', Accept: 'application/json' });
        if (reason) headers['X-Change-Reason'] = encodeURIComponent(reason);
        const r = await fetch(`/collections/${encodeURIComponent(layerId)}/items`, { method: 'POST', headers, body: JSON.stringify(body) });
        let out = null;
        try { out = await r.json(); } catch { /* none */ }
        if (!r.ok) { message(form.querySelector('.edit-msg'), await explain(r, out, layerId, body), 'err'); return; }
        const loc = r.headers.get('Location') || '';
        const newId = loc ? decodeURIComponent(loc.split('/').pop()) : fid;
        done();
        result.innerHTML = `<p class="ok edit-ok">${esc(tx('created', { id: newId }))}</p>`;
        afterWrite(layerId);
        if (newId) ctx.openFeature(layerId, newId, null, true);
      });
    };
    draw.on('finish', onFinish);
  }
  api.startNew = startNew;

  // ------------------------------------------------------------ history

  async function showHistory(layerId, id) {
    const el = popupBody();
    if (!el) return null;
    const r = await fetch(`/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(id)}/history`, { headers: { Accept: 'application/json' } });
    const box = document.createElement('div');
    box.className = 'history-list';
    el.querySelector('.history-list')?.remove();
    const bar = el.querySelector('.edit-bar');
    if (bar) bar.after(box); else el.appendChild(box);
    if (r.status === 404) { box.innerHTML = `<p class="muted">${esc(tx('no_history'))}</p>`; return { versions: [] }; }
    const h = await r.json();
    if (!r.ok) { box.innerHTML = `<p class="err">${esc(h.description || r.statusText)}</p>`; return null; }
    const fmtTime = (s) => { const d = new Date(s); return Number.isNaN(d.getTime()) ? s : d.toLocaleString(ctx.lang() === 'en' ? 'en-GB' : 'zh-CN', { hour12: false }); };
    box.innerHTML = `<h4>${esc(tx('history'))}</h4><ol class="versions">${[...h.versions].reverse().map((v) => `<li data-version="${v.version}">
      <b>v${v.version}</b> ${esc(tx(`v_${v.op}`))} · ${esc(fmtTime(v.at))} · ${esc(tx('by'))} ${esc(v.user || tx('nobody'))}${v.reason ? ` · ${esc(tx('why'))}：${esc(v.reason)}` : ''}
      ${v.op !== 'delete' ? `<button type="button" class="show-version small">${esc(tx('show_version'))}</button>` : ''}</li>`).join('')}</ol>`;
    for (const b of box.querySelectorAll('.show-version')) {
      b.addEventListener('click', async () => {
        const v = b.closest('li').dataset.version;
        const f = await getJSON(`/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(id)}/history/${v}`);
        map.getSource('history').setData({ type: 'FeatureCollection', features: f.geometry ? [f] : [] });
      });
    }
    return h;
  }
  api.history = showHistory;

  // ------------------------------------------------------------ compare two dates

  map.addSource('history', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({ id: 'history-line', type: 'line', source: 'history', paint: { 'line-color': '#8e44ad', 'line-width': 2.5, 'line-dasharray': [2, 1] } });
  map.addLayer({ id: 'history-point', type: 'circle', source: 'history', filter: ['==', ['geometry-type'], 'Point'], paint: { 'circle-radius': 7, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': '#8e44ad', 'circle-stroke-width': 2.5 } });
  const KIND_COLORS = { added: '#1e9e4a', changed: '#ff8c00', removed: '#d7263d' };
  map.addSource('changes', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  const kindColor = ['match', ['get', 'change'], 'added', KIND_COLORS.added, 'changed', KIND_COLORS.changed, KIND_COLORS.removed];
  map.addLayer({ id: 'changes-fill', type: 'fill', source: 'changes', filter: ['match', ['geometry-type'], ['Polygon', 'MultiPolygon'], true, false], paint: { 'fill-color': kindColor, 'fill-opacity': 0.35 } });
  map.addLayer({ id: 'changes-line', type: 'line', source: 'changes', paint: { 'line-color': kindColor, 'line-width': 3.5 } });
  map.addLayer({ id: 'changes-point', type: 'circle', source: 'changes', filter: ['match', ['geometry-type'], ['Point', 'MultiPoint'], true, false], paint: { 'circle-radius': 9, 'circle-color': kindColor, 'circle-opacity': 0.5, 'circle-stroke-color': kindColor, 'circle-stroke-width': 3 } });

  function openCompare() {
    const result = $('#tool-result');
    ctx.setTool(null);
    result.hidden = false;
    // Local date and time to the second (datetime-local inputs).
    const now = new Date();
    const week = new Date(now.getTime() - 7 * 86400e3);
    week.setHours(0, 0, 0, 0);
    const d = (x) => new Date(x.getTime() - x.getTimezoneOffset() * 60e3).toISOString().slice(0, 19);
    const layers = state.layers.filter((l) => !['town_seats', 'village_points'].includes(l.id));
    result.innerHTML = `<form class="compare-form"><b>${esc(tx('compare_title'))}</b>
      <label>${esc(tx('layer'))} <select name="layer">${layers.map((l) => `<option value="${esc(l.id)}">${esc(ctx.layerTitle(l))}</option>`).join('')}</select></label>
      <label>${esc(tx('from'))} <input type="datetime-local" step="1" name="from" value="${d(week)}"></label>
      <label>${esc(tx('to'))} <input type="datetime-local" step="1" name="to" value="${d(now)}"></label>
      <p><button type="submit">${esc(tx('compare_go'))}</button></p></form><div class="compare-out"></div>`;
    const form = result.querySelector('form');
    form.querySelector('[name="layer"]').value = state.layers.some((l) => l.id === 'projects') ? 'projects' : layers[0]?.id;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      // Local times as the inputs show them; the end of the second given for `to`.
      const val = (n) => form.querySelector(`[name="${n}"]`).value;
      const from = new Date(val('from')).toISOString();
      const to = new Date(new Date(val('to')).getTime() + 999).toISOString();
      compare(val('layer'), from, to);
    });
  }
  async function compare(layerId, from, to) {
    const result = $('#tool-result');
    let out = result.querySelector('.compare-out');
    if (!out) { openCompare(); out = result.querySelector('.compare-out'); }
    out.innerHTML = `<p class="muted">…</p>`;
    delete out.dataset.done;
    const q = new URLSearchParams({ from, to });
    if (state.area) q.set('area', state.area.code);
    let c;
    try { c = await getJSON(`/collections/${encodeURIComponent(layerId)}/changes?${q}`); } catch (e) { out.innerHTML = `<p class="err">${esc(e.message)}</p>`; return null; }
    // Geometries: the current version of added and changed features, the last one of removed ones.
    const fetchOne = (x, kind) => getJSON(kind === 'removed'
      ? `/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(x.id)}/history/${x.version}`
      : `/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(x.id)}`).then((f) => (f.geometry ? { ...f, properties: { id: String(x.id), name: x.name, change: kind } } : null)).catch(() => null);
    const all = [...c.added.map((x) => [x, 'added']), ...c.changed.map((x) => [x, 'changed']), ...c.removed.map((x) => [x, 'removed'])];
    const shapes = (await Promise.all(all.slice(0, 300).map(([x, k]) => fetchOne(x, k)))).filter(Boolean);
    map.getSource('changes').setData({ type: 'FeatureCollection', features: shapes });
    const row = (x, kind) => `<li data-id="${esc(x.id)}" data-change="${kind}"><i class="dot" style="background:${KIND_COLORS[kind]}"></i> ${esc(x.name || x.id)}${kind === 'changed' && x.changed ? ` <span class="muted">· ${esc(tx('changed_keys'))} ${esc(x.changed.map((k) => ctx.keyLabel(k)).join('、'))}${x.mu_difference ? ` · ${esc(tx('mu_diff'))} ${x.mu_difference > 0 ? '+' : ''}${esc(ctx.num(x.mu_difference, 2))} ${ctx.lang() === 'en' ? 'mu' : '亩'}` : ''}</span>` : ''}</li>`;
    const n = c.added.length + c.changed.length + c.removed.length;
    out.innerHTML = n ? ['added', 'changed', 'removed'].filter((k) => c[k].length).map((k) => `<h4>${esc(tx(k))}（${c[k].length}）</h4><ul class="changes">${c[k].map((x) => row(x, k)).join('')}</ul>`).join('')
      : `<p class="muted">${esc(tx('nothing_changed'))}</p>`;
    for (const li of out.querySelectorAll('li[data-id]')) {
      li.addEventListener('click', () => {
        const f = shapes.find((s) => s.properties.id === li.dataset.id);
        const b = f && ctx.geomBbox(f.geometry);
        if (b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 80, maxZoom: 15, duration: 500 });
      });
    }
    if (shapes.length && !state.area) {
      const b = shapes.map((s) => ctx.geomBbox(s.geometry)).filter(Boolean).reduce((a, x) => [Math.min(a[0], x[0]), Math.min(a[1], x[1]), Math.max(a[2], x[2]), Math.max(a[3], x[3])]);
      map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 80, maxZoom: 14, duration: 500 });
    }
    out.dataset.done = '1';
    return { ...c, highlighted: shapes.map((s) => ({ id: s.properties.id, change: s.properties.change })) };
  }
  api.compare = compare;
  $('#compare-open').addEventListener('click', openCompare);
  api.clearCompare = () => map.getSource('changes').setData({ type: 'FeatureCollection', features: [] });
  ctx.languageHooks.push(renderAccount);
}
