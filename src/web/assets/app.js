// driftwatch live page: monitor list, charts per result column, drift heat map, alerts.
// Data: GET /api/monitors (status, result shape), /api/monitors/{name}/results (history),
// /api/events (server-sent events: new rows), /api/baselines/{name}/{feature} (bins).
// Stays light with many features: bounded windows per monitor, redraws batched on
// requestAnimationFrame at most every REDRAW_MS, charts of at most CHART_POINTS points, the
// heat map written into one pixel buffer.
(() => {
  'use strict';

  const MAX_WINDOWS = 500;      // distinct times kept per monitor (points per series)
  const MAX_ALERTS = 200;       // alert rows listed
  const REDRAW_MS = 250;        // least time between two redraws (more when large)
  const CHART_POINTS = 20000;   // most points per chart: with many series, the recent windows
  const POLL_MS = 2000;         // monitor list refresh
  const DRIFT = '#d62728', OK = '#cfe6cf', NONE = '#eceef2';

  const monitors = new Map();   // name -> monitor state
  const alerts = [];            // newest first: {monitor, t, text}
  let alertsDirty = false;
  let frame = 0, lastDraw = 0;
  let source = null;

  const $ = (sel, root = document) => root.querySelector(sel);
  const el = (tag, attrs = {}, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const color = (i) => `hsl(${(i * 137.508) % 360}, 62%, 44%)`;
  const fmtTime = (ms) => ms == null ? '—' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
  const fmtLag = (ms) => ms == null ? '—' : (Math.abs(ms) < 10000 ? (ms / 1000).toFixed(1) : Math.round(ms / 1000)) + ' s';
  const fmtNum = (v) => v == null ? '—' : (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v));

  async function getJSON(url) {
    const r = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (r.status === 401) { location.href = '/login'; throw new Error('not logged in'); }
    if (!r.ok) throw new Error(`${url}: ${r.status} ${(await r.text()).slice(0, 200)}`);
    return r.json();
  }

  // ---- result rows -------------------------------------------------------------------

  function timeOf(m, row) {
    const t = m.shape.time;
    if (t.kind === 'window') return row[t.end];
    if (t.kind === 'event') return row[t.column];
    return (m.seq = (m.seq || 0) + 1);
  }
  function groupOf(m, row) {
    return m.shape.keys.length ? m.shape.keys.map((k) => row[k] ?? '∅').join(' · ') : 'all';
  }
  function flagOf(m, row) {
    const f = m.shape.flag;
    if (!f) return null;
    const v = row[f.column];
    if (v == null) return null;
    return f.field ? (v[f.field] ?? null) : v;
  }

  function addRows(m, rows) {
    if (!m.shape) { m.pending.push(...rows); refreshSoon(); return; }
    for (const row of rows) {
      const t = timeOf(m, row);
      if (t == null) continue;
      const g = groupOf(m, row);
      let s = m.series.get(g);
      if (!s) { s = new Map(); m.series.set(g, s); m.groupsChanged = true; }
      s.set(t, row);
      if (!m.times.has(t)) { m.times.add(t); m.sorted = null; }
      if (m.info.alerts && !m.seen.has(`${t}|${g}|${idOf(m, row)}`)) {
        m.seen.add(`${t}|${g}|${idOf(m, row)}`);
        addAlert(m, t, row);
      }
    }
    trim(m);
    m.dirty = true;
    schedule();
  }
  const idOf = (m, row) => m.shape.ids.map((k) => row[k]).join('|');

  function sortedTimes(m) {
    if (!m.sorted) m.sorted = Array.from(m.times).sort((a, b) => a - b);
    return m.sorted;
  }
  function trim(m) {
    if (m.times.size <= MAX_WINDOWS) return;
    const ts = sortedTimes(m);
    const drop = ts.slice(0, ts.length - MAX_WINDOWS);
    for (const t of drop) {
      m.times.delete(t);
      for (const s of m.series.values()) s.delete(t);
    }
    m.sorted = ts.slice(ts.length - MAX_WINDOWS);
    if (m.seen.size > 4 * MAX_ALERTS) m.seen.clear();
  }

  function addAlert(m, t, row) {
    const parts = [];
    for (const k of [...m.shape.ids, ...m.shape.keys]) parts.push(`${k}=${row[k]}`);
    for (const k of m.shape.measures) parts.push(`${k}=${fmtNum(row[k])}`);
    alerts.unshift({ monitor: m.name, t, text: parts.join('  ') });
    if (alerts.length > MAX_ALERTS) alerts.length = MAX_ALERTS;
    alertsDirty = true;
  }

  // ---- monitor list ------------------------------------------------------------------

  async function refresh() {
    let data;
    try { data = await getJSON('/api/monitors'); } catch (e) { console.warn(e); return; }
    const body = $('#monitors tbody');
    const seen = new Set();
    for (const info of data.monitors) {
      seen.add(info.name);
      let m = monitors.get(info.name);
      if (!m) m = createMonitor(info);
      m.info = info;
      if (!m.shape && info.shape) {
        m.shape = info.shape;
        buildPanel(m);
        loadHistory(m);
        const pending = m.pending; m.pending = [];
        addRows(m, pending);
      }
      let tr = body.querySelector(`tr[data-name="${CSS.escape(info.name)}"]`);
      if (!tr) { tr = el('tr', { 'data-name': info.name }); body.appendChild(tr); }
      const cells = [
        [info.name, ''], [info.status, `status-${info.status}`],
        [fmtTime(info.watermark_ms), ''], [fmtLag(info.lag_ms), 'num'],
        [fmtNum(info.rows_in), 'num'], [fmtNum(info.rows_out), 'num'],
        [fmtNum(info.late_rows), 'num'], [fmtNum(info.windows), 'num'],
        [fmtTime(info.last_window_end_ms), ''],
      ];
      tr.replaceChildren(...cells.map(([text, cls]) => {
        const td = el('td', cls ? { class: cls } : {}, text);
        if (cls.startsWith('status') && info.error) td.title = info.error;
        return td;
      }));
      if (m.panel) $('.meta', m.panel).textContent = describe(m);
    }
    for (const tr of [...body.querySelectorAll('tr')]) if (!seen.has(tr.dataset.name)) tr.remove();
  }
  let refreshTimer = 0;
  function refreshSoon() {
    if (!refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = 0; refresh(); }, 300);
  }

  function createMonitor(info) {
    const m = {
      name: info.name, info, shape: null, series: new Map(), times: new Set(), sorted: null,
      pending: [], seen: new Set(), charts: new Map(), dirty: false, groupsChanged: false,
      panel: null, heat: null, detail: null,
    };
    monitors.set(info.name, m);
    return m;
  }

  function describe(m) {
    const s = m.shape, i = m.info;
    const time = s.time.kind === 'window' ? 'windowed' : s.time.kind === 'event' ? 'per row' : 'untimed';
    const bits = [`source ${i.source}`, time];
    if (s.keys.length) bits.push(`by ${s.keys.join(', ')}`);
    if (i.baseline) bits.push(`baseline ${i.baseline}`);
    if (i.alerts) bits.push('alert rows');
    return bits.join(' · ');
  }

  async function loadHistory(m) {
    if (!m.shape) return;
    try {
      const data = await getJSON(`/api/monitors/${encodeURIComponent(m.name)}/results?limit=${MAX_WINDOWS * Math.max(1, m.series.size || 1)}`);
      addRows(m, data.rows);
    } catch (e) { console.warn(e); }
  }

  // ---- panels and charts -------------------------------------------------------------

  function buildPanel(m) {
    const node = $('#panel').content.firstElementChild.cloneNode(true);
    node.dataset.monitor = m.name;
    $('.title', node).textContent = m.name;
    $('.meta', node).textContent = describe(m);
    $('#panels').appendChild(node);
    m.panel = node;
    if (m.shape.feature && m.shape.flag && m.shape.time.kind === 'window') {
      $('.heat', node).hidden = false;
      m.heat = { canvas: $('.heatmap', node), layout: null };
      m.heat.canvas.addEventListener('click', (ev) => onHeatClick(m, ev));
    }
    if (m.info.alerts) $('#alerts-section').hidden = false;
  }

  function groupsOf(m) { return Array.from(m.series.keys()).sort(); }

  function chartData(m, measure, groups, ts) {
    const xs = ts.map((t) => t / 1000);
    const data = [xs];
    for (const g of groups) {
      const s = m.series.get(g);
      data.push(ts.map((t) => {
        const row = s.get(t);
        const v = row ? row[measure] : null;
        return typeof v === 'number' ? v : null;
      }));
    }
    return data;
  }

  function drawCharts(m) {
    const box = $('.charts', m.panel);
    const groups = groupsOf(m);
    // Stroking 300 series × 500 windows blocks the page for most of a second per redraw.
    const all = sortedTimes(m);
    const ts = all.slice(Math.max(0, all.length - Math.max(2, Math.floor(CHART_POINTS / Math.max(1, groups.length)))));
    const pointsOnly = m.shape.time.kind === 'event';
    for (const measure of m.shape.measures) {
      let c = m.charts.get(measure);
      const data = chartData(m, measure, groups, ts);
      if (c && (m.groupsChanged || c.groups !== groups.length)) { c.plot.destroy(); c.node.remove(); c = null; }
      if (!c) {
        const node = el('div', { class: 'chart', 'data-measure': measure });
        node.appendChild(el('h4', {}, measure));
        box.appendChild(node);
        const width = Math.max(320, (node.clientWidth || 420) - 4);
        const opts = {
          width, height: 180,
          scales: { x: { time: true } },
          legend: { show: groups.length <= 12 },
          cursor: { drag: { x: false, y: false } },
          series: [{}, ...groups.map((g, i) => ({
            label: g, stroke: color(i), width: 1.5,
            points: { show: pointsOnly, size: 5, fill: color(i) },
            paths: pointsOnly ? () => null : undefined,
          }))],
        };
        const plot = new uPlot(opts, data, node);
        c = { plot, node, groups: groups.length };
        m.charts.set(measure, c);
      } else {
        c.plot.setData(data);
      }
      c.points = data.slice(1).reduce((n, ys) => n + ys.filter((v) => v != null).length, 0);
    }
    m.groupsChanged = false;
  }

  // ---- heat map ----------------------------------------------------------------------

  function heatLayout(m) {
    const features = groupsOf(m);
    const all = sortedTimes(m);
    const canvas = m.heat.canvas;
    const avail = Math.max(200, (canvas.parentElement.clientWidth || 800) - 8);
    const ctx = canvas.getContext('2d');
    ctx.font = '12px system-ui, sans-serif';
    const labelW = features.length > 80 ? 0 : Math.ceil(Math.max(40, ...features.map((f) => ctx.measureText(f).width))) + 8;
    const ch = features.length > 80 ? 3 : features.length > 30 ? 8 : 16;
    const cw = Math.max(3, Math.min(20, Math.floor((avail - labelW) / Math.max(1, all.length))));
    const cols = Math.min(all.length, Math.floor((avail - labelW) / cw));
    const windows = all.slice(all.length - cols);
    return { features, windows, labelW, cw, ch, width: labelW + cols * cw, height: features.length * ch };
  }

  // Cell colours as 32-bit pixels (RGBA bytes in memory order) for the heat map's buffer.
  const LITTLE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const pixelOf = (hex) => {
    const n = parseInt(hex.slice(1), 16), r = n >> 16, g = (n >> 8) & 255, b = n & 255;
    return (LITTLE ? (255 << 24) | (b << 16) | (g << 8) | r : (r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
  };
  const DRIFT_PX = pixelOf(DRIFT), OK_PX = pixelOf(OK), NONE_PX = pixelOf(NONE);

  // The cells are written into one pixel buffer (kept while the size stays) and put at once:
  // a fillRect per cell costs seconds with 300 features × 500 windows.
  function drawHeat(m) {
    const L = m.heat.layout = heatLayout(m);
    const canvas = m.heat.canvas, dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(L.width * dpr)), H = Math.max(1, Math.round(L.height * dpr));
    if (canvas.width !== W || canvas.height !== H) {
      canvas.style.width = `${L.width}px`; canvas.style.height = `${L.height}px`;
      canvas.width = W; canvas.height = H;
    }
    const ctx = canvas.getContext('2d');
    let img = m.heat.image;
    if (!img || img.width !== W || img.height !== H) img = m.heat.image = ctx.createImageData(W, H);
    const px = new Uint32Array(img.data.buffer);
    px.fill(0);
    const gap = L.cw > 4 ? 1 : 0, vgap = L.ch > 4 ? 1 : 0;
    const xs = L.windows.map((_, i) => [Math.round((L.labelW + i * L.cw) * dpr),
      Math.round((L.labelW + (i + 1) * L.cw - gap) * dpr)]);
    L.features.forEach((f, r) => {
      const s = m.series.get(f);
      const y0 = Math.round(r * L.ch * dpr), y1 = Math.min(H, Math.round(((r + 1) * L.ch - vgap) * dpr));
      L.windows.forEach((t, i) => {
        const row = s.get(t);
        const flag = row ? flagOf(m, row) : null;
        const c = flag === true ? DRIFT_PX : flag === false ? OK_PX : NONE_PX;
        const [x0, x1] = xs[i];
        for (let y = y0; y < y1; y++) px.fill(c, y * W + x0, y * W + Math.min(W, x1));
      });
    });
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.putImageData(img, 0, 0);
    if (!L.labelW) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = '12px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.fillStyle = '#1d2330';
    L.features.forEach((f, r) => ctx.fillText(f, 2, r * L.ch + L.ch / 2));
  }

  function cellRect(m, feature, i) {
    const L = m.heat && m.heat.layout;
    if (!L) return null;
    const r = L.features.indexOf(feature);
    const c = i < 0 ? L.windows.length + i : i;
    if (r < 0 || c < 0 || c >= L.windows.length) return null;
    return { x: L.labelW + c * L.cw, y: r * L.ch, w: L.cw, h: L.ch, t: L.windows[c] };
  }

  function onHeatClick(m, ev) {
    const L = m.heat.layout;
    if (!L) return;
    const rect = m.heat.canvas.getBoundingClientRect();
    const x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    const c = Math.floor((x - L.labelW) / L.cw), r = Math.floor(y / L.ch);
    if (c < 0 || c >= L.windows.length || r < 0 || r >= L.features.length) return;
    showDetail(m, L.features[r], L.windows[c]);
  }

  const baselineCache = new Map();
  async function baselineBins(name, feature) {
    const key = `${name}/${feature}`;
    if (!baselineCache.has(key)) {
      baselineCache.set(key, getJSON(`/api/baselines/${encodeURIComponent(name)}/${encodeURIComponent(feature)}`)
        .catch((e) => { baselineCache.delete(key); throw e; }));
    }
    return baselineCache.get(key);
  }

  async function showDetail(m, feature, t) {
    const row = m.series.get(feature)?.get(t);
    const box = $('.detail', m.panel);
    box.hidden = false;
    const start = m.shape.time.kind === 'window' && row ? row[m.shape.time.start] : null;
    $('.detail-title', box).textContent = `${feature} · window ${fmtTime(start)} – ${fmtTime(t)}` +
      (row && flagOf(m, row) ? ' · drifted' : '');
    const values = $('.values tbody', box);
    values.replaceChildren(...(row ? m.shape.measures : []).map((k) =>
      { const tr = el('tr'); tr.append(el('th', {}, k), el('td', { class: 'num' }, fmtNum(row[k]))); return tr; }));
    const detail = m.detail = { feature, t, baseline: null, window: null };
    const winCounts = row && m.shape.histogram ? row[m.shape.histogram] : null;
    let base = null;
    if (m.info.baseline) {
      try { base = await baselineBins(m.info.baseline, feature); } catch (e) { console.warn(e); }
    }
    if (m.detail !== detail) return;
    detail.baseline = base && base.bin_counts ? base.bin_counts : null;
    detail.window = Array.isArray(winCounts) ? winCounts : null;
    const edges = base && base.bin_edges ? base.bin_edges : null;
    const share = (xs) => { const n = xs.reduce((a, b) => a + b, 0) || 1; return xs.map((x) => x / n); };
    const b = detail.baseline ? share(detail.baseline) : null;
    const w = detail.window ? share(detail.window) : null;
    const top = Math.max(1e-9, ...(b || []), ...(w || []));
    drawHist($('.hist-baseline', box), b, edges, top, '#5b7bb5', 'no baseline bins');
    drawHist($('.hist-window', box), w, edges, top, DRIFT, m.shape.histogram ? 'no counts in this window' : 'add histogram(value, baseline, feature) to the monitor');
  }

  function drawHist(canvas, shares, edges, top, fill, empty) {
    const ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#687083';
    if (!shares || !shares.length) { ctx.fillText(empty, 8, H / 2); canvas.dataset.bars = '0'; return; }
    const pad = 18, bw = (W - 2 * pad) / shares.length;
    ctx.fillStyle = fill;
    shares.forEach((s, i) => {
      const h = (H - 2 * pad) * (s / top);
      ctx.fillRect(pad + i * bw, H - pad - h, Math.max(1, bw - 1), h);
    });
    ctx.fillStyle = '#687083';
    if (edges && edges.length) {
      ctx.fillText(fmtNum(edges[0]), pad, H - 4);
      const last = fmtNum(edges[edges.length - 1]);
      ctx.fillText(last, W - pad - ctx.measureText(last).width, H - 4);
    }
    canvas.dataset.bars = String(shares.filter((s) => s > 0).length);
  }

  // ---- alerts ------------------------------------------------------------------------

  function drawAlerts() {
    const table = $('#alerts');
    $('thead', table).replaceChildren((() => { const tr = el('tr'); tr.append(el('th', {}, 'monitor'), el('th', {}, 'time'), el('th', {}, 'row')); return tr; })());
    $('tbody', table).replaceChildren(...alerts.map((a) => {
      const tr = el('tr');
      tr.append(el('td', {}, a.monitor), el('td', {}, fmtTime(a.t)), el('td', {}, a.text));
      return tr;
    }));
    alertsDirty = false;
  }

  // ---- drawing -----------------------------------------------------------------------

  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(draw);
  }
  function draw(now) {
    frame = 0;
    let size = 0;
    for (const m of monitors.values()) size += m.series.size * m.times.size;
    const wait = size > 20000 ? 4 * REDRAW_MS : REDRAW_MS;
    if (now - lastDraw < wait) { setTimeout(schedule, wait - (now - lastDraw)); return; }
    lastDraw = now;
    for (const m of monitors.values()) {
      if (!m.dirty || !m.panel) continue;
      m.dirty = false;
      drawCharts(m);
      if (m.heat) drawHeat(m);
    }
    if (alertsDirty) drawAlerts();
  }

  // ---- live stream -------------------------------------------------------------------

  function connect() {
    const conn = $('#conn');
    source = new EventSource('/api/events');
    source.addEventListener('hello', () => {
      conn.textContent = 'live'; conn.className = 'conn live';
      for (const m of monitors.values()) loadHistory(m);
    });
    source.addEventListener('result', (ev) => {
      const msg = JSON.parse(ev.data);
      let m = monitors.get(msg.monitor);
      if (!m) { m = createMonitor({ name: msg.monitor, source: '', alerts: false }); refreshSoon(); }
      addRows(m, msg.rows);
    });
    source.addEventListener('lagged', () => { for (const m of monitors.values()) loadHistory(m); });
    source.onerror = () => {
      conn.textContent = 'reconnecting…'; conn.className = 'conn down';
      // A refused stream (logged out) is not retried by the browser: check the login.
      if (source.readyState === EventSource.CLOSED) setTimeout(() => { refresh(); connect(); }, 2000);
    };
  }

  // ---- what tests and scripts may read -----------------------------------------------

  function heatMonitor(name) {
    if (name) return monitors.get(name);
    for (const m of monitors.values()) if (m.heat) return m;
    return undefined;
  }
  window.driftwatch = {
    monitors: () => Array.from(monitors.keys()),
    pointCount: (name) => { const m = monitors.get(name); return m ? m.times.size : 0; },
    charts: (name) => {
      const m = monitors.get(name);
      return m ? Array.from(m.charts, ([measure, c]) => ({ measure, points: c.points || 0, series: c.groups })) : [];
    },
    alerts: () => alerts.slice(),
    heatmap: {
      canvas: (name) => heatMonitor(name)?.heat?.canvas ?? null,
      cellRect: (feature, i, name) => { const m = heatMonitor(name); return m ? cellRect(m, feature, i) : null; },
      state: (name) => {
        const m = heatMonitor(name);
        const L = m && m.heat && m.heat.layout;
        if (!L) return null;
        const drifted = {};
        for (const f of L.features) drifted[f] = L.windows.map((t) => { const r = m.series.get(f).get(t); return r ? flagOf(m, r) : null; });
        return { monitor: m.name, features: L.features, windows: L.windows, drifted };
      },
      detail: (name) => heatMonitor(name)?.detail ?? null,
    },
  };

  refresh().then(connect);
  setInterval(refresh, POLL_MS);
})();
