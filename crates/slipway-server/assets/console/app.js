// Slipway console: deployments, their live figures and rollouts, and tokens.
// Vanilla JavaScript over Slipway's public HTTP API, called with the browser's
// session cookie (same origin). No token is ever stored in the browser.
// Panels whose API does not exist on this server (404 ENDPOINT_NOT_FOUND) are
// left out.
'use strict';

(function () {
  const app = document.getElementById('app');
  const POLL_MS = 5000;
  let pollTimer = null;
  let renderSeq = 0;

  // ------------------------------------------------------------------ DOM helpers
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const SVG_NS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function badge(text, kind) {
    const k = String(kind || text || '').toLowerCase().replace(/[^a-z_]/g, '_');
    return h('span', { class: 'badge ' + k }, text);
  }
  function panel(title, hint, ...body) {
    return h('section', { class: 'panel' },
      h('h2', {}, title, hint ? h('span', { class: 'hint' }, hint) : null), ...body);
  }
  function empty(title, text, code) {
    return h('div', { class: 'empty' }, h('h3', {}, title), h('div', {}, text), code ? h('pre', {}, code) : null);
  }
  function kv(pairs) {
    return h('dl', { class: 'kv' }, pairs.filter((p) => p[1] !== undefined && p[1] !== null && p[1] !== '')
      .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  }
  function table(columns, rows, opts) {
    return h('div', { class: 'table-wrap' }, h('table', opts || {},
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null }, c.title)))),
      h('tbody', {}, rows.map((r) => h('tr', r.attrs || {}, columns.map((c) => {
        const v = c.value(r);
        return h('td', { class: c.num ? 'num' : (c.cls ? c.cls(r) : null) }, v === undefined || v === null ? '–' : v);
      }))))));
  }

  // ------------------------------------------------------------------ formatting
  function fmtTime(ms) {
    if (!ms) return '–';
    const d = new Date(Number(ms));
    return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }
  function fmtNum(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return '–';
    if (typeof x !== 'number') return String(x);
    if (Number.isInteger(x) && Math.abs(x) < 1e6) return x.toLocaleString();
    return x.toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 3 : digits });
  }
  function fmtRate(x) { return x === null || x === undefined ? '–' : (x < 10 ? x.toFixed(2) : x.toFixed(1)) + '/s'; }
  function fmtPct(x) { return x === null || x === undefined ? '–' : (x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1) + '%'; }
  function fmtMs(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    const ms = seconds * 1000;
    return (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + ' ms';
  }
  function fmtValue(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'number') return fmtNum(v);
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v === 'string') return v;
    if (Array.isArray(v) && v.every((x) => typeof x !== 'object')) return v.join(', ');
    return JSON.stringify(v);
  }
  function mlflowVersionLink(model, version, text) {
    if (!model) return '–';
    const href = version
      ? '/#/models/' + encodeURIComponent(model) + '/versions/' + encodeURIComponent(version)
      : '/#/models/' + encodeURIComponent(model);
    return h('a', { href, title: 'Open in the MLflow UI' }, text || (version ? model + ' v' + version : model));
  }

  // ------------------------------------------------------------------ API
  async function api(path, opts) {
    const init = Object.assign({ credentials: 'same-origin', headers: { Accept: 'application/json' } }, opts || {});
    if (init.json !== undefined) {
      init.body = JSON.stringify(init.json);
      init.headers = Object.assign({ 'Content-Type': 'application/json' }, init.headers);
      delete init.json;
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      return { status: 0, ok: false, body: { message: 'The server did not answer: ' + e.message } };
    }
    if (resp.status === 401) {
      location.href = '/login?next=' + encodeURIComponent(location.pathname + location.hash);
      return new Promise(() => {});
    }
    const type = resp.headers.get('content-type') || '';
    const body = type.includes('json') ? await resp.json().catch(() => null) : await resp.text();
    return { status: resp.status, ok: resp.ok, body };
  }
  // A panel's API: `null` when this server does not have it (404 ENDPOINT_NOT_FOUND).
  async function optional(path) {
    const r = await api(path);
    if (r.status === 404 && r.body && r.body.error_code === 'ENDPOINT_NOT_FOUND') return null;
    return r;
  }
  function errorText(r) {
    if (r.body && typeof r.body === 'object') return r.body.message || r.body.error || JSON.stringify(r.body);
    return 'HTTP ' + r.status + (r.body ? ': ' + String(r.body).slice(0, 200) : '');
  }

  // ------------------------------------------------------------------ live figures from /metrics
  function parseMetrics(text) {
    const out = [];
    for (const line of String(text).split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = line.match(/^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
      if (!m) continue;
      const labels = {};
      if (m[2]) for (const kv of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
      out.push({ name: m[1], labels, value: parseFloat(m[3]) });
    }
    return out;
  }
  // Per deployment: request count, 4xx and 5xx counts, and latency buckets (cumulative).
  function aggregate(samples) {
    const by = {};
    const get = (d) => (by[d] = by[d] || { count: 0, err4: 0, err5: 0, buckets: {}, byVersion: {} });
    for (const x of samples) {
      const d = x.labels.deployment;
      if (!d) continue;
      if (x.name === 'slipway_inference_requests_total') {
        const a = get(d);
        a.count += x.value;
        const st = Number(x.labels.status);
        if (st >= 500) a.err5 += x.value; else if (st >= 400) a.err4 += x.value;
        const v = x.labels.version || '?';
        a.byVersion[v] = (a.byVersion[v] || 0) + x.value;
      } else if (x.name === 'slipway_inference_duration_seconds_bucket') {
        const a = get(d);
        const le = x.labels.le === '+Inf' ? Infinity : Number(x.labels.le);
        a.buckets[le] = (a.buckets[le] || 0) + x.value;
      }
    }
    return by;
  }
  // Prometheus' histogram_quantile over cumulative bucket counts.
  function quantile(q, buckets) {
    const les = Object.keys(buckets).map(Number).sort((a, b) => a - b);
    if (!les.length) return null;
    const total = buckets[les[les.length - 1]];
    if (!total) return null;
    const rank = q * total;
    let prevLe = 0, prevCount = 0;
    for (const le of les) {
      const c = buckets[le];
      if (c >= rank) {
        if (le === Infinity) return prevLe;
        return prevLe + (le - prevLe) * ((rank - prevCount) / Math.max(c - prevCount, 1e-12));
      }
      prevLe = le; prevCount = c;
    }
    return prevLe;
  }
  function bucketDelta(now, before) {
    const out = {};
    for (const le of Object.keys(now)) out[le] = now[le] - ((before && before[le]) || 0);
    return out;
  }
  const live = { samples: [], error: null, forbidden: false };
  async function pollMetrics() {
    const r = await api('/metrics', { headers: { Accept: 'text/plain' } });
    if (!r.ok) {
      live.forbidden = r.status === 403;
      live.error = errorText(r);
      return;
    }
    live.error = null;
    live.samples.push({ t: Date.now(), by: aggregate(parseMetrics(r.body)) });
    if (live.samples.length > 120) live.samples.shift();
  }
  // The figures of one deployment: totals since the server started, and the
  // last interval's rate, error share and p99 (since start while there is only one sample).
  function figuresOf(name) {
    const n = live.samples.length;
    if (!n) return null;
    const last = live.samples[n - 1];
    const cur = last.by[name];
    if (!cur) return { total: 0, rate: n > 1 ? 0 : null, errorRate: null, p99: null, byVersion: {} };
    const prev = n > 1 ? live.samples[n - 2] : null;
    const before = prev && prev.by[name];
    let rate = null, errorRate = cur.count ? cur.err5 / cur.count : null, p99 = quantile(0.99, cur.buckets);
    if (prev) {
      const dt = (last.t - prev.t) / 1000;
      const dc = cur.count - (before ? before.count : 0);
      rate = dt > 0 ? dc / dt : null;
      if (dc > 0) {
        errorRate = (cur.err5 - (before ? before.err5 : 0)) / dc;
        p99 = quantile(0.99, bucketDelta(cur.buckets, before && before.buckets));
      }
    }
    return { total: cur.count, err4: cur.err4, err5: cur.err5, rate, errorRate, p99, byVersion: cur.byVersion };
  }
  function seriesOf(name) {
    const pts = [];
    for (let i = 1; i < live.samples.length; i++) {
      const a = live.samples[i - 1], b = live.samples[i];
      const x = b.by[name], y = a.by[name];
      const dc = (x ? x.count : 0) - (y ? y.count : 0);
      const dt = (b.t - a.t) / 1000;
      const p99 = x && dc > 0 ? quantile(0.99, bucketDelta(x.buckets, y && y.buckets)) : null;
      pts.push({ t: b.t, rate: dt > 0 ? dc / dt : 0, p99: p99 === null ? null : p99 * 1000 });
    }
    return pts;
  }

  // ------------------------------------------------------------------ charts (inline SVG)
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  // Line chart: series = [{label, points: [{x, y}]}]; x is time (ms, opts.time), a number, or
  // an index into opts.xLabels; opts.dots marks each point.
  function lineChart(series, opts) {
    const W = 640, H = (opts && opts.height) || 180, L = 44, R = 12, T = 10, B = 24;
    const all = series.flatMap((sr) => sr.points.filter((p) => p.y !== null && p.y !== undefined));
    const distinct = new Set(all.map((p) => p.x)).size;
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': (opts && opts.label) || 'chart', 'data-points': distinct });
    if (distinct < 2) {
      svg.appendChild(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'tick' },
        (opts && opts.emptyText) || 'collecting data…'));
      return svg;
    }
    const xs = all.map((p) => p.x), xmin = Math.min(...xs), xmax = Math.max(...xs);
    const ymax = niceMax(Math.max(...all.map((p) => p.y), (opts && opts.minMax) || 0));
    const X = (x) => L + ((x - xmin) / Math.max(xmax - xmin, 1e-9)) * (W - L - R);
    const Y = (y) => T + (1 - y / ymax) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const y = (ymax * i) / 4;
      svg.appendChild(s('line', { class: 'grid-line', x1: L, x2: W - R, y1: Y(y), y2: Y(y) }));
      svg.appendChild(s('text', { class: 'tick', x: L - 6, y: Y(y) + 3, 'text-anchor': 'end' }, fmtNum(y, 2)));
    }
    svg.appendChild(s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    const timeAxis = opts && opts.time;
    const xLabels = opts && opts.xLabels;
    const ticks = xLabels
      ? xLabels.map((label, i) => [i, i === 0 ? 'start' : i === xLabels.length - 1 ? 'end' : 'middle', label])
      : [[xmin, 'start'], [(xmin + xmax) / 2, 'middle'], [xmax, 'end']].map(([x, anchor]) => [x, anchor,
        timeAxis ? new Date(x).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : fmtNum(x, 0)]);
    for (const [x, anchor, label] of ticks) {
      svg.appendChild(s('text', { class: 'tick', x: X(x), y: H - 6, 'text-anchor': anchor }, label));
    }
    series.forEach((sr, i) => {
      const pts = sr.points.filter((p) => p.y !== null && p.y !== undefined);
      if (!pts.length) return;
      const n = (((opts && opts.series) || 0) + i) % 6;
      const d = pts.map((p, j) => (j ? 'L' : 'M') + X(p.x).toFixed(1) + ',' + Y(p.y).toFixed(1)).join(' ');
      svg.appendChild(s('path', { class: 'series-' + n, d }, s('title', {}, sr.label)));
      if (opts && opts.dots) {
        for (const p of pts) svg.appendChild(s('circle', { class: 'dot-' + n, cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: 3 }));
      }
    });
    return svg;
  }
  // Horizontal bars: items = [{label, value, flag}], optional threshold.
  function barChart(items, opts) {
    const W = 640, row = 24, L = 150, R = 60, T = 6;
    const H = T * 2 + row * items.length;
    const max = niceMax(Math.max(...items.map((i) => Math.abs(i.value) || 0), (opts && opts.threshold) || 0));
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': (opts && opts.label) || 'bars' });
    const X = (v) => L + (Math.abs(v) / max) * (W - L - R);
    items.forEach((it, i) => {
      const y = T + i * row;
      svg.appendChild(s('text', { class: 'tick', x: L - 8, y: y + 15, 'text-anchor': 'end' }, it.label));
      svg.appendChild(s('rect', { class: 'bar' + (it.flag ? ' flag' : ''), x: L, y: y + 4, height: row - 8, width: Math.max(X(it.value) - L, 1) }));
      svg.appendChild(s('text', { class: 'tick', x: X(it.value) + 6, y: y + 15 }, fmtNum(it.value, 4)));
    });
    if (opts && opts.threshold) {
      svg.appendChild(s('line', { class: 'threshold', x1: X(opts.threshold), x2: X(opts.threshold), y1: 0, y2: H }));
    }
    return svg;
  }

  // ------------------------------------------------------------------ generic JSON rendering (panels over APIs whose shape may grow)
  function arraysIn(obj) {
    if (Array.isArray(obj)) return obj;
    if (!obj || typeof obj !== 'object') return [];
    for (const k of ['items', 'rollouts', 'decisions', 'features', 'drift', 'predictions', 'results', 'records']) {
      if (Array.isArray(obj[k])) return obj[k];
    }
    const first = Object.values(obj).find(Array.isArray);
    return first || [];
  }
  function objectTable(rows, preferred) {
    if (!rows.length) return h('p', { class: 'muted' }, 'Nothing recorded yet.');
    const keys = [];
    for (const k of preferred || []) if (rows.some((r) => r && r[k] !== undefined)) keys.push(k);
    for (const r of rows) for (const k of Object.keys(r || {})) {
      if (!keys.includes(k) && keys.length < 8 && (typeof r[k] !== 'object' || r[k] === null)) keys.push(k);
    }
    return table(keys.map((k) => ({
      title: k.replace(/_/g, ' '),
      num: rows.every((r) => r[k] === undefined || typeof r[k] === 'number'),
      value: (r) => {
        const v = r[k];
        if (/(^|_)(state|status|verdict|decision|outcome)$/.test(k) && typeof v === 'string') return badge(v);
        if (/(_at|time|timestamp)$/.test(k) && typeof v === 'number') return fmtTime(v);
        return fmtValue(v);
      },
    })), rows.slice(0, 100));
  }
  const pick = (o, ...keys) => { for (const k of keys) if (o && o[k] !== undefined && o[k] !== null) return o[k]; return undefined; };

  // ------------------------------------------------------------------ pages
  function setSection(name) {
    for (const a of document.querySelectorAll('.nav a[data-section]')) {
      a.classList.toggle('active', a.dataset.section === name);
    }
  }
  function stopPolling() { if (pollTimer) { clearInterval(pollTimer); pollTimer = null; } }
  function startPolling(fn) {
    stopPolling();
    pollTimer = setInterval(fn, POLL_MS);
  }
  function show(...nodes) {
    app.replaceChildren();
    append(app, nodes);
  }

  // The traffic split of a deployment: its `traffic` (split and shadow
  // mirrors, during a rollout), else weights its spec or status may carry.
  function trafficOf(dep) {
    const t = dep.traffic;
    if (t && Array.isArray(t.split) && t.split.length) {
      let text = t.split.map((x) => 'v' + x.version + ' ' + fmtNum(Number(x.weight), 1) + '%' +
        (x.role && x.role !== 'stable' ? ' (' + x.role + ')' : '')).join(' · ');
      if (Array.isArray(t.mirrors) && t.mirrors.length) {
        text += ' · shadow ' + t.mirrors.map((m) => 'v' + m.version + ' ' + fmtPct(Number(m.fraction))).join(', ');
      }
      return text;
    }
    const w = pick(dep.status, 'traffic', 'weights') || pick(dep.spec, 'traffic', 'weights');
    if (!w) return null;
    if (Array.isArray(w)) return w.map((x) => 'v' + (pick(x, 'version', 'name') || '?') + ' ' + fmtNum(pick(x, 'weight', 'percent', 'share')) + '%').join(' · ');
    if (typeof w === 'object') return Object.entries(w).map(([k, v]) => k + ' ' + fmtNum(v) + '%').join(' · ');
    return String(w);
  }
  const ACTIVE = /progress|paused|running|active|pending/i;

  async function deploymentsPage(seq) {
    setSection('deployments');
    const [r] = await Promise.all([api('/api/v1/deployments'), pollMetrics()]);
    if (seq !== renderSeq) return;
    if (!r.ok) {
      show(head('Deployments'), h('div', { class: 'notice bad' }, 'Deployments cannot be listed: ' + errorText(r)));
      return;
    }
    const deps = (r.body && r.body.deployments) || [];
    const draw = () => {
      if (seq !== renderSeq) return;
      if (!deps.length) {
        show(head('Deployments', 'Models served by this platform'),
          h('section', { class: 'panel' }, empty('No deployments yet',
            'Register a model with the mlflow client, then serve it by alias:',
            'slipway deploy NAME --model MODEL --alias champion')));
        return;
      }
      const cols = [
        { title: 'Deployment', value: (d) => h('a', { href: '#/deployments/' + encodeURIComponent(d.name), class: 'dep-link' }, d.name) },
        { title: 'State', value: (d) => badge(d.status.state) },
        { title: 'Model', value: (d) => [d.spec.model, d.spec.alias ? h('span', { class: 'muted' }, ' @' + d.spec.alias) : (d.spec.version ? h('span', { class: 'muted' }, ' v' + d.spec.version) : null)] },
        { title: 'Serving', value: (d) => d.status.serving_version ? mlflowVersionLink(d.spec.model, d.status.serving_version, 'v' + d.status.serving_version) : '–' },
        { title: 'Traffic', value: (d) => trafficOf(d) || (d.status.serving_version ? 'v' + d.status.serving_version + ' 100%' : '–') },
        { title: 'Requests', num: true, value: (d) => { const f = figuresOf(d.name); return f ? fmtNum(f.total) : '–'; } },
        { title: 'Req/s', num: true, value: (d) => { const f = figuresOf(d.name); return f ? fmtRate(f.rate) : '–'; } },
        { title: 'Errors', num: true, value: (d) => { const f = figuresOf(d.name); return f ? fmtPct(f.errorRate) : '–'; } },
        { title: 'p99', num: true, value: (d) => { const f = figuresOf(d.name); return f ? fmtMs(f.p99) : '–'; } },
        { title: 'Last error', cls: () => 'error', value: (d) => d.status.error || '' },
      ];
      show(head('Deployments', deps.length + (deps.length === 1 ? ' deployment' : ' deployments')),
        h('section', { class: 'panel' },
          table(cols, deps.map((d) => Object.assign({ attrs: { 'data-deployment': d.name } }, d)), { id: 'deployments' }),
          h('footer', { class: 'foot' }, live.error
            ? 'Live figures unavailable: ' + live.error
            : 'Requests since the server started; req/s, error rate (5xx) and p99 over the last ' + POLL_MS / 1000 + ' s, refreshed every ' + POLL_MS / 1000 + ' s.')));
    };
    draw();
    startPolling(async () => { await pollMetrics(); draw(); });
  }

  function head(title, sub, crumbs) {
    return h('div', {},
      crumbs ? h('div', { class: 'crumbs' }, crumbs) : null,
      h('div', { class: 'page-head' }, h('h1', {}, title), sub ? h('span', { class: 'sub' }, sub) : null));
  }

  async function deploymentPage(seq, name) {
    setSection('deployments');
    const enc = encodeURIComponent(name);
    const base = '/api/v1/deployments/' + enc;
    const [dep, meta, config, rollouts, drift, predictions, performance] = await Promise.all([
      api(base), api('/v2/models/' + enc), api('/v2/models/' + enc + '/config'),
      optional(base + '/rollouts'), optional(base + '/drift'),
      optional(base + '/predictions?order=desc&limit=' + PREDICTION_ROWS), optional(base + '/performance'),
      pollMetrics(),
    ]);
    if (seq !== renderSeq) return;
    const crumbs = [h('a', { href: '#/deployments' }, 'Deployments'), ' / ', name];
    if (!dep.ok) {
      show(head(name, null, crumbs), h('div', { class: 'notice bad' }, dep.status === 404 ? 'There is no deployment named ' + name + '.' : errorText(dep)));
      return;
    }
    const d = dep.body;
    let rolloutDetail = null;
    const rolloutList = rollouts && rollouts.ok ? arraysIn(rollouts.body) : [];
    const current = rolloutList.find((x) => ACTIVE.test(String(pick(x, 'state', 'status') || '')));
    const [detail, driftWindows] = await Promise.all([
      current && pick(current, 'id', 'rollout_id')
        ? optional(base + '/rollouts/' + encodeURIComponent(pick(current, 'id', 'rollout_id'))) : null,
      driftByWindow(base, drift),
    ]);
    if (detail && detail.ok) rolloutDetail = detail.body.rollout || detail.body;
    if (seq !== renderSeq) return;

    const livePanel = h('section', { class: 'panel', id: 'live' });
    const drawLive = () => {
      const f = figuresOf(name);
      const pts = seriesOf(name);
      livePanel.replaceChildren();
      append(livePanel, [
        h('h2', {}, 'Live traffic', h('span', { class: 'hint' }, 'from /metrics, every ' + POLL_MS / 1000 + ' s, while this page is open')),
        live.error ? h('div', { class: 'notice bad' }, 'Live figures unavailable: ' + live.error) : null,
        h('div', { class: 'stats' },
          stat('Requests', f ? fmtNum(f.total) : '–', 'since the server started', 'stat-requests'),
          stat('Requests/s', f ? fmtRate(f.rate) : '–', 'last interval'),
          stat('Error rate', f ? fmtPct(f.errorRate) : '–', f && f.err4 ? fmtNum(f.err4) + ' rejected (4xx) in total' : '5xx share', null, f && f.errorRate > 0.01),
          stat('p99 latency', f ? fmtMs(f.p99) : '–', 'server-side')),
        h('div', { class: 'grid' },
          h('div', { id: 'chart-rate' }, h('div', { class: 'small muted' }, 'Requests per second'),
            lineChart([{ label: 'requests/s', points: pts.map((p) => ({ x: p.t, y: p.rate })) }],
              { time: true, height: 160, label: 'requests per second', emptyText: 'collecting data… (a point every ' + POLL_MS / 1000 + ' s)' })),
          h('div', { id: 'chart-p99' }, h('div', { class: 'small muted' }, 'p99 latency (ms)'),
            lineChart([{ label: 'p99 ms', points: pts.map((p) => ({ x: p.t, y: p.p99 })) }],
              { time: true, height: 160, label: 'p99 latency in milliseconds', emptyText: 'no requests in the last intervals', series: 1 }))),
        f && Object.keys(f.byVersion).length ? h('p', { class: 'small muted' }, 'Requests by version since the server started: ' +
          Object.entries(f.byVersion).map(([v, c]) => 'v' + v + ' ' + fmtNum(c)).join(' · ')) : null,
      ]);
    };
    drawLive();

    const st = d.status || {};
    const servingPanel = panel('Serving', null, kv([
      ['State', badge(st.state)],
      ['Model', mlflowVersionLink(d.spec.model, null, d.spec.model)],
      ['Follows', d.spec.alias ? 'alias ' + d.spec.alias : (d.spec.version ? 'version ' + d.spec.version : '–')],
      ['Serving version', st.serving_version ? mlflowVersionLink(d.spec.model, st.serving_version, 'v' + st.serving_version + ' — open in the MLflow UI') : 'none'],
      ['Target version', st.target_version ? 'v' + st.target_version : '–'],
      ['Loaded here', Array.isArray(d.loaded_versions) && d.loaded_versions.length ? d.loaded_versions.map((v) => 'v' + v).join(', ') : null],
      ['Traffic', trafficOf(d) || (st.serving_version ? 'v' + st.serving_version + ' 100%' : '–')],
      ['Last error', st.error ? h('span', { class: 'error' }, st.error) : 'none'],
      ['Next retry', st.retry_at ? fmtTime(st.retry_at) : null],
      ['Changed', fmtTime(st.updated_at)],
      ['Max batch', d.spec.max_batch_size],
      ['Queue capacity', d.spec.queue_capacity],
      ['Out-of-range inputs', d.spec.range_policy],
    ]));

    let contractPanel;
    if (meta.ok) {
      const m = meta.body;
      const tensors = (list) => table([
        { title: 'Name', value: (t) => h('code', {}, t.name) },
        { title: 'Type', value: (t) => t.datatype },
        { title: 'Shape', value: (t) => '[' + (t.shape || []).join(', ') + ']' },
      ], list || []);
      const cfg = config.ok ? config.body : null;
      contractPanel = panel('Loaded versions and contract', 'GET /v2/models/' + name,
        kv([
          ['Versions', (m.versions || []).map((v) => mlflowVersionLink(d.spec.model, v, 'v' + v)).flatMap((a, i) => i ? [', ', a] : [a])],
          ['Platform', m.platform],
          ['Max batch size', cfg ? pick(cfg, 'max_batch_size') : null],
        ]),
        h('h3', { class: 'small muted' }, 'Inputs'), tensors(m.inputs),
        h('h3', { class: 'small muted' }, 'Outputs'), tensors(m.outputs));
    } else if (meta.status === 403) {
      contractPanel = panel('Loaded versions and contract', null, h('p', { class: 'muted' }, 'Reading a model\'s contract needs a token with the predict scope; sign in with one to see it.'));
    } else {
      contractPanel = panel('Loaded versions and contract', null, h('p', { class: 'muted' }, st.state === 'stored'
        ? 'This replica does not serve models (registry role); the serving replicas have them loaded.'
        : 'No version is loaded: ' + errorText(meta)));
    }

    const optionalPanels = [];
    if (rollouts) optionalPanels.push(rolloutPanel(rollouts, rolloutDetail, name));
    if (drift) optionalPanels.push(driftPanel(drift, driftWindows, name));
    if (predictions) optionalPanels.push(predictionsPanel(predictions, name));
    if (performance) optionalPanels.push(performancePanel(performance, name));

    show(head(name, [badge(st.state), ' ', d.spec.model + (d.spec.alias ? ' @' + d.spec.alias : '')], crumbs),
      livePanel,
      h('div', { class: 'grid' }, servingPanel, contractPanel),
      h('div', { class: 'stack' }, optionalPanels));
    startPolling(async () => { await pollMetrics(); if (seq === renderSeq) drawLive(); });
  }

  function stat(label, value, note, id, bad) {
    return h('div', { class: 'stat', id: id || null },
      h('div', { class: 'label' }, label), h('div', { class: 'value' + (bad ? ' bad' : '') }, value), note ? h('div', { class: 'note' }, note) : null);
  }

  function rolloutPanel(r, detail, name) {
    if (!r.ok) return panel('Rollouts', null, h('p', { class: 'muted' }, errorText(r)));
    const list = arraysIn(r.body);
    const parts = [];
    if (detail) {
      const state = pick(detail, 'state', 'status') || 'progressing';
      const weights = detail.weights || {};
      parts.push(h('div', { class: 'rollout-head' },
        h('strong', {}, 'In progress '), badge(state), ' ',
        [pick(detail, 'strategy'), pick(detail, 'mode')].filter(Boolean).join(' · '), ' — ',
        detail.stable_version ? mlflowVersionLink(detail.model, detail.stable_version, 'v' + detail.stable_version) : 'stable', ' → ',
        detail.candidate_version ? mlflowVersionLink(detail.model, detail.candidate_version, 'v' + detail.candidate_version) : 'candidate',
        weights.candidate !== undefined ? h('span', { class: 'muted' }, ' (stable ' + fmtNum(weights.stable, 1) + '%, candidate ' + fmtNum(weights.candidate, 1) + '%' + (detail.traffic === 'mirrored' ? ' mirrored' : '') + ')') : null));
      const steps = Array.isArray(detail.steps) ? detail.steps : [];
      const at = pick(detail, 'step', 'current_step');
      if (steps.length) {
        parts.push(h('div', { class: 'steps', id: 'rollout-steps' }, steps.map((stp, i) => {
          const label = typeof stp === 'number' ? fmtNum(stp, 1) + '%' : (typeof stp === 'object' ? (pick(stp, 'name') || fmtNum(pick(stp, 'weight', 'percent')) + '%') : String(stp));
          const cls = at === undefined ? '' : i < at ? ' done' : i === at ? ' current' : '';
          return h('span', { class: 'step' + cls }, 'step ' + (i + 1) + ': ' + label);
        })));
      }
      const record = Array.isArray(detail.record) ? detail.record : [];
      const last = record[record.length - 1];
      const checks = (last && last.checks) || detail.checks;
      if (Array.isArray(checks) && checks.length) {
        parts.push(h('h3', { class: 'small muted' }, 'Checks of the last judged step' + (last ? ' (step ' + (last.step + 1) + ', verdict ' + last.verdict + ')' : '')));
        parts.push(table([
          { title: 'Check', value: (c) => h('code', {}, c.name) },
          { title: 'Method', value: (c) => c.method },
          { title: 'Stable', num: true, value: (c) => fmtNum(c.stable, 4) },
          { title: 'Candidate', num: true, value: (c) => fmtNum(c.candidate, 4) },
          { title: 'Threshold', num: true, value: (c) => fmtNum(c.threshold, 4) },
          { title: 'Verdict', value: (c) => badge(c.verdict) },
          { title: 'Why', value: (c) => h('span', { class: 'small' }, c.detail || '') },
        ], checks, { id: 'rollout-checks' }));
      } else {
        parts.push(h('p', { class: 'muted' }, 'No step judged yet: each step is judged after ' +
          fmtNum(pick(detail.plan || {}, 'step_seconds')) + ' s and ' + fmtNum(pick(detail.plan || {}, 'min_requests')) + ' requests per side.'));
      }
      if (record.length > 1) {
        parts.push(h('h3', { class: 'small muted' }, 'Judged steps'));
        parts.push(objectTable(record, ['step', 'weight', 'stable_requests', 'candidate_requests', 'verdict', 'judged_at']));
      }
      if (detail.reason || detail.advice) parts.push(h('p', {}, detail.reason || '', detail.advice ? h('span', { class: 'muted' }, ' Advice: ' + detail.advice) : null));
    }
    const past = list.filter((x) => !ACTIVE.test(String(pick(x, 'state', 'status') || '')));
    parts.push(h('h3', { class: 'small muted' }, 'Decision records'));
    parts.push(past.length ? objectTable(past, ['id', 'strategy', 'mode', 'state', 'stable_version', 'candidate_version', 'started_at', 'finished_at', 'reason'])
      : h('p', { class: 'muted' }, 'No finished rollouts yet for ' + name + '. Start one with ', h('code', {}, 'slipway rollout start ' + name + ' --candidate-version N --steps 5,25,50,100'), '.'));
    return h('section', { class: 'panel', id: 'rollouts' }, h('h2', {}, 'Rollouts', h('span', { class: 'hint' }, 'GET .../rollouts')), parts);
  }

  // ------------------------------------------------------------------ monitoring panels
  // Over GET .../drift (DriftReport), .../predictions (rows of the prediction
  // log) and .../performance (PerformanceReport): crates/slipway-monitor and
  // routes/monitoring.rs define the shapes, docs/monitoring.md describes them.
  const PREDICTION_ROWS = 20;
  // Trailing windows of the drift chart. The drift API judges the window that
  // ends now (60 s to 31 d), so the chart compares windows of growing length.
  const DRIFT_WINDOWS = [300, 900, 3600, 21600, 86400];

  function fmtWindow(seconds) {
    if (seconds % 86400 === 0) return seconds / 86400 + ' d';
    if (seconds % 3600 === 0) return seconds / 3600 + ' h';
    if (seconds % 60 === 0) return seconds / 60 + ' min';
    return seconds + ' s';
  }
  // A statistic, distance or p-value: up to 4 decimals, exponent notation when tiny or huge.
  function fmtStat(x) {
    if (x === null || x === undefined || typeof x !== 'number' || Number.isNaN(x)) return '–';
    if (x !== 0 && (Math.abs(x) < 1e-4 || Math.abs(x) >= 1e7)) return x.toExponential(1);
    return String(Number(x.toFixed(4)));
  }
  function fmtShare(x) { return typeof x === 'number' ? x.toFixed(3) : '–'; }
  // An RFC 3339 time of the monitoring API, to the second, in local time.
  function fmtClock(text) {
    const d = new Date(text);
    if (Number.isNaN(d.getTime())) return text || '–';
    return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  function fmtTimeOfDay(text) {
    const d = new Date(text);
    if (Number.isNaN(d.getTime())) return text || '–';
    return h('span', { title: fmtClock(text) }, d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' }));
  }
  function fmtCell(v) {
    if (typeof v === 'number') return Number.isInteger(v) ? String(v) : fmtStat(v);
    return fmtValue(v);
  }
  function section(id, title, hint, ...body) {
    return h('section', { class: 'panel', id },
      h('h2', {}, title, hint ? h('span', { class: 'hint' }, hint) : null), ...body);
  }
  function skippedNotice(files) {
    if (!Array.isArray(files) || !files.length) return null;
    return h('div', { class: 'notice bad' }, files.length + (files.length === 1 ? ' log file' : ' log files') +
      ' could not be read and were left out: ' + files.map((f) => f.path || JSON.stringify(f)).slice(0, 3).join(', '));
  }
  function legend(names, first) {
    return h('div', { class: 'legend' }, names.map((n, i) => h('span', { class: 's' + ((first || 0) + i) % 6 }, n)));
  }

  // The drift reports of the trailing windows, once the version has a reference.
  async function driftByWindow(base, drift) {
    if (!drift || !drift.ok || drift.body.status === 'no_reference') return null;
    const answers = await Promise.all(DRIFT_WINDOWS.map((w) => api(base + '/drift?window=' + w)));
    return answers.map((r, i) => ({ window: DRIFT_WINDOWS[i], report: r.ok ? r.body : null, error: r.ok ? null : errorText(r) }));
  }

  function driftPanel(r, windows, name) {
    if (!r.ok) return section('drift', 'Drift', 'GET .../drift', h('p', { class: 'muted' }, errorText(r)));
    const d = r.body;
    const ref = d.reference;
    const hint = 'version ' + d.version + ' · last ' + fmtWindow(d.window_seconds) +
      (ref ? ' · reference: ' + ref.source + ', ' + fmtNum(ref.rows) + ' rows' : '');
    const parts = [];
    if (d.status === 'no_reference') {
      parts.push(h('div', { class: 'notice', id: 'drift-status', 'data-status': d.status }, h('strong', {}, 'No reference yet. '), d.reason || ''));
      parts.push(h('p', { class: 'small muted' }, 'Upload one (training data: CSV with a header row, or Parquet), or let the first served rows become it:'),
        h('pre', {}, "curl -X PUT -H 'Content-Type: text/csv' --data-binary @train.csv \\\n  " +
          location.origin + '/api/v1/deployments/' + encodeURIComponent(name) + '/reference'));
    } else if (d.status !== 'ok') {
      parts.push(h('div', { class: 'notice', id: 'drift-status', 'data-status': d.status },
        h('strong', {}, d.status === 'insufficient_data' ? 'Not enough traffic yet. ' : d.status + ': '), d.reason || ''));
    }
    if (d.status === 'ok') {
      const drifted = d.features.filter((f) => f.drifted).length;
      parts.push(h('div', { class: 'stats', id: 'drift-summary' },
        stat('Dataset drift', d.dataset_drift ? 'yes' : 'no', 'when ≥ ' + fmtPct(d.share_threshold) + ' of the columns drift', 'stat-dataset-drift', d.dataset_drift),
        stat('Drift share', fmtShare(d.drift_share), drifted + ' of ' + d.features.length + ' columns drifted', 'stat-drift-share', d.dataset_drift),
        stat('Rows in window', fmtNum(d.current_count), 'judged from ' + fmtNum(d.min_rows), 'stat-drift-rows'),
        stat('Reference rows', ref ? fmtNum(ref.rows) : '–', ref ? ref.source : null, 'stat-reference-rows')));
      parts.push(h('div', { class: 'grid charts' },
        h('div', { id: 'drift-bars' }, h('div', { class: 'small muted' }, 'Statistic per column, last ' + fmtWindow(d.window_seconds) + ' (red: drifted)'),
          barChart(d.features.map((f) => ({ label: f.name, value: f.statistic, flag: f.drifted })), { label: 'drift statistic per column' })),
        windows ? driftWindowChart(windows) : null));
      parts.push(table([
        { title: 'Column', value: (f) => h('code', {}, f.name) },
        { title: 'Kind', value: (f) => f.kind },
        { title: 'Method', value: (f) => f.method },
        { title: 'Statistic', num: true, value: (f) => fmtStat(f.statistic) },
        { title: 'p-value', num: true, value: (f) => fmtStat(f.p_value) },
        { title: 'Threshold', num: true, value: (f) => fmtStat(f.threshold) },
        { title: 'Drift', value: (f) => f.drifted ? badge('drift', 'drift') : badge('no drift', 'ok') },
        { title: 'PSI', num: true, value: (f) => fmtStat(f.psi) },
        { title: 'Reference rows', num: true, value: (f) => fmtNum(f.reference_count) },
        { title: 'Current rows', num: true, value: (f) => fmtNum(f.current_count) + (f.estimated ? ' (sketch)' : '') },
      ], d.features.map((f) => Object.assign({ attrs: { 'data-feature': f.name } }, f)), { id: 'drift-features' }));
      if (d.not_tested && d.not_tested.length) parts.push(h('p', { class: 'small muted', id: 'drift-not-tested' }, 'Not tested: ' + d.not_tested.join('; ')));
    } else if (d.status === 'insufficient_data') {
      parts.push(h('div', { class: 'stats', id: 'drift-summary' },
        stat('Rows in window', fmtNum(d.current_count), 'judged from ' + fmtNum(d.min_rows), 'stat-drift-rows'),
        stat('Reference rows', ref ? fmtNum(ref.rows) : '–', ref ? ref.source : null, 'stat-reference-rows')));
      if (windows) parts.push(driftWindowChart(windows));
    }
    parts.push(skippedNotice(d.skipped_files));
    if (windows) parts.push(driftWindowTable(windows));
    return section('drift', 'Drift', hint, parts);
  }

  // Each column's statistic over the trailing windows: a chart, and the table of its values.
  function windowColumns(windows) {
    const names = [];
    for (const w of windows) for (const f of (w.report && w.report.features) || []) if (!names.includes(f.name)) names.push(f.name);
    const featureOf = (w, n) => (w.report && w.report.status === 'ok' ? w.report.features.find((f) => f.name === n) : null);
    return { names, featureOf };
  }
  function driftWindowChart(windows) {
    const { names, featureOf } = windowColumns(windows);
    const series = names.map((n) => ({ label: n, points: windows.map((w, i) => ({ x: i, y: featureOf(w, n) ? featureOf(w, n).statistic : null })) }));
    return h('div', { id: 'drift-windows' },
      h('div', { class: 'small muted' }, 'Statistic per column over the last 5 min … 24 h (windows ending now)'),
      lineChart(series, { xLabels: windows.map((w) => fmtWindow(w.window)), height: 200, label: 'drift statistic per column by window', emptyText: 'no window has enough rows yet', dots: true }),
      names.length ? legend(names) : null);
  }
  function driftWindowTable(windows) {
    const { names, featureOf } = windowColumns(windows);
    const cols = [
      { title: 'Window', value: (w) => 'last ' + fmtWindow(w.window) },
      { title: 'Rows', num: true, value: (w) => (w.report ? fmtNum(w.report.current_count) : '–') },
      { title: 'Dataset drift', value: (w) => !w.report ? h('span', { class: 'error small' }, w.error)
        : w.report.status !== 'ok' ? badge(w.report.status.replace(/_/g, ' '), 'inconclusive')
        : w.report.dataset_drift ? badge('drift', 'drift') : badge('no drift', 'ok') },
      { title: 'Share', num: true, value: (w) => (w.report && w.report.status === 'ok' ? fmtShare(w.report.drift_share) : '–') },
      ...names.map((n) => ({ title: h('code', {}, n), num: true, value: (w) => {
        const f = featureOf(w, n);
        return f ? h('span', { class: f.drifted ? 'drifted' : null }, fmtStat(f.statistic)) : '–';
      } })),
    ];
    return [h('h3', { class: 'small muted' }, 'By window'),
      table(cols, windows.map((w) => Object.assign({ attrs: { 'data-window': w.window } }, w)), { id: 'drift-window-table', class: 'compact' })];
  }

  function predictionsPanel(r, name) {
    if (!r.ok) return section('predictions', 'Prediction log', null, h('p', { class: 'muted' }, errorText(r)));
    const b = r.body;
    const rows = b.predictions || [];
    const meta = ['deployment', 'time', 'request_id', 'row', 'role', 'version', 'status', 'latency_ms'];
    const data = (b.columns || []).filter((c) => !meta.includes(c));
    const shown = data.slice(0, 10);
    const path = '/api/v1/deployments/' + encodeURIComponent(name) + '/predictions';
    const hint = (b.truncated ? 'newest ' + rows.length + ' rows' : rows.length + (rows.length === 1 ? ' row' : ' rows')) + ' of the last hour';
    const downloads = h('p', { class: 'small muted' }, 'The last hour: ',
      h('a', { href: path + '?format=csv&limit=100000', id: 'predictions-csv' }, 'CSV'), ' · ',
      h('a', { href: path + '?format=parquet&limit=100000' }, 'Parquet'),
      data.length > shown.length ? ' (' + (data.length - shown.length) + ' more columns there)' : '');
    if (!rows.length) {
      return section('predictions', 'Prediction log', hint, empty('Nothing logged in the last hour',
        'Every request served by this deployment is logged (its share is monitoring.log_fraction). Send one:',
        'curl -H "Authorization: Bearer $SLIPWAY_TOKEN" -d @request.json ' + location.origin + '/v2/models/' + name + '/infer'),
      skippedNotice(b.skipped_files));
    }
    return section('predictions', 'Prediction log', hint, table([
      { title: 'Time', value: (x) => fmtTimeOfDay(x.time) },
      { title: 'Request id', value: (x) => h('code', {}, x.request_id) },
      { title: 'Row', num: true, value: (x) => fmtNum(x.row) },
      { title: 'Version', value: (x) => 'v' + x.version },
      { title: 'Role', value: (x) => x.role },
      { title: 'Status', value: (x) => badge(String(x.status), x.status === 200 ? 'ok' : 'bad') },
      { title: 'Latency', num: true, value: (x) => (typeof x.latency_ms === 'number' ? fmtMs(x.latency_ms / 1000) : '–') },
      ...shown.map((c) => ({ title: h('code', {}, c), num: true, value: (x) => fmtCell(x[c]) })),
    ], rows.map((x) => Object.assign({ attrs: { 'data-request-id': x.request_id, 'data-row': x.row } }, x)), { id: 'predictions-log', class: 'compact' }),
    downloads, skippedNotice(b.skipped_files));
  }

  function performancePanel(r, name) {
    if (!r.ok) return section('performance', 'Feedback and performance', null, h('p', { class: 'muted' }, errorText(r)));
    const b = r.body;
    const hint = 'ground truth joined by request id · predictions since ' + fmtClock(b.start);
    const parts = [h('div', { class: 'stats', id: 'performance-summary' },
      stat('Feedback rows', fmtNum(b.feedback_rows), 'received since the window started', 'stat-feedback-rows'),
      stat('Unmatched', fmtNum(b.unmatched_feedback), 'feedback with no prediction in the window', 'stat-unmatched'))];
    if (!b.feedback_rows) {
      parts.push(empty('No ground truth yet', 'Send the true labels (or values) when they are known, by the request ids of the predictions:',
        'curl -H "Authorization: Bearer $SLIPWAY_TOKEN" -d \'[{"request_id": "…", "label": 1}]\' \\\n  ' +
        location.origin + '/api/v1/deployments/' + name + '/feedback'));
    }
    for (const v of b.versions || []) {
      const id = 'performance-v' + v.version;
      const figures = v.task === 'regression'
        ? [stat('MAE', fmtStat(v.mae), 'mean absolute error', id + '-mae'), stat('RMSE', fmtStat(v.rmse), 'root mean squared error', id + '-rmse')]
        : [stat('Accuracy', typeof v.accuracy === 'number' ? fmtPct(v.accuracy) : '–', 'share of correct labels', id + '-accuracy')];
      parts.push(h('div', { id, 'data-version': v.version },
        h('h3', { class: 'small' }, 'Version ' + v.version + ' · ' + v.task + ' on ', h('code', {}, v.prediction_output)),
        h('div', { class: 'stats' }, stat('Joined', fmtNum(v.joined), 'predictions with ground truth', id + '-joined'), figures,
          v.mismatched ? stat('Mismatched', fmtNum(v.mismatched), 'truth of the wrong type', id + '-mismatched', true) : null),
        Array.isArray(v.classes) && v.classes.length ? table([
          { title: 'Class', value: (c) => h('code', {}, c.label) },
          { title: 'Precision', num: true, value: (c) => c.precision.toFixed(3) },
          { title: 'Recall', num: true, value: (c) => c.recall.toFixed(3) },
          { title: 'F1', num: true, value: (c) => c.f1.toFixed(3) },
          { title: 'Support', num: true, value: (c) => fmtNum(c.support) },
        ], v.classes.map((c) => Object.assign({ attrs: { 'data-class': c.label } }, c)), { id: id + '-classes' }) : null));
    }
    parts.push(skippedNotice(b.skipped_files));
    return section('performance', 'Feedback and performance', hint, parts);
  }

  async function tokensPage(seq, created) {
    setSection('tokens');
    const r = await api('/api/v1/tokens');
    if (seq !== renderSeq) return;
    if (r.status === 403) {
      show(head('Tokens'), h('section', { class: 'panel' }, empty('Token management needs an admin session',
        'You are signed in with a token that does not have the admin scope. Sign out and sign in with an admin token, or use the command line:',
        'slipway token list')));
      return;
    }
    if (!r.ok) { show(head('Tokens'), h('div', { class: 'notice bad' }, errorText(r))); return; }
    const tokens = r.body.tokens || [];
    const message = h('div', { id: 'token-message' });
    if (created) {
      message.appendChild(h('div', { class: 'notice ok' },
        'Token "' + created.name + '" created. Copy it now: it is shown once and only its hash is kept.',
        h('div', { class: 'secret' }, h('code', { id: 'new-token' }, created.token),
          h('button', { class: 'plain', type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(created.token) }, 'Copy'))));
    }
    const nameInput = h('input', { type: 'text', id: 'token-name', placeholder: 'name, e.g. ci-pipeline', required: true, maxlength: 200 });
    const scopes = ['read', 'write', 'predict', 'admin'].map((sc) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', value: sc, name: 'scope', checked: sc === 'read' }), sc));
    const form = h('form', {
      class: 'inline', id: 'create-token',
      onsubmit: async (e) => {
        e.preventDefault();
        const chosen = scopes.map((l) => l.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
        const res = await api('/api/v1/tokens', { method: 'POST', json: { name: nameInput.value, scopes: chosen } });
        if (!res.ok) { message.replaceChildren(h('div', { class: 'notice bad' }, errorText(res))); return; }
        tokensPage(++renderSeq, res.body);
      },
    }, nameInput, scopes, h('button', { class: 'primary', type: 'submit' }, 'Create token'));
    const cols = [
      { title: 'Name', value: (t) => t.name },
      { title: 'Id', value: (t) => h('code', {}, t.id) },
      { title: 'Scopes', value: (t) => t.scopes.map((x) => h('span', { class: 'scope' }, x)) },
      { title: 'Created', value: (t) => fmtTime(t.created_at) },
      { title: 'Status', value: (t) => t.revoked_at ? badge('revoked') : badge('active') },
      { title: '', value: (t) => t.revoked_at ? h('span', { class: 'muted small' }, fmtTime(t.revoked_at)) : h('button', {
        class: 'danger', type: 'button', 'data-revoke': t.id,
        onclick: async () => {
          if (!confirm('Revoke token "' + t.name + '"? Clients and browser sessions using it stop working.')) return;
          const res = await api('/api/v1/tokens/' + encodeURIComponent(t.id), { method: 'DELETE' });
          if (!res.ok) { message.replaceChildren(h('div', { class: 'notice bad' }, errorText(res))); return; }
          tokensPage(++renderSeq);
        },
      }, 'Revoke') },
    ];
    show(head('Tokens', 'API tokens: only their hashes are stored'), message,
      panel('Create a token', 'scopes: read ⊂ write; predict is inference only; admin is everything', form),
      panel('All tokens', tokens.length + ' in total', tokens.length
        ? table(cols, tokens.map((t) => Object.assign({ attrs: { 'data-token': t.name } }, t)), { id: 'tokens' })
        : empty('No tokens', 'Create one above.')));
  }

  // ------------------------------------------------------------------ router
  async function render() {
    stopPolling();
    const seq = ++renderSeq;
    const hash = location.hash.replace(/^#\/?/, '');
    const [section, ...rest] = hash.split('/');
    try {
      if (section === 'tokens') await tokensPage(seq);
      else if (section === 'deployments' && rest.length) await deploymentPage(seq, decodeURIComponent(rest.join('/')));
      else await deploymentsPage(seq);
    } catch (e) {
      if (seq === renderSeq) show(h('div', { class: 'notice bad' }, 'This page failed: ' + e.message));
      throw e;
    }
  }
  window.addEventListener('hashchange', render);
  render();
})();
