// The usage dashboard: reads GET /v1/usage on this origin and draws totals, charts and tables by hand.
// No dependencies, no network beyond this origin. The client key (when the proxy needs one) is kept in
// sessionStorage and sent as a Bearer header, never in a URL.
"use strict";

(() => {
  const KEY_STORE = "lip.dashboard.key";
  const RECORD_LIMIT = 10000; // records fetched for the hourly (24 h) chart
  const RANGES = {
    "24h": { seconds: 86400, bucket: "hour" },
    "7d": { seconds: 7 * 86400, bucket: "day" },
    "30d": { seconds: 30 * 86400, bucket: "day" },
  };
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  // Errors of any kind end up in #js-errors (the tests read it), and in the console as usual.
  const errorsBox = $("js-errors");
  function reportError(text) {
    errorsBox.hidden = false;
    errorsBox.textContent += text + "\n";
    document.body.dataset.jsErrors = "yes";
  }
  window.addEventListener("error", (e) => {
    const target = e.target;
    if (target && target !== window && (target.src || target.href)) {
      reportError("failed to load " + (target.src || target.href));
    } else {
      reportError("error: " + (e.message || "unknown") + (e.filename ? ` (${e.filename}:${e.lineno})` : ""));
    }
  }, true);
  window.addEventListener("unhandledrejection", (e) => reportError("unhandled rejection: " + String(e.reason)));
  document.addEventListener("securitypolicyviolation", (e) =>
    reportError(`blocked by the page's policy: ${e.blockedURI || "inline"} (${e.violatedDirective})`));
  const consoleError = console.error.bind(console);
  console.error = (...args) => {
    reportError("console: " + args.map(String).join(" "));
    consoleError(...args);
  };

  // ---- formatting ----
  const intFormat = new Intl.NumberFormat("en-US");
  const compactFormat = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
  const int = (n) => (n == null ? "-" : intFormat.format(n));
  const compact = (n) => compactFormat.format(n);
  function money(n) {
    if (n == null) return "-";
    if (n === 0 || n >= 0.01) return "$" + n.toLocaleString("en-US", { minimumFractionDigits: 4, maximumFractionDigits: 4 });
    return "$" + n.toFixed(6);
  }
  const moneyAxis = (n) => "$" + (n >= 1000 ? compact(n) : n.toLocaleString("en-US", { maximumSignificantDigits: 3 }));
  function ms(n) {
    if (n == null) return "-";
    return n >= 1000 ? (n / 1000).toFixed(2) + " s" : Math.round(n) + " ms";
  }
  const percent = (part, whole) => (whole ? ((100 * part) / whole).toFixed(1) + "%" : "-");

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) node.append(child);
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    for (const child of children) node.append(child);
    return node;
  }

  // ---- the key ----
  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORE) || "";
    } catch {
      return "";
    }
  }
  function storeKey(value) {
    try {
      if (value) sessionStorage.setItem(KEY_STORE, value);
      else sessionStorage.removeItem(KEY_STORE);
    } catch {
      reportError("sessionStorage is not available: the key is not kept");
    }
    showKeyState();
  }
  function showKeyState() {
    $("key-state").textContent = storedKey() ? "a key is set for this tab" : "no key set";
  }

  // ---- the API ----
  class ApiError extends Error {
    constructor(status, message, code, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  async function usage(params) {
    const headers = { Accept: "application/json" };
    const key = storedKey();
    if (key) headers.Authorization = "Bearer " + key;
    const response = await fetch("/v1/usage?" + new URLSearchParams(params), {
      headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new ApiError(response.status, error.message || response.statusText, error.code,
        response.headers.get("Retry-After"));
    }
    return body;
  }

  function explain(error) {
    if (!(error instanceof ApiError)) return ["error", "Could not reach the proxy: " + error.message];
    if (error.status === 401) {
      return ["auth", storedKey()
        ? "The proxy did not accept this key (401). Paste a valid client key above."
        : "This proxy needs a client key to show usage (401). Paste your key above; it stays in this tab only."];
    }
    if (error.status === 403) return ["auth", "This key may not read usage (403): " + error.message];
    if (error.status === 429) {
      return ["error", "Too many attempts (429)" + (error.retryAfter ? `; try again in ${error.retryAfter} s.` : ".")];
    }
    if (error.code === "usage_disabled") return ["error", "Usage recording is off on this proxy (usage.store: none)."];
    return ["error", `The proxy answered ${error.status}: ${error.message}`];
  }

  // ---- loading ----
  let range = RANGES[location.hash.slice(1)] ? location.hash.slice(1) : "24h";
  let generation = 0;

  async function load() {
    const mine = ++generation;
    const spec = RANGES[range];
    const now = Date.now() / 1000;
    const since = Math.floor(now - spec.seconds);
    const base = { since: String(since) };
    document.body.dataset.state = "loading";
    for (const button of document.querySelectorAll("#range [data-range]")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === range));
    }
    try {
      // One request first: a wrong key then costs one failed attempt, not three (the proxy throttles those).
      const byModel = await usage({ ...base, group_by: "model" });
      const [byBackend, series] = await Promise.all([
        usage({ ...base, group_by: "backend" }),
        spec.bucket === "day" ? usage({ ...base, group_by: "day" }) : usage({ ...base, limit: String(RECORD_LIMIT) }),
      ]);
      if (mine !== generation) return; // a newer load started meanwhile
      showMessage("", "");
      renderTotals(byModel.totals);
      const buckets = spec.bucket === "day" ? dayBuckets(series.groups, since, now) : hourBuckets(series.records, since, now);
      renderCharts(buckets, spec.bucket);
      const truncated = spec.bucket === "hour" && series.records.length >= RECORD_LIMIT;
      $("series-note").hidden = !truncated;
      $("series-note").textContent = truncated ? `Drawn from the latest ${int(RECORD_LIMIT)} requests only.` : "";
      renderTable($("by-model"), "Model", byModel.groups, byModel.totals);
      renderTable($("by-backend"), "Backend", byBackend.groups, byBackend.totals);
      $("updated").textContent = "Updated " + new Date().toLocaleString();
      document.body.dataset.state = "ready";
    } catch (error) {
      if (mine !== generation) return;
      const [state, text] = explain(error);
      showMessage(state, text);
      for (const id of ["totals", "charts", "by-model", "by-backend", "updated"]) $(id).replaceChildren();
      $("bucket").textContent = "";
      $("series-note").hidden = true;
      document.body.dataset.state = state;
    }
  }

  function showMessage(kind, text) {
    const box = $("message");
    box.hidden = !text;
    box.textContent = text;
    box.className = kind;
  }

  // ---- totals ----
  function renderTotals(t) {
    const cards = [
      ["requests", "Requests", int(t.requests), ""],
      ["errors", "Error rate", percent(t.errors, t.requests), `${int(t.errors)} error${t.errors === 1 ? "" : "s"}`],
      ["input_tokens", "Input tokens", int(t.input_tokens), t.cached_tokens ? `${int(t.cached_tokens)} cached` : ""],
      ["output_tokens", "Output tokens", int(t.output_tokens), ""],
      ["cost", "Cost", money(t.cost), t.cost == null ? "no pricing" : ""],
      ["latency_p50_ms", "Latency p50", ms(t.latency_p50_ms), t.ttft_p50_ms == null ? "" : `TTFT p50 ${ms(t.ttft_p50_ms)}`],
      ["latency_p95_ms", "Latency p95", ms(t.latency_p95_ms), ""],
    ];
    $("totals").replaceChildren(...cards.map(([metric, label, value, sub]) => {
      const card = el("div", { className: "card" },
        el("div", { className: "label", textContent: label }),
        el("div", { className: "value", textContent: value }),
        el("div", { className: "sub muted", textContent: sub }));
      card.dataset.metric = metric;
      return card;
    }));
  }

  // ---- series ----
  function emptyBucket(label, title) {
    return { label, title, requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, cost: 0, priced: false };
  }

  function dayBuckets(groups, since, now) {
    const byKey = new Map(groups.map((g) => [g.key, g]));
    const out = [];
    for (let day = Math.floor(since / 86400); day <= Math.floor(now / 86400); day++) {
      const key = new Date(day * 86400000).toISOString().slice(0, 10);
      const bucket = emptyBucket(key.slice(5), key + " (UTC)");
      const g = byKey.get(key);
      if (g) {
        Object.assign(bucket, {
          requests: g.requests, errors: g.errors, input_tokens: g.input_tokens, output_tokens: g.output_tokens,
          cost: g.cost || 0, priced: g.cost != null,
        });
      }
      out.push(bucket);
    }
    return out;
  }

  function hourBuckets(records, since, now) {
    const first = Math.floor(since / 3600);
    const out = [];
    for (let hour = first; hour <= Math.floor(now / 3600); hour++) {
      const start = new Date(hour * 3600000);
      const label = String(start.getHours()).padStart(2, "0") + ":00";
      out.push(emptyBucket(label, start.toLocaleString([], { dateStyle: "short", timeStyle: "short" })));
    }
    for (const r of records) {
      const bucket = out[Math.floor(r.at / 3600) - first];
      if (!bucket) continue;
      bucket.requests += 1;
      if (r.status >= 400) bucket.errors += 1;
      bucket.input_tokens += r.input_tokens;
      bucket.output_tokens += r.output_tokens;
      if (r.cost != null) {
        bucket.cost += r.cost;
        bucket.priced = true;
      }
    }
    return out;
  }

  // ---- charts (SVG drawn by hand) ----
  function renderCharts(buckets, unit) {
    $("bucket").textContent = unit === "hour" ? "(per hour, local time)" : "(per day, UTC)";
    const priced = buckets.some((b) => b.priced);
    $("charts").replaceChildren(
      chart("Requests", buckets, [
        { name: "ok", cls: "s-ok", value: (b) => b.requests - b.errors },
        { name: "errors", cls: "s-err", value: (b) => b.errors },
      ], int, compact, true),
      chart("Tokens", buckets, [
        { name: "input", cls: "s-in", value: (b) => b.input_tokens },
        { name: "output", cls: "s-out", value: (b) => b.output_tokens },
      ], int, compact, true),
      chart("Cost", buckets, [{ name: "cost", cls: "s-cost", value: (b) => b.cost }], money, moneyAxis, false,
        priced ? "" : "No pricing configured for these models."),
    );
  }

  // The top of the y axis: four equal steps of 1, 2, 2.5 or 5 times a power of ten (whole steps for counts).
  function axisTop(value, whole) {
    if (!(value > 0)) return whole ? 4 : 1;
    const raw = (whole ? Math.max(value, 4) : value) / 4;
    const power = 10 ** Math.floor(Math.log10(raw));
    const factors = whole && power < 10 ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
    return 4 * factors.map((f) => f * power).find((step) => step >= raw * (1 - 1e-9));
  }

  function chart(title, buckets, series, format, axisFormat, whole, note) {
    const W = 420, H = 190, left = 60, right = 16, top = 10, bottom = 26;
    const plotW = W - left - right, plotH = H - top - bottom;
    const totals = buckets.map((b) => series.reduce((sum, s) => sum + s.value(b), 0));
    const max = axisTop(Math.max(0, ...totals), whole);
    const y = (v) => top + plotH - (v / max) * plotH;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title + " over time" });

    for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
      const v = max * fraction;
      root.append(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: fraction ? "grid" : "axis" }));
      root.append(svg("text", { x: left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, axisFormat(v)));
    }
    const slot = plotW / buckets.length;
    const barW = Math.max(1, slot * 0.72);
    const every = Math.ceil(buckets.length / 8);
    buckets.forEach((b, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      let base = 0;
      const group = svg("g", {});
      for (const s of series) {
        const v = s.value(b);
        if (v > 0) {
          group.append(svg("rect", { x, width: barW, y: y(base + v), height: Math.max(0.5, y(base) - y(base + v)), class: s.cls }));
        }
        base += v;
      }
      group.append(svg("title", {}, `${b.title}: ` + series.map((s) => `${format(s.value(b))} ${s.name}`).join(", ")));
      // a transparent full-height target so the tooltip also works over empty buckets
      group.prepend(svg("rect", { x: left + i * slot, width: slot, y: top, height: plotH, class: "hit" }));
      root.append(group);
      if ((buckets.length - 1 - i) % every === 0) { // labels line up with the newest bucket
        root.append(svg("text", { x: left + i * slot + slot / 2, y: H - 8, class: "tick", "text-anchor": "middle" }, b.label));
      }
    });

    const legend = el("div", { className: "legend" });
    if (series.length > 1) {
      for (const s of series) legend.append(el("span", { className: "key " + s.cls, textContent: s.name }));
    }
    const figure = el("figure", { className: "chart" },
      el("figcaption", {}, el("strong", { textContent: title }), " ",
        el("span", { className: "muted", textContent: format(totals.reduce((a, b) => a + b, 0)) }), legend),
      root);
    if (note) figure.append(el("p", { className: "muted note", textContent: note }));
    return figure;
  }

  // ---- tables ----
  const COLUMNS = [
    ["Requests", (g) => int(g.requests)],
    ["Input tokens", (g) => int(g.input_tokens)],
    ["Output tokens", (g) => int(g.output_tokens)],
    ["Cost", (g) => money(g.cost)],
    ["Errors", (g) => int(g.errors)],
    ["Error rate", (g) => percent(g.errors, g.requests)],
    ["p50", (g) => ms(g.latency_p50_ms)],
    ["p95", (g) => ms(g.latency_p95_ms)],
  ];

  function renderTable(table, keyTitle, groups, totals) {
    const head = el("tr", {}, el("th", { textContent: keyTitle, scope: "col" }),
      ...COLUMNS.map(([name]) => el("th", { textContent: name, scope: "col" })));
    const rows = [...groups].sort((a, b) => b.requests - a.requests || String(a.key).localeCompare(String(b.key)));
    const body = rows.length
      ? rows.map((g) => row(g.key == null ? "(none)" : String(g.key), g, g.key == null ? "muted" : "", g.errors ? "has-errors" : ""))
      : [el("tr", {}, el("td", { className: "muted", colSpan: COLUMNS.length + 1, textContent: "No requests in this range." }))];
    const foot = rows.length > 1 ? [el("tfoot", {}, row("All", totals, "", "total"))] : [];
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body), ...foot);
  }

  function row(name, g, keyClass, rowClass) {
    const tr = el("tr", { className: rowClass },
      el("th", { scope: "row", className: keyClass, textContent: name }),
      ...COLUMNS.map(([, cell]) => el("td", { textContent: cell(g) })));
    return tr;
  }

  // ---- wiring ----
  for (const button of document.querySelectorAll("#range [data-range]")) {
    button.addEventListener("click", () => {
      range = button.dataset.range;
      history.replaceState(null, "", "#" + range);
      load();
    });
  }
  $("refresh").addEventListener("click", () => load());
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    storeKey($("key").value.trim());
    $("key").value = "";
    load();
  });
  $("forget").addEventListener("click", () => {
    storeKey("");
    load();
  });
  showKeyState();
  load();
})();
