// Hermod's Webhooks page. Plain JS, no build step, no third-party code.
// It talks to the REST API with the session cookie; every state-changing
// request carries the session's CSRF token in X-CSRF-Token. Text from the
// API is only ever put in the page with textContent, never as HTML.
(() => {
  'use strict';

  const main = document.getElementById('main');
  const CSRF = main.dataset.csrf;
  const REFRESH_MS = 5000;
  const SVGNS = 'http://www.w3.org/2000/svg';

  const state = {
    webhooks: [],
    open: new Set(),        // ids of expanded webhooks
    details: new Map(),     // id -> {tr, parts}
    editing: null,          // webhook being edited, or null when adding
    eventTypes: [],
  };

  // ---------- helpers ----------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || ('HTTP ' + status));
      this.status = status;
      this.code = body && body.code;
      this.details = (body && body.details) || {};
    }
  }

  async function api(method, path, body) {
    const opt = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (method !== 'GET') opt.headers['X-CSRF-Token'] = CSRF;
    if (body !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
    const r = await fetch('/api/v1' + path, opt);
    const text = await r.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (r.status === 401) {
      location.assign('/signin');
    } else if (r.status === 403 && data && data.code === 'csrf') {
      // The session changed under the page (signed in again in another
      // tab): reload to pick up the new session's token.
      location.reload();
    }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }

  // h builds an element: h('td', {class: 'num', text: '3'}, child...).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v);
    }
    for (const c of children.flat()) if (c) el.append(c);
    return el;
  }

  const enc = encodeURIComponent;

  function relTime(iso) {
    if (!iso) return 'never';
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (s < 5) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  function exact(iso) {
    const d = new Date(iso);
    return d.toLocaleString() + ' (' + iso + ')';
  }

  function timeEl(iso) {
    if (!iso) return h('span', { class: 'muted', text: 'never' });
    return h('time', { datetime: iso, title: exact(iso), text: relTime(iso) });
  }

  function fmtTime(iso) {
    if (!iso) return '—';
    return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function fmtMinute(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1048576).toFixed(1) + ' MiB';
  }

  function badge(status) { return h('span', { class: 'badge ' + status, text: status }); }

  function setStatus(msg) { document.getElementById('page-status').textContent = msg; }

  function showError(err) {
    const el = document.getElementById('page-error');
    if (!err) { el.hidden = true; el.textContent = ''; return; }
    el.textContent = err.message || String(err);
    el.hidden = false;
  }

  function confirmDialog(title, text, okLabel) {
    const dlg = document.getElementById('confirm');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = text;
    document.getElementById('confirm-ok').textContent = okLabel || 'Confirm';
    dlg.returnValue = '';
    return new Promise((resolve) => {
      dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
      dlg.showModal();
    });
  }

  function deliveryMode(w) {
    if (!w.target_labels || w.target_labels.length === 0) return h('span', { text: 'broker' });
    return h('span', { class: 'events' }, h('span', { text: 'agent:' }),
      w.target_labels.map((l) => h('span', { class: 'chip', text: l })));
  }

  // ---------- the list ----------

  const MAX_PAGES = 10; // at most 2,000 webhooks on the page

  async function loadWebhooks() {
    const all = [];
    let cursor = '';
    state.truncated = false;
    for (let i = 0; i < MAX_PAGES; i++) {
      const page = await api('GET', '/webhooks?limit=200' + (cursor ? '&cursor=' + enc(cursor) : ''));
      all.push(...page.data);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
      if (i === MAX_PAGES - 1) state.truncated = true;
    }
    return all;
  }

  function rowFor(w) {
    const open = state.open.has(w.id);
    const rate = w.success_rate === null ? '—' : w.success_rate.toFixed(2) + '\u00a0%';
    return h('tr', { class: 'row', id: 'row-' + w.id, 'data-id': w.id },
      h('td', { 'data-label': 'Name' },
        h('button', {
          type: 'button', class: 'link expander', 'aria-expanded': open ? 'true' : 'false',
          'aria-controls': open ? 'detail-' + w.id : null, text: w.name, onclick: () => toggle(w.id),
        })),
      h('td', { 'data-label': 'URL', class: 'mono', text: w.url_redacted }),
      h('td', { 'data-label': 'Events' }, h('span', { class: 'events' }, w.event_types.map((t) => h('span', { class: 'chip', text: t })))),
      h('td', { 'data-label': 'Delivery' }, deliveryMode(w)),
      h('td', { 'data-label': 'Status', class: 'status' }, badge(w.status)),
      h('td', { 'data-label': 'Success rate', class: 'num rate', text: rate }),
      h('td', { 'data-label': 'Delivered', class: 'num delivered', text: String(w.total_delivered) }),
      h('td', { 'data-label': 'Failed', class: 'num failed', text: String(w.total_failed) }),
      h('td', { 'data-label': 'Last delivery', class: 'last' }, timeEl(w.last_delivery_at)),
    );
  }

  // syncCells makes row look like fresh, replacing only the cells whose
  // content differs, so a focused button in an unchanged cell keeps focus.
  function syncCells(row, fresh) {
    const cells = [...fresh.children];
    cells.forEach((cell, i) => {
      const old = row.children[i];
      if (!old) row.append(cell);
      else if (old.outerHTML !== cell.outerHTML) old.replaceWith(cell);
    });
    while (row.children.length > cells.length) row.lastElementChild.remove();
  }

  // place puts wanted (in order) as parent's children, moving only nodes
  // that are out of place (moving a node would blur what it holds).
  function place(parent, wanted) {
    const keep = new Set(wanted);
    for (const el of [...parent.children]) if (!keep.has(el)) el.remove();
    let prev = null;
    for (const el of wanted) {
      const expected = prev ? prev.nextElementSibling : parent.firstElementChild;
      if (expected !== el) parent.insertBefore(el, expected);
      prev = el;
    }
  }

  // reconcile draws items as rows of tbody, keyed: a row is rebuilt only
  // when its item changed, and rows stay in place otherwise.
  function reconcile(tbody, cache, items, keyOf, build, empty) {
    const wanted = [];
    const seen = new Set();
    for (const it of items) {
      const k = keyOf(it);
      const sig = JSON.stringify(it);
      seen.add(k);
      let c = cache.get(k);
      if (!c || c.sig !== sig) {
        const el = build(it);
        if (c) c.el.replaceWith(el);
        c = { el, sig };
        cache.set(k, c);
      }
      wanted.push(c.el);
    }
    for (const k of [...cache.keys()]) if (!seen.has(k)) cache.delete(k);
    if (wanted.length === 0) wanted.push(empty);
    place(tbody, wanted);
  }

  const listRows = new Map(); // webhook id -> its <tr>

  function renderList() {
    const tbody = document.getElementById('webhook-rows');
    const focused = document.activeElement;
    const focusId = focused && focused.closest && focused.closest('tr.row') ? focused.closest('tr.row').dataset.id : null;
    const wanted = [];
    const seen = new Set();
    for (const w of state.webhooks) {
      seen.add(w.id);
      const fresh = rowFor(w);
      let row = listRows.get(w.id);
      if (!row) {
        row = fresh;
        listRows.set(w.id, row);
      } else {
        syncCells(row, fresh);
      }
      wanted.push(row);
      if (state.open.has(w.id)) {
        const d = detailFor(w);
        updateDetail(w, d);
        wanted.push(d.tr);
      }
    }
    place(tbody, wanted);
    // The expander is rebuilt when it toggles: keep the focus on it.
    if (focusId && (document.activeElement === document.body || !document.activeElement)) {
      const b = document.querySelector('#row-' + CSS.escape(focusId) + ' .expander');
      if (b) b.focus();
    }
    for (const id of [...state.open]) if (!seen.has(id)) state.open.delete(id);
    for (const id of [...state.details.keys()]) if (!seen.has(id)) state.details.delete(id);
    for (const id of [...listRows.keys()]) if (!seen.has(id)) listRows.delete(id);
    document.getElementById('empty').hidden = state.webhooks.length > 0;
  }

  // One refresh at a time; a call during one gets a fresh refresh after it
  // (so an action's own result is always shown, never a response that left
  // before the action).
  function refresh() {
    if (state.refreshing) {
      state.pending = state.pending || state.refreshing.then(() => { state.pending = null; return refresh(); });
      return state.pending;
    }
    state.refreshing = doRefresh().finally(() => { state.refreshing = null; });
    return state.refreshing;
  }

  async function doRefresh() {
    if (document.hidden) return; // no polling in a background tab
    try {
      const list = await loadWebhooks();
      const sig = JSON.stringify(list);
      state.webhooks = list;
      if (sig !== state.listSig) {
        state.listSig = sig;
        renderList();
      }
      showError(null);
      document.getElementById('refreshed').textContent = 'Updated ' + new Date().toLocaleTimeString() +
        (state.truncated ? ' · showing the first ' + state.webhooks.length + ' webhooks' : '');
      await Promise.all([...state.open].map((id) => refreshDetail(id)));
    } catch (err) {
      showError(new Error('Could not refresh: ' + err.message));
    }
  }

  function toggle(id) {
    if (state.open.has(id)) {
      state.open.delete(id);
      const d = state.details.get(id);
      if (d) hideSecret(d); // a revealed secret does not outlive the panel
    } else {
      state.open.add(id);
    }
    renderList();
    state.listSig = JSON.stringify(state.webhooks);
    if (state.open.has(id)) {
      refreshDetail(id);
      loadDeliveries(id);
    }
  }

  // ---------- one webhook, expanded ----------

  function detailFor(w) {
    let d = state.details.get(w.id);
    if (d) return d;
    const p = {};
    p.result = h('p', { class: 'result', role: 'status', 'aria-live': 'polite' });
    p.pause = h('button', { type: 'button', class: 'pause', onclick: () => pauseResume(w.id) });
    p.config = h('dl', { class: 'config' });
    p.secretValue = h('code', { class: 'secret-value', text: '••••••••••••••••' });
    p.secretNote = h('p', { class: 'muted small' });
    p.reveal = h('button', { type: 'button', class: 'reveal', text: 'Reveal', onclick: () => revealSecret(w.id) });
    p.totals = h('div', { class: 'totals' });
    p.chart = h('div', { class: 'chart-box' });
    p.latency = h('div', { class: 'chart-box' });
    p.attempts = h('tbody');
    p.attemptsEmpty = h('tr', {}, h('td', { colspan: '8', class: 'muted', text: 'No attempts yet.' }));
    p.statsError = h('p', { class: 'form-error', role: 'alert', hidden: true });
    p.dlStatus = h('select', { id: 'dl-status-' + w.id, onchange: () => loadDeliveries(w.id) },
      [''].concat(document.getElementById('main').dataset.statuses.split(' ')).map((s) => h('option', { value: s, text: s || 'all' })));
    p.dlRows = h('tbody');
    p.dlView = h('div', { class: 'delivery-view' });
    const body = h('div', { class: 'detail-body' },
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'primary play', text: '▶ Play', title: 'Send a signed webhook.test event now', onclick: () => play(w.id) }),
        p.pause,
        h('button', {
          type: 'button', class: 'edit', text: 'Edit', onclick: () => {
            const cur = state.webhooks.find((x) => x.id === w.id);
            if (cur) openForm(cur);
            else result(w.id, false, 'This webhook no longer exists.');
          },
        }),
        h('button', { type: 'button', class: 'replay-open', text: 'Replay…', 'aria-expanded': 'false', title: 'Requeue dead deliveries in bulk', onclick: () => openReplay(w.id) }),
        h('button', { type: 'button', class: 'danger delete', text: 'Delete', onclick: () => del(w.id) }),
      ),
      p.result,
      replayBox(w.id, p),
      h('div', { class: 'panels' },
        h('section', { 'aria-label': 'Configuration' },
          h('h3', { text: 'Configuration' }), p.config,
          h('h3', { text: 'Signing secret' }),
          h('p', {}, p.secretValue),
          h('div', { class: 'actions' }, p.reveal,
            h('button', { type: 'button', class: 'copy', text: 'Copy', onclick: () => copySecret(w.id) }),
            h('button', { type: 'button', class: 'rotate', text: 'Rotate', onclick: () => rotate(w.id) })),
          p.secretNote),
        h('section', { 'aria-label': 'Delivery statistics' },
          h('h3', { text: 'Delivery statistics' }), p.statsError, p.totals,
          h('h3', { text: 'Deliveries per minute, last hour' }),
          h('ul', { class: 'legend' },
            h('li', {}, h('span', { class: 'sw success' }), 'success'),
            h('li', {}, h('span', { class: 'sw failed' }), 'failed (will retry)'),
            h('li', {}, h('span', { class: 'sw dead' }), 'dead')),
          p.chart,
          h('h3', { text: 'Latency, last hour' }),
          h('ul', { class: 'legend' },
            h('li', {}, h('span', { class: 'sw p50' }), 'p50'),
            h('li', {}, h('span', { class: 'sw p99' }), 'p99')),
          p.latency),
      ),
      h('section', { 'aria-label': 'Recent delivery attempts' },
        h('h3', { text: 'Recent delivery attempts' }),
        h('div', { class: 'table-wrap' }, h('table', { class: 'small-table attempts cards' },
          h('thead', {}, h('tr', {}, ['Time', 'Event', 'Status', 'HTTP', 'Duration', 'Size', 'Error', 'Delivered by']
            .map((c) => h('th', { scope: 'col', text: c })))),
          p.attempts))),
      h('section', { 'aria-label': 'Deliveries' },
        h('h3', { text: 'Deliveries' }),
        h('div', { class: 'deliveries-bar' },
          h('div', { class: 'field' }, h('label', { for: 'dl-status-' + w.id, text: 'Status' }), p.dlStatus),
          h('button', { type: 'button', text: 'Refresh', onclick: () => loadDeliveries(w.id) })),
        h('div', { class: 'table-wrap' }, h('table', { class: 'small-table deliveries cards' },
          h('thead', {}, h('tr', {}, ['Created', 'Event', 'Status', 'Attempts', 'HTTP', 'Last error', 'Delivered by', '']
            .map((c) => h('th', { scope: 'col', text: c })))),
          p.dlRows)),
        p.dlView),
    );
    const tr = h('tr', { class: 'detail', id: 'detail-' + w.id }, h('td', { colspan: '9' }, body));
    d = { tr, p, id: w.id, deliveryCache: new Map(), attemptRows: new Map(), dlRowCache: new Map() };
    state.details.set(w.id, d);
    return d;
  }

  function updateDetail(w, d) {
    const p = d.p;
    p.pause.textContent = w.enabled ? 'Pause' : 'Activate';
    const items = [
      ['ID', h('code', { text: w.id })],
      ['Description', w.description || '—'],
      ['URL', h('code', { text: w.url_redacted })],
      ['Authorization header', w.has_auth_header ? 'set (hidden)' : 'none'],
      ['Event types', w.event_types.join(', ')],
      ['Delivery', deliveryMode(w)],
      ['Filters', w.filters ? JSON.stringify(w.filters) : 'none'],
      ['Filter expression', w.filter ? h('code', { text: w.filter }) : 'none'],
      ['Max retries', String(w.max_retries)],
      ['Timeout', w.timeout_seconds + ' s'],
      ['Created', timeEl(w.created_at)],
      ['Updated', timeEl(w.updated_at)],
    ];
    p.config.replaceChildren(...items.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]));
    const rate = w.success_rate === null ? '—' : w.success_rate.toFixed(2) + '\u00a0%';
    p.totals.replaceChildren(
      h('div', {}, h('strong', { class: 'total-delivered', text: String(w.total_delivered) }), 'delivered'),
      h('div', {}, h('strong', { class: 'total-failed', text: String(w.total_failed) }), 'failed'),
      h('div', {}, h('strong', { class: 'total-rate', text: rate }), 'success rate'),
      h('div', {}, h('strong', {}, timeEl(w.last_delivery_at)), 'last delivery'),
    );
  }

  async function refreshDetail(id) {
    const d = state.details.get(id);
    if (!d) return;
    const seq = (d.statSeq = (d.statSeq || 0) + 1);
    try {
      const [stats, dl] = await Promise.all([
        api('GET', '/webhooks/' + enc(id) + '/stats?window=1h'),
        api('GET', '/webhooks/' + enc(id) + '/deliveries?limit=10'),
      ]);
      if (seq !== d.statSeq) return;
      drawCharts(d, stats.data);
      // A delivery's attempts are fetched again only when it changed.
      const withAttempts = dl.data.filter((x) => x.attempts > 0);
      const full = await Promise.all(withAttempts.map((x) => {
        const c = d.deliveryCache.get(x.id);
        if (c && c.updated_at === x.updated_at) return c.full;
        return api('GET', '/deliveries/' + enc(x.id)).then((f) => {
          d.deliveryCache.set(x.id, { updated_at: x.updated_at, full: f });
          return f;
        }).catch(() => null);
      }));
      const keep = new Set(withAttempts.map((x) => x.id));
      for (const k of [...d.deliveryCache.keys()]) if (!keep.has(k)) d.deliveryCache.delete(k);
      if (seq !== d.statSeq) return;
      const attempts = [];
      for (const f of full) {
        if (!f) continue;
        for (const a of f.attempt_history || []) attempts.push({ a, event_type: f.event_type, delivery: f.id });
      }
      attempts.sort((x, y) => Date.parse(y.a.started_at) - Date.parse(x.a.started_at));
      reconcile(d.p.attempts, d.attemptRows, attempts.slice(0, 10), (x) => x.delivery + '/' + x.a.attempt,
        ({ a, event_type: et }) => h('tr', { class: 'row' },
          h('td', { 'data-label': 'Time' }, h('time', { datetime: a.started_at, title: exact(a.started_at), text: fmtTime(a.started_at) })),
          h('td', { 'data-label': 'Event', text: et }),
          h('td', { 'data-label': 'Status' }, badge(a.status)),
          h('td', { 'data-label': 'HTTP', class: 'num', text: a.status_code ? String(a.status_code) : '—' }),
          h('td', { 'data-label': 'Duration', class: 'num', text: a.duration_ms + ' ms' }),
          h('td', { 'data-label': 'Size', class: 'num', text: fmtBytes(a.payload_size) }),
          h('td', { 'data-label': 'Error', text: a.error || '' }),
          h('td', { 'data-label': 'Delivered by', text: a.by || '' })),
        d.p.attemptsEmpty);
      d.p.statsError.textContent = '';
      d.p.statsError.hidden = true;
      await loadDeliveries(id);
    } catch (err) {
      d.p.statsError.textContent = 'Could not load statistics: ' + err.message;
      d.p.statsError.hidden = false;
    }
  }

  // ---------- charts (inline SVG) ----------

  function niceMax(v) {
    if (v <= 4) return 4;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return v;
  }

  function frame(W, H, pad, max, unit) {
    const g = [];
    for (const f of [0, 0.5, 1]) {
      const y = pad.t + (H - pad.t - pad.b) * (1 - f);
      g.push(svg('line', { class: f === 0 ? 'axis' : 'grid-line', x1: pad.l, x2: W - pad.r, y1: y, y2: y }));
      const v = max * f;
      g.push(svg('text', { x: pad.l - 4, y: y + 3, 'text-anchor': 'end', text: (Number.isInteger(v) ? String(v) : v.toFixed(1)) + unit }));
    }
    const bottom = H - pad.b + 12;
    g.push(svg('text', { x: pad.l, y: bottom, text: '−60 min' }));
    g.push(svg('text', { x: pad.l + (W - pad.l - pad.r) / 2, y: bottom, 'text-anchor': 'middle', text: '−30 min' }));
    g.push(svg('text', { x: W - pad.r, y: bottom, 'text-anchor': 'end', text: 'now' }));
    return g;
  }

  function drawCharts(d, buckets) {
    const sig = JSON.stringify(buckets);
    if (sig === d.chartSig) return; // unchanged: keep the drawing (and any tooltip)
    d.chartSig = sig;
    const W = 600, H = 170, LH = 130, pad = { l: 38, r: 8, t: 8, b: 18 };
    const n = buckets.length || 1;
    const pw = W - pad.l - pad.r, ph = H - pad.t - pad.b;
    let tot = { success: 0, failed: 0, dead: 0 }, maxCount = 0, maxLat = 0;
    for (const b of buckets) {
      tot.success += b.success; tot.failed += b.failed; tot.dead += b.dead;
      maxCount = Math.max(maxCount, b.success + b.failed + b.dead);
      if (b.p99_ms !== null) maxLat = Math.max(maxLat, b.p99_ms);
      if (b.p50_ms !== null) maxLat = Math.max(maxLat, b.p50_ms);
    }
    const cmax = niceMax(maxCount);
    const bw = pw / n;
    const bars = [];
    buckets.forEach((b, i) => {
      let y = pad.t + ph;
      const label = fmtMinute(b.minute) + ': ' + b.success + ' success, ' + b.failed + ' failed, ' + b.dead + ' dead';
      for (const k of ['success', 'failed', 'dead']) {
        if (!b[k]) continue;
        const hgt = (b[k] / cmax) * ph;
        y -= hgt;
        bars.push(svg('rect', { class: 'bar bar-' + k, x: (pad.l + i * bw + 0.5).toFixed(1), y: y.toFixed(1),
          width: Math.max(bw - 1, 1).toFixed(1), height: Math.max(hgt, 0.5).toFixed(1) }, svg('title', { text: label })));
      }
    });
    const summary = 'Deliveries per minute over the last hour: ' + tot.success + ' succeeded, ' + tot.failed +
      ' failed, ' + tot.dead + ' dead; busiest minute ' + maxCount + '.';
    d.p.chart.replaceChildren(svg('svg', { class: 'chart deliveries-chart', viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': summary },
      svg('title', { text: summary }), frame(W, H, pad, cmax, ''), bars));

    const lmax = niceMax(maxLat);
    const lph = LH - pad.t - pad.b; // the latency chart is shorter
    const line = (key) => {
      let path = '', pen = false;
      buckets.forEach((b, i) => {
        const v = b[key];
        if (v === null || v === undefined) { pen = false; return; }
        const x = pad.l + i * bw + bw / 2, y = pad.t + lph - (v / lmax) * lph;
        path += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1) + ' ';
        pen = true;
      });
      return path;
    };
    const dots = [];
    buckets.forEach((b, i) => {
      if (b.p50_ms === null) return;
      const x = pad.l + i * bw + bw / 2;
      dots.push(svg('circle', { class: 'dot', cx: x.toFixed(1), cy: (pad.t + lph - (b.p99_ms / lmax) * lph).toFixed(1), r: 2 },
        svg('title', { text: fmtMinute(b.minute) + ': p50 ' + b.p50_ms + ' ms, p99 ' + b.p99_ms + ' ms' })));
    });
    const last = buckets.filter((b) => b.p50_ms !== null).pop();
    const lsum = last ? 'Latency over the last hour, up to ' + maxLat + ' ms; latest minute p50 ' + last.p50_ms + ' ms, p99 ' + last.p99_ms + ' ms.'
      : 'No latency data in the last hour.';
    const p50 = line('p50_ms'), p99 = line('p99_ms');
    d.p.latency.replaceChildren(svg('svg', { class: 'chart latency-chart', viewBox: '0 0 ' + W + ' ' + LH, role: 'img', 'aria-label': lsum },
      svg('title', { text: lsum }), frame(W, LH, pad, lmax, ' ms'),
      p99 ? svg('path', { class: 'line-p99', d: p99 }) : null,
      p50 ? svg('path', { class: 'line-p50', d: p50 }) : null, dots));
  }

  // ---------- actions ----------

  function result(id, ok, msg) {
    const d = state.details.get(id);
    if (!d) { setStatus(msg); return; }
    d.p.result.className = 'result ' + (ok ? 'ok' : 'bad');
    d.p.result.textContent = msg;
  }

  async function play(id) {
    result(id, true, 'Sending a test event…');
    try {
      const r = await api('POST', '/webhooks/' + enc(id) + '/test');
      if (r.success) result(id, true, 'Test delivered: HTTP ' + r.status_code + ' in ' + r.duration_ms + ' ms' + (r.by ? ' by ' + r.by : '') + '.');
      else result(id, false, 'Test failed: ' + (r.status_code ? 'HTTP ' + r.status_code + ' ' : '') + (r.error || '') + ' (' + r.duration_ms + ' ms)');
    } catch (err) {
      result(id, false, 'Test not sent: ' + err.message);
    }
  }

  async function pauseResume(id) {
    const w = state.webhooks.find((x) => x.id === id);
    if (!w) return;
    try {
      await api('POST', '/webhooks/' + enc(id) + (w.enabled ? '/pause' : '/resume'));
      result(id, true, w.enabled ? 'Paused: new deliveries are held until you activate it.' : 'Activated: held deliveries go out now.');
      await refresh();
    } catch (err) {
      result(id, false, err.message);
    }
  }

  async function del(id) {
    const w = state.webhooks.find((x) => x.id === id);
    if (!w) return;
    const ok = await confirmDialog('Delete “' + w.name + '”?', 'Its queued deliveries will never be sent, and its history is removed. This cannot be undone.', 'Delete');
    if (!ok) return;
    try {
      await api('DELETE', '/webhooks/' + enc(id));
      state.open.delete(id);
      state.details.delete(id);
      setStatus('Deleted “' + w.name + '”.');
      await refresh();
      addButton.focus(); // the row that held the focus is gone
    } catch (err) {
      result(id, false, err.message);
    }
  }

  async function revealSecret(id) {
    const d = state.details.get(id);
    if (d.p.reveal.dataset.shown === '1') {
      hideSecret(d);
      return;
    }
    try {
      const s = await api('GET', '/webhooks/' + enc(id) + '/secret');
      showSecret(d, s);
    } catch (err) {
      result(id, false, err.message);
    }
  }

  function hideSecret(d) {
    d.p.secretValue.textContent = '••••••••••••••••';
    d.p.reveal.textContent = 'Reveal';
    d.p.reveal.dataset.shown = '0';
    d.p.secretNote.textContent = '';
  }

  function showSecret(d, s) {
    d.p.secretValue.textContent = s.secret;
    d.p.reveal.textContent = 'Hide';
    d.p.reveal.dataset.shown = '1';
    d.p.secretNote.textContent = s.previous_secret_expires_at
      ? 'The previous secret also signs deliveries until ' + new Date(s.previous_secret_expires_at).toLocaleString() + '.' : '';
  }

  async function copySecret(id) {
    try {
      const s = await api('GET', '/webhooks/' + enc(id) + '/secret');
      await navigator.clipboard.writeText(s.secret);
      result(id, true, 'Secret copied to the clipboard.');
    } catch (err) {
      const d = state.details.get(id);
      // No clipboard access (an insecure origin, or a refusal): show and select it.
      try {
        const s = await api('GET', '/webhooks/' + enc(id) + '/secret');
        showSecret(d, s);
        const range = document.createRange();
        range.selectNodeContents(d.p.secretValue);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        result(id, true, 'Secret selected: press Ctrl+C (⌘C) to copy it.');
      } catch (err2) {
        result(id, false, err2.message);
      }
    }
  }

  async function rotate(id) {
    const ok = await confirmDialog('Rotate the signing secret?', 'A new secret is generated. For 24 hours deliveries carry signatures by both the new and the old secret, so receivers can switch over.', 'Rotate');
    if (!ok) return;
    try {
      const s = await api('POST', '/webhooks/' + enc(id) + '/secret/rotate', {});
      showSecret(state.details.get(id), s);
      result(id, true, 'Secret rotated.');
    } catch (err) {
      result(id, false, err.message);
    }
  }

  // ---------- deliveries ----------

  async function loadDeliveries(id) {
    const d = state.details.get(id);
    if (!d) return;
    const st = d.p.dlStatus.value;
    const seq = (d.dlSeq = (d.dlSeq || 0) + 1);
    try {
      const page = await api('GET', '/webhooks/' + enc(id) + '/deliveries?limit=25' + (st ? '&status=' + enc(st) : ''));
      if (seq !== d.dlSeq) return; // a newer request (another filter, a later refresh) wins
      // Keyed rows: only a delivery that changed is redrawn, so a focused
      // View or Retry button stays put while the list refreshes.
      const empty = h('tr', {}, h('td', { colspan: '8', class: 'muted', text: 'No deliveries' + (st ? ' with status ' + st : '') + '.' }));
      reconcile(d.p.dlRows, d.dlRowCache, page.data, (x) => x.id, (x) => h('tr', { class: 'row', 'data-delivery': x.id, 'data-status': x.status },
        h('td', { 'data-label': 'Created' }, timeEl(x.created_at)),
        h('td', { 'data-label': 'Event', text: x.event_type }),
        h('td', { 'data-label': 'Status' }, badge(x.status)),
        h('td', { 'data-label': 'Attempts', class: 'num', text: String(x.attempts) }),
        h('td', { 'data-label': 'HTTP', class: 'num', text: x.last_status_code ? String(x.last_status_code) : '—' }),
        h('td', { 'data-label': 'Last error', text: x.last_error || '' }),
        h('td', { 'data-label': 'Delivered by', text: x.delivered_by || '' }),
        h('td', { 'data-label': 'Actions' },
          h('span', { class: 'actions' },
            h('button', { type: 'button', class: 'view', text: 'View', 'aria-label': 'View delivery ' + x.id, onclick: () => viewDelivery(id, x.id) }),
            x.status === 'dead' ? h('button', { type: 'button', class: 'retry', text: 'Retry', 'aria-label': 'Retry delivery ' + x.id, onclick: () => retry(id, x.id) }) : null)),
      ), empty);
    } catch (err) {
      result(id, false, 'Could not load deliveries: ' + err.message);
    }
  }

  async function viewDelivery(id, deliveryId) {
    const d = state.details.get(id);
    try {
      const x = await api('GET', '/deliveries/' + enc(deliveryId));
      const hist = (x.attempt_history || []).map((a) => h('tr', { class: 'row' },
        h('td', { 'data-label': '#', class: 'num', text: String(a.attempt) }),
        h('td', { 'data-label': 'Started' }, h('time', { datetime: a.started_at, title: exact(a.started_at), text: fmtTime(a.started_at) })),
        h('td', { 'data-label': 'Status' }, badge(a.status)),
        h('td', { 'data-label': 'HTTP', class: 'num', text: a.status_code ? String(a.status_code) : '—' }),
        h('td', { 'data-label': 'Duration', class: 'num', text: a.duration_ms + ' ms' }),
        h('td', { 'data-label': 'Size', class: 'num', text: fmtBytes(a.payload_size) }),
        h('td', { 'data-label': 'Error', text: a.error || '' }),
        // The receiver's answer, as text (never markup): why it said no.
        h('td', { 'data-label': 'Response' }, a.response
          ? h('details', { class: 'answer' }, h('summary', { text: (a.response_type || 'answer') + ' · ' + fmtBytes(a.response.length) }),
            h('pre', { class: 'payload', tabindex: '0', text: a.response }))
          : '—'),
        h('td', { 'data-label': 'By', text: a.by || '' })));
      d.p.dlView.replaceChildren(h('div', { class: 'card' },
        h('h3', {}, 'Delivery ', h('code', { text: x.id }), ' ', badge(x.status)),
        h('p', { class: 'muted small', text: 'Event ' + x.event_id + ' · ' + x.event_type + ' · ' + x.attempts + ' attempt(s)' +
          (x.next_retry_at ? ' · next retry ' + relTime(x.next_retry_at).replace(' ago', '') : '') + (x.dead_reason ? ' · ' + x.dead_reason : '') }),
        h('h3', { text: 'Payload' }),
        h('pre', { class: 'payload', tabindex: '0', text: x.payload ? JSON.stringify(x.payload, null, 2) : '(expired)' }),
        h('h3', { text: 'Attempt history' }),
        hist.length ? h('table', { class: 'small-table history cards' },
          h('thead', {}, h('tr', {}, ['#', 'Started', 'Status', 'HTTP', 'Duration', 'Size', 'Error', 'Response', 'By'].map((c) => h('th', { scope: 'col', text: c })))),
          h('tbody', {}, hist)) : h('p', { class: 'muted', text: 'No attempts yet.' }),
        x.status === 'dead' ? h('button', { type: 'button', class: 'retry', text: 'Retry this delivery', onclick: () => retry(id, x.id) }) : null,
      ));
    } catch (err) {
      result(id, false, 'Could not load the delivery: ' + err.message);
    }
  }

  async function retry(id, deliveryId) {
    try {
      await api('POST', '/deliveries/' + enc(deliveryId) + '/retry');
      result(id, true, 'Delivery requeued with a fresh attempt budget.');
      state.details.get(id).p.dlView.replaceChildren();
      await loadDeliveries(id);
    } catch (err) {
      result(id, false, 'Retry refused: ' + err.message);
    }
  }

  // ---------- replaying deliveries in bulk ----------

  // localInput is d as a datetime-local input's value (local time, minutes).
  function localInput(d) {
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }

  function replayBox(id, p) {
    p.rpSince = h('input', { type: 'datetime-local', id: 'rp-since-' + id, required: true });
    p.rpUntil = h('input', { type: 'datetime-local', id: 'rp-until-' + id, required: true });
    p.rpError = h('p', { class: 'form-error', role: 'alert', hidden: true });
    p.rpProgress = h('div', { class: 'replay-progress', role: 'status', 'aria-live': 'polite' });
    const status = (value, label, checked, title) => h('label', { title },
      h('input', { type: 'checkbox', name: 'replay-status', value, checked }), label);
    p.replay = h('section', { class: 'replay card', 'aria-label': 'Replay deliveries', hidden: true },
      h('h3', { text: 'Replay deliveries' }),
      h('p', { class: 'muted small', text: 'Requeue every dead delivery created in the range, with a fresh attempt budget and the same webhook-id. Failed deliveries are still being retried: they are counted, never sent twice.' }),
      h('form', { class: 'replay-form', onsubmit: (e) => { e.preventDefault(); startReplay(id); } },
        h('fieldset', { class: 'replay-statuses' }, h('legend', { text: 'Statuses' }),
          status('dead', 'dead', true), status('failed', 'failed (counted only)', false, 'Still retrying: counted as skipped')),
        h('div', { class: 'field' }, h('label', { for: 'rp-since-' + id, text: 'Created from' }), p.rpSince),
        h('div', { class: 'field' }, h('label', { for: 'rp-until-' + id, text: 'Created before' }), p.rpUntil),
        h('button', { type: 'submit', class: 'primary replay-start', text: 'Start replay' })),
      p.rpError, p.rpProgress);
    return p.replay;
  }

  async function openReplay(id) {
    const d = state.details.get(id);
    if (!d) return;
    const p = d.p;
    const button = d.tr.querySelector('.replay-open');
    if (!p.replay.hidden) {
      p.replay.hidden = true;
      button.setAttribute('aria-expanded', 'false');
      return;
    }
    const now = new Date();
    if (!p.rpSince.value) p.rpSince.value = localInput(new Date(now.getTime() - 24 * 3600 * 1000));
    if (!p.rpUntil.value) p.rpUntil.value = localInput(new Date(now.getTime() + 60 * 1000));
    p.replay.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    try {
      const page = await api('GET', '/replays?limit=1&webhook_id=' + enc(id));
      if (page.data.length) showReplay(id, page.data[0]);
    } catch (err) {
      result(id, false, 'Could not load the last replay: ' + err.message);
    }
  }

  async function startReplay(id) {
    const p = state.details.get(id).p;
    p.rpError.hidden = true;
    const statuses = [...p.replay.querySelectorAll('input[name=replay-status]:checked')].map((x) => x.value);
    const since = new Date(p.rpSince.value), until = new Date(p.rpUntil.value);
    if (!statuses.length || isNaN(since) || isNaN(until)) {
      p.rpError.textContent = 'Choose at least one status and both times.';
      p.rpError.hidden = false;
      return;
    }
    try {
      const r = await api('POST', '/webhooks/' + enc(id) + '/replay', { statuses, since: since.toISOString(), until: until.toISOString() });
      showReplay(id, r);
    } catch (err) {
      if (err.status === 409 && err.details.replay_id) {
        p.rpError.textContent = 'A replay of this webhook is already running: its progress is below.';
        p.rpError.hidden = false;
        try { showReplay(id, await api('GET', '/replays/' + enc(err.details.replay_id))); } catch (e) { /* shown above */ }
        return;
      }
      p.rpError.textContent = 'Replay refused: ' + err.message;
      p.rpError.hidden = false;
    }
  }

  // showReplay draws a replay's progress and, while it runs, polls it.
  function showReplay(id, r) {
    const d = state.details.get(id);
    if (!d) return;
    d.replayId = r.id;
    d.p.rpProgress.replaceChildren(
      h('p', {}, 'Replay ', h('span', { class: 'badge replay-state ' + r.state, text: r.state }), ' ',
        h('span', { class: 'replay-counts', text: r.matched + ' matched · ' + r.requeued + ' requeued · ' + r.skipped + ' skipped' })),
      r.error ? h('p', { class: 'form-error', text: r.error }) : null,
      r.state === 'running' ? h('button', { type: 'button', class: 'danger replay-cancel', text: 'Cancel replay', onclick: () => cancelReplay(id, r.id) }) : null);
    clearTimeout(d.replayTimer);
    if (r.state === 'running') {
      d.replayTimer = setTimeout(() => pollReplay(id, r.id), 1000);
    } else {
      loadDeliveries(id);
    }
  }

  async function pollReplay(id, replayId) {
    const d = state.details.get(id);
    if (!d || d.replayId !== replayId || !state.open.has(id)) return;
    try {
      showReplay(id, await api('GET', '/replays/' + enc(replayId)));
    } catch (err) {
      result(id, false, 'Could not follow the replay: ' + err.message);
      d.replayTimer = setTimeout(() => pollReplay(id, replayId), 5000);
    }
  }

  async function cancelReplay(id, replayId) {
    try {
      showReplay(id, await api('POST', '/replays/' + enc(replayId) + '/cancel'));
    } catch (err) {
      result(id, false, 'Cancel refused: ' + err.message);
      try { showReplay(id, await api('GET', '/replays/' + enc(replayId))); } catch (e) { /* shown above */ }
    }
  }

  // ---------- the add / edit form ----------

  const form = document.getElementById('webhook-form');
  const formSection = document.getElementById('webhook-form-section');
  const addButton = document.getElementById('add-webhook');

  function buildEventTypeOptions() {
    const box = document.getElementById('event-type-options');
    const families = new Map();
    for (const t of state.eventTypes) {
      if (t.type === 'webhook.test') continue; // sent by Play, never published
      const fam = t.type.split('.')[0];
      if (!families.has(fam)) families.set(fam, []);
      families.get(fam).push(t);
    }
    const opt = (value, label, cls, title) => h('label', { class: cls, title },
      h('input', { type: 'checkbox', name: 'event_types', value }), label);
    const items = [opt('*', 'All events (*)', 'family',
      "Every platform event type, including ones added later (Hermod's own hermod.* events only when chosen below)")];
    for (const [fam, types] of families) {
      items.push(fam === 'hermod'
        ? opt('hermod.*', 'hermod.* (operational)', 'family',
          "Hermod's own operational events: a webhook degraded or recovered, a delivery died, an agent inactive or back, a replay finished")
        : opt(fam + '.*', fam + '.*', 'family', 'Every ' + fam + ' event'));
      for (const t of types) items.push(opt(t.type, t.type, '', t.description));
    }
    box.replaceChildren(...items);
  }

  function clearErrors() {
    for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    const fe = document.getElementById('err-form');
    fe.hidden = true;
    fe.textContent = '';
  }

  function fieldError(field, message) {
    const base = String(field || '').split(/[.[]/)[0];
    const slot = form.querySelector('.field-error[data-field="' + CSS.escape(base) + '"]');
    if (!slot) {
      const fe = document.getElementById('err-form');
      fe.textContent = message;
      fe.hidden = false;
      return fe;
    }
    slot.textContent = message;
    if (base === 'event_types') {
      // A fieldset takes no focus: mark it, and send the focus to its first box.
      document.getElementById('f-event-types').setAttribute('aria-invalid', 'true');
      return form.querySelector('input[name=event_types]') || slot;
    }
    let input = base === 'filters' ? document.getElementById('f-filter-labels') : document.getElementById('f-' + base);
    if (base === 'format_options') input = formatOptionsInput(String(field));
    if (input) input.setAttribute('aria-invalid', 'true');
    if (base === 'target_labels' || base === 'filters' || base === 'filter' || base === 'max_retries' || base === 'timeout_seconds' ||
      base === 'auth_header' || base === 'description') document.getElementById('advanced').open = true;
    return input || slot;
  }

  function openForm(w) {
    if (!formSection.contains(document.activeElement)) state.opener = document.activeElement;
    if (w && state.eventTypes.length === 0) {
      showError(new Error('The event catalogue did not load, so the form cannot show this webhook\'s event types: reload the page.'));
      return;
    }
    state.editing = w || null;
    form.reset();
    // Event types a webhook has but the catalogue no longer lists keep a box.
    for (const el of form.querySelectorAll('.extra-type')) el.remove();
    if (w) {
      const box = document.getElementById('event-type-options');
      const known = new Set([...form.querySelectorAll('input[name=event_types]')].map((c) => c.value));
      for (const t of w.event_types) {
        if (!known.has(t)) box.append(h('label', { class: 'extra-type', title: 'Not in the catalogue any more' },
          h('input', { type: 'checkbox', name: 'event_types', value: t }), t + ' (not in the catalogue)'));
      }
    }
    clearErrors();
    const editing = !!w;
    document.getElementById('form-title').textContent = editing ? 'Edit “' + w.name + '”' : 'Add webhook';
    document.getElementById('form-submit').textContent = editing ? 'Save changes' : 'Create webhook';
    document.getElementById('secret-field').hidden = editing;
    const url = document.getElementById('f-url');
    url.placeholder = editing ? 'unchanged: ' + w.url_redacted + '/…' : 'https://example.com/hooks';
    url.required = !editing;
    document.getElementById('advanced').open = false;
    if (editing) {
      form.elements.name.value = w.name;
      form.elements.description.value = w.description || '';
      form.elements.target_labels.value = (w.target_labels || []).join(', ');
      form.elements.max_retries.value = w.max_retries;
      form.elements.timeout_seconds.value = w.timeout_seconds;
      const f = w.filters || {};
      form.elements.filter_agent_id.value = f.agent_id || '';
      form.elements.filter_stack_id.value = f.stack_id || '';
      form.elements.filter_labels.value = Object.entries(f.labels || {}).map(([k, v]) => k + '=' + v).join(', ');
      form.elements.filter.value = w.filter || '';
      for (const cb of form.querySelectorAll('input[name=event_types]')) cb.checked = w.event_types.includes(cb.value);
      form.elements.format.value = w.format || 'standard';
      const o = Object.assign({}, w.format_options || {});
      form.elements.template.value = o.template || '';
      delete o.template;
      form.elements.format_options.value = Object.keys(o).length ? JSON.stringify(o) : '';
      form.elements.routing_key.placeholder = w.has_routing_key ? 'unchanged (stored encrypted)' : '';
    }
    syncFormat();
    formSection.hidden = false;
    addButton.setAttribute('aria-expanded', 'true');
    form.elements.name.focus();
  }

  // closeForm hides the form; with restore, the focus goes back to the
  // button that opened it (or Add webhook when that one is gone).
  function closeForm(restore) {
    formSection.hidden = true;
    addButton.setAttribute('aria-expanded', 'false');
    state.editing = null;
    if (restore) {
      const o = state.opener;
      (o && document.body.contains(o) && o !== document.body ? o : addButton).focus();
    }
  }

  // changedOnly keeps, for an edit, only the fields that differ from the
  // webhook as it was when the form opened: someone else's change to another
  // field is not overwritten.
  function changedOnly(body, w) {
    const norm = {
      name: w.name, description: w.description || '', event_types: [...w.event_types].sort(),
      target_labels: w.target_labels && w.target_labels.length ? [...w.target_labels].sort() : null,
      filters: w.filters || null, filter: w.filter || null, max_retries: w.max_retries, timeout_seconds: w.timeout_seconds,
      format: w.format || 'standard', format_options: w.format_options || null,
    };
    const out = {};
    for (const [k, v] of Object.entries(body)) {
      if (!(k in norm)) { out[k] = v; continue; } // url, auth_header: only sent when typed
      const cmp = Array.isArray(v) ? [...v].sort() : v;
      if (JSON.stringify(cmp) !== JSON.stringify(norm[k])) out[k] = v;
    }
    return out;
  }

  // The format's fields: which show, and what they send.
  const formatEl = document.getElementById('f-format');
  function syncFormat() {
    const f = formatEl.value;
    document.getElementById('routing-key-field').hidden = f !== 'pagerduty';
    document.getElementById('template-field').hidden = f !== 'template';
    document.getElementById('options-field').hidden = !['pagerduty', 'datadog', 'alertmanager'].includes(f);
    document.getElementById('preview-field').hidden = f === 'standard';
    document.getElementById('f-preview-out').textContent = '';
  }
  formatEl.addEventListener('change', syncFormat);

  function formatOptionsInput(field) {
    if (field.endsWith('routing_key')) return document.getElementById('f-routing_key');
    return document.getElementById(formatEl.value === 'template' ? 'f-template' : 'f-format_options');
  }

  // formatBody is {format, format_options} as the form says; a routing key
  // left empty is not sent (the stored one is kept).
  function formatBody(editing) {
    const el = form.elements;
    const format = el.format.value;
    if (format === 'standard') return editing ? { format, format_options: null } : {};
    let opts = {};
    const raw = el.format_options.value.trim();
    if (raw && !document.getElementById('options-field').hidden) {
      try {
        opts = JSON.parse(raw);
      } catch (e) {
        throw Object.assign(new Error('format options must be a JSON object: ' + e.message), { field: 'format_options' });
      }
      if (!opts || typeof opts !== 'object' || Array.isArray(opts)) {
        throw Object.assign(new Error('format options must be a JSON object'), { field: 'format_options' });
      }
    }
    if (format === 'template') opts = { template: el.template.value };
    if (format === 'pagerduty' && el.routing_key.value.trim()) opts.routing_key = el.routing_key.value.trim();
    // PagerDuty's options stay an object when editing without a typed key:
    // {} keeps the stored key, null would clear it.
    const keep = format === 'pagerduty' && editing;
    return { format, format_options: Object.keys(opts).length || keep ? opts : null };
  }

  // Preview renders a sample event in the form's format, sending nothing.
  const previewOut = document.getElementById('f-preview-out');
  let previewSeq = 0;
  async function preview() {
    const seq = ++previewSeq;
    let webhook;
    try {
      webhook = formatBody(false);
    } catch (err) {
      previewOut.textContent = err.message;
      return;
    }
    if (webhook.format === 'pagerduty' && !(webhook.format_options || {}).routing_key) {
      // The stored key is never sent back: preview with a stand-in.
      webhook.format_options = Object.assign({}, webhook.format_options, { routing_key: 'PREVIEW0000000000000000000000000' });
    }
    const types = [...form.querySelectorAll('input[name=event_types]:checked')].map((c) => c.value);
    webhook.event_types = types.length ? types : ['*'];
    // The answer's matches says whether the sample event passes the typed
    // filter expression too.
    const expr = form.elements.filter.value.trim();
    if (expr) webhook.filter = expr;
    try {
      const r = await api('POST', '/webhooks/preview', { webhook });
      if (seq === previewSeq) previewOut.textContent = JSON.stringify(r.body, null, 2);
    } catch (err) {
      if (seq === previewSeq) previewOut.textContent = err.message;
    }
  }
  document.getElementById('f-preview').addEventListener('click', preview);
  let previewTimer = null;
  document.getElementById('f-template').addEventListener('input', () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, 400); // live, once typing pauses
  });

  function formBody() {
    const el = form.elements;
    const editing = !!state.editing;
    const body = { name: el.name.value.trim() };
    const url = el.url.value.trim();
    if (url || !editing) body.url = url;
    body.event_types = [...form.querySelectorAll('input[name=event_types]:checked')].map((c) => c.value);
    const desc = el.description.value.trim();
    if (desc || editing) body.description = desc;
    if (!editing && el.secret.value.trim()) body.secret = el.secret.value.trim();
    const auth = el.auth_header.value;
    if (document.getElementById('f-clear-auth').checked) body.auth_header = null;
    else if (auth) body.auth_header = auth;
    const labels = el.target_labels.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (labels.length) body.target_labels = labels;
    else if (editing) body.target_labels = null;
    const filters = {};
    if (el.filter_agent_id.value.trim()) filters.agent_id = el.filter_agent_id.value.trim();
    if (el.filter_stack_id.value.trim()) filters.stack_id = el.filter_stack_id.value.trim();
    const fl = el.filter_labels.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (fl.length) {
      filters.labels = {};
      for (const pair of fl) {
        const i = pair.indexOf('=');
        if (i < 1) throw Object.assign(new Error('write event labels as key=value, separated by commas'), { field: 'filters' });
        filters.labels[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
      }
    }
    if (Object.keys(filters).length) body.filters = filters;
    else if (editing) body.filters = null;
    const expr = el.filter.value.trim();
    if (expr) body.filter = expr;
    else if (editing) body.filter = null;
    Object.assign(body, formatBody(editing));
    for (const k of ['max_retries', 'timeout_seconds']) {
      const v = el[k].value.trim();
      if (v !== '') {
        const n = Number(v);
        if (!Number.isInteger(n)) throw Object.assign(new Error('must be a whole number'), { field: k });
        body[k] = n;
      }
    }
    return body;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors();
    let body;
    try {
      body = formBody();
    } catch (err) {
      fieldError(err.field, err.message).focus();
      return;
    }
    const submit = document.getElementById('form-submit');
    const editing = state.editing;
    if (editing) {
      body = changedOnly(body, editing);
      if (Object.keys(body).length === 0) {
        closeForm(true);
        setStatus('No changes to save.');
        return;
      }
    }
    submit.disabled = true;
    try {
      const w = editing ? await api('PUT', '/webhooks/' + enc(editing.id), body) : await api('POST', '/webhooks', body);
      closeForm(false);
      setStatus((editing ? 'Saved “' : 'Created “') + w.name + '”.');
      await refresh();
      const b = document.querySelector('#row-' + CSS.escape(w.id) + ' .expander');
      if (b) b.focus();
    } catch (err) {
      if (err.status === 422 || err.status === 400) {
        const target = fieldError(err.details.field, err.message);
        if (target && target.focus) target.focus();
      } else {
        const fe = document.getElementById('err-form');
        fe.textContent = err.message;
        fe.hidden = false;
      }
    } finally {
      submit.disabled = false;
    }
  });

  // Editing a field clears its error.
  form.addEventListener('input', (ev) => {
    const field = ev.target.closest('.field, fieldset');
    if (!field) return;
    for (const el of field.querySelectorAll('.field-error')) el.textContent = '';
    field.querySelector('[aria-invalid]')?.removeAttribute('aria-invalid');
    if (field.getAttribute('aria-invalid')) field.removeAttribute('aria-invalid');
  });

  addButton.addEventListener('click', () => (formSection.hidden || state.editing ? openForm(null) : closeForm(true)));
  document.getElementById('form-cancel').addEventListener('click', () => closeForm(true));
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && !formSection.hidden && !document.getElementById('confirm').open) closeForm(true);
  });

  // ---------- start ----------

  async function start() {
    try {
      state.eventTypes = (await api('GET', '/event-types')).data;
      buildEventTypeOptions();
    } catch (err) {
      showError(new Error('Could not load the event catalogue: ' + err.message));
    }
    await refresh();
    setInterval(refresh, REFRESH_MS);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
    // Relative times move on between refreshes too.
    setInterval(() => {
      for (const t of document.querySelectorAll('time[datetime]')) {
        if (t.textContent.includes('ago') || t.textContent === 'just now') t.textContent = relTime(t.getAttribute('datetime'));
      }
    }, 15000);
  }
  start();
})();
