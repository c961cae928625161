"use strict";
// pytest-smoltrace report: sorting, filtering and the item details (checks, tool calls, answer, error, trace
// waterfall), drawn from the JSON island #smoltrace-data. Every value is written with textContent or as an SVG
// attribute, never parsed as markup. #item=<node id> opens that item (every item of that node id in a comparison);
// #item=A&item=B opens several.
(function () {
  const D = JSON.parse(document.getElementById("smoltrace-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const tbody = document.getElementById("items");
  const done = () => { document.documentElement.dataset.ready = "1"; };
  if (!tbody) { done(); return; }
  const rows = Array.from(tbody.querySelectorAll("tr.item"));
  const columns = rows.length ? rows[0].children.length : 1;
  const details = new Map();
  const opened = new Set();

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function ms(v) {
    if (v === null || v === undefined) return "—";
    if (v === 0) return "0 ms";
    if (v < 1) return v.toFixed(2) + " ms";
    if (v < 1000) return v.toFixed(0) + " ms";
    return (v / 1000).toFixed(2) + " s";
  }
  function num(v) { return v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"); }
  function part(box, title) {
    const p = el("div", "part");
    p.appendChild(el("h4", null, title));
    box.appendChild(p);
    return p;
  }
  function table(head, body, rowClass) {
    const t = el("table");
    const tr = el("tr");
    head.forEach((h) => tr.appendChild(el("th", null, h)));
    t.appendChild(el("thead")).appendChild(tr);
    const tb = t.appendChild(el("tbody"));
    body.forEach((cells, i) => {
      const r = el("tr", rowClass ? rowClass(i) : null);
      cells.forEach((c) => {
        if (c instanceof Node) { const td = el("td"); td.appendChild(c); r.appendChild(td); }
        else r.appendChild(el("td", Array.isArray(c) ? c[1] : null, Array.isArray(c) ? c[0] : c));
      });
      tb.appendChild(r);
    });
    return t;
  }

  function waterfall(spans, more) {
    const W = 980, H0 = 22, RH = 19, LW = 320, PAD = 80;
    const total = Math.max(0.001, ...spans.map((s) => s[3] + s[4]));
    const H = H0 + spans.length * RH + 6;
    const s = svg("svg", { class: "waterfall", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
      "aria-label": `trace waterfall, ${spans.length} spans` });
    const x = (v) => LW + (v / total) * (W - LW - PAD);
    for (let i = 0; i <= 4; i++) {
      const t = (total * i) / 4, px = x(t);
      s.appendChild(svg("line", { x1: px, x2: px, y1: H0 - 6, y2: H, class: "grid" }));
      s.appendChild(svg("text", { x: px, y: 12, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle",
        class: "tick" }, ms(t)));
    }
    spans.forEach((sp, i) => {
      const [depth, name, cat, start, dur, status, note] = sp;
      const y = H0 + i * RH;
      const label = name.length > 44 - depth * 2 ? name.slice(0, 43 - depth * 2) + "…" : name;
      s.appendChild(svg("text", { x: 4 + depth * 12, y: y + 13 }, label));
      const kind = /^[a-z]+$/.test(cat) ? cat : "other";
      const r = svg("rect", { x: x(start), y: y + 3, width: Math.max(1.5, x(start + dur) - x(start)), height: 12,
        rx: 2, class: `mark cat-${kind}` + (status === "ERROR" ? " err" : "") });
      r.appendChild(svg("title", {}, [name, cat, ms(dur), status, note].filter(Boolean).join(" · ")));
      s.appendChild(r);
      s.appendChild(svg("text", { x: x(start + dur) + 4, y: y + 13, class: "dur" }, ms(dur)));
    });
    const wrap = el("div");
    const keys = el("div", "spankeys");
    ["item", "agent", "step", "llm", "tool"].forEach((k) => {
      const key = el("span");
      key.appendChild(el("i", "k-" + k));
      key.appendChild(document.createTextNode(k));
      keys.appendChild(key);
    });
    wrap.appendChild(keys);
    wrap.appendChild(s);
    if (more) wrap.appendChild(el("p", "note", `${more} more spans not drawn`));
    return wrap;
  }

  function render(it) {
    const box = el("div", "detail");
    const run = D.runs[it.r] || {};
    const meta = el("p", "meta");
    const link = el("a", null, it.n);
    link.href = "#item=" + encodeURIComponent(it.k);
    meta.appendChild(link);
    const facts = [D.runs.length > 1 ? "run " + run.label : "", it.sr ? "stop reason " + it.sr : "",
      "steps " + (it.s === null || it.s === undefined ? "—" : it.s),
      "tokens " + num(it.tok) + (it.pt !== null && it.pt !== undefined ? ` (in ${num(it.pt)} · out ${num(it.ct)})` : ""),
      it.usd === null || it.usd === undefined ? "" : "cost $" + it.usd, "duration " + ms(it.ms)];
    meta.appendChild(document.createTextNode(" · " + facts.filter(Boolean).join(" · ")));
    box.appendChild(meta);
    if (it.bad) { box.appendChild(el("p", "missing", "details unavailable: " + it.bad)); return box; }
    if (it.txt) part(box, "Failure message (as pytest prints it)").appendChild(el("pre", "failure", it.txt));
    part(box, "Checks").appendChild(it.ck.length
      ? table(["", "check", "expected", "actual"], it.ck.map((c) => [[c[0] ? "PASS" : "FAIL", "st"], c[1], c[2], c[3]]),
        (i) => (it.ck[i][0] ? "pass" : "fail"))
      : el("p", "note", "no checks"));
    const calls = part(box, "Tool calls (executed)");
    calls.appendChild(it.tc.length
      ? table(["#", "tool", "arguments", "result / error", "time"], it.tc.map((c, i) => [String(i + 1), c[0],
        [c[1], "mono"], c[3] !== null ? ["✗ " + c[3], "mono fail"] : [c[2] === null ? "—" : c[2], "mono"], ms(c[4])]))
      : el("p", "note", "no tool was executed"));
    part(box, "Final answer").appendChild(it.resp === null || it.resp === undefined
      ? el("p", "note", "no final answer") : el("pre", null, it.resp));
    if (it.err) {
      const typed = it.et && !it.err.startsWith(it.et) ? it.et + ": " + it.err : it.err;
      part(box, "Error").appendChild(el("pre", "failure", typed));
    }
    if (it.att) {
      part(box, "Attempts").appendChild(table(["attempt", "outcome", "error"],
        it.att.map((a) => [String(a[0]), [a[1], "status " + a[1]], a[2] || ""])));
    }
    if (it.p !== null && it.p !== undefined) part(box, "Prompt").appendChild(el("pre", null, it.p));
    const trace = part(box, "Trace");
    if (it.sp && it.sp.length) trace.appendChild(waterfall(it.sp, it.spm || 0));
    else trace.appendChild(el("p", "missing", it.sp ? "the trace has no spans"
      : "no trace for this item (traces.json: " + (run.traces || "missing") + ")"));
    return box;
  }

  function toggle(tr, force) {
    const i = Number(tr.dataset.i);
    const open = force === undefined ? !opened.has(i) : force;
    let d = details.get(tr);
    if (open) {
      opened.add(i);
      if (!d) {
        d = el("tr", "detail-row");
        d.id = "detail-" + i;
        const td = el("td");
        td.colSpan = columns;
        td.appendChild(render(D.items[i]));
        d.appendChild(td);
        tr.after(d);
        details.set(tr, d);
      }
      d.hidden = tr.hidden;
    } else {
      opened.delete(i);
      if (d) d.hidden = true;
    }
    tr.classList.toggle("open", open);
    const b = tr.querySelector("button.open");
    if (b) b.setAttribute("aria-expanded", String(open));
  }
  tbody.addEventListener("click", (e) => {
    if (e.target.closest("a")) return;
    const tr = e.target.closest("tr.item");
    if (tr) toggle(tr);
  });

  // filters
  const q = document.getElementById("q");
  const selects = Array.from(document.querySelectorAll("select[data-filter]"));
  const count = document.getElementById("count");
  const haystack = new Map();
  const textOf = (it) => {
    if (!haystack.has(it.i)) {
      haystack.set(it.i, [it.n, it.t, it.m, it.c, it.p, it.resp, it.err].filter(Boolean).join("\n").toLowerCase());
    }
    return haystack.get(it.i);
  };
  function apply() {
    const needle = q ? q.value.trim().toLowerCase() : "";
    const active = selects.filter((s) => s.value !== "").map((s) => [s.dataset.filter, s.value]);
    let shown = 0;
    rows.forEach((tr) => {
      const it = D.items[Number(tr.dataset.i)];
      const ok = active.every(([k, v]) => String(it[k] === null || it[k] === undefined ? "" : it[k]) === v)
        && (!needle || textOf(it).includes(needle));
      tr.hidden = !ok;
      const d = details.get(tr);
      if (d) d.hidden = !ok || !opened.has(Number(tr.dataset.i));
      if (ok) shown++;
    });
    if (count) count.textContent = shown === rows.length ? `${rows.length} items` : `${shown} of ${rows.length} items`;
  }
  if (q) q.addEventListener("input", apply);
  selects.forEach((s) => s.addEventListener("change", apply));

  // sorting
  const ORDER = { o: ["passed", "failed", "error", "cancelled", "crashed"], d: ["easy", "medium", "hard"] };
  let sortKey = null, sortDir = 1;
  function value(it, k) {
    if (ORDER[k]) { const n = ORDER[k].indexOf(it[k]); return n < 0 ? (it[k] ? 50 : null) : n; }
    if (k === "t") return it.t + "\u0000" + String(it.rep).padStart(6, "0");
    const v = it[k];
    return v === "" || v === undefined ? null : v;
  }
  function sortBy(k) {
    sortDir = sortKey === k ? -sortDir : 1;
    sortKey = k;
    const order = rows.slice().sort((a, b) => {
      const x = value(D.items[Number(a.dataset.i)], k), y = value(D.items[Number(b.dataset.i)], k);
      if (x === null || y === null) return x === y ? Number(a.dataset.i) - Number(b.dataset.i) : x === null ? 1 : -1;
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return c * sortDir || Number(a.dataset.i) - Number(b.dataset.i);
    });
    order.forEach((tr) => {
      tbody.appendChild(tr);
      const d = details.get(tr);
      if (d) tbody.appendChild(d);
    });
    document.querySelectorAll("button.sort").forEach((b) => {
      const th = b.parentElement;
      if (b.dataset.key === k) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
  }
  document.querySelectorAll("button.sort").forEach((b) => b.addEventListener("click", () => sortBy(b.dataset.key)));

  // #item=<node id>[&item=<node id>…] (each one URL-encoded)
  function fromHash() {
    const wanted = new Set();
    location.hash.slice(1).split("&").forEach((pair) => {
      if (!pair.startsWith("item=")) return;
      let id = pair.slice(5);
      try { id = decodeURIComponent(id); } catch (e) { /* keep it as written */ }
      wanted.add(id);
    });
    if (!wanted.size) return;
    const hits = rows.filter((tr) => { const it = D.items[Number(tr.dataset.i)]; return wanted.has(it.k) || wanted.has(it.n); });
    if (!hits.length) return;
    if (q) q.value = "";
    selects.forEach((s) => { s.value = ""; });
    apply();
    hits.forEach((tr) => toggle(tr, true));
    hits[0].scrollIntoView({ block: "start" });
  }
  window.addEventListener("hashchange", fromHash);
  apply();
  fromHash();
  done();
})();
