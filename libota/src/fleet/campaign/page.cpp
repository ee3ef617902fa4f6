// The operator's page (campaign_view.hpp: render_page), self-contained: its
// style and script inline, no external resource. The views are embedded at
// the marker, or, where it stays, fetched from api/view every 2 s.
#include <string>

namespace ota::campaign {

std::string page_template() {
  return R"OTAPAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ota campaigns</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2329; background: #fafbfc; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  h2 { font-size: 1.2em; margin: 1.2em 0 .3em; }
  h3 { font-size: 1em; margin: .8em 0 .2em; }
  .meta { color: #57606a; }
  .state { display: inline-block; padding: 0 .5em; border-radius: .6em; color: #fff; font-weight: 600; }
  .state-running { background: #2f81f7; } .state-paused { background: #bf8700; }
  .state-aborted { background: #cf222e; } .state-completed { background: #1a7f37; }
  .campaign { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 1em; margin: 1em 0; }
  .waves { display: flex; flex-wrap: wrap; gap: 1em; }
  .wave { border: 1px solid #d0d7de; border-radius: 6px; padding: .5em; }
  .wave svg { display: block; }
  table { border-collapse: collapse; }
  th, td { text-align: left; padding: .15em .6em; border-bottom: 1px solid #eaeef2; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .legend span { margin-right: 1em; }
  .ok { color: #1a7f37; } .bad { color: #cf222e; } .prog { color: #2f81f7; }
  input[type=search] { width: 20em; padding: .2em .4em; }
  #updated { color: #57606a; }
</style>
</head>
<body>
<h1>ota campaigns</h1>
<div class="meta"><span id="source"></span> <span id="updated"></span></div>
<div id="campaigns"></div>
<script id="view" type="application/json">/*OTA_VIEW*/</script>
<script>
"use strict";
// Every value from devices or the broker goes in through textContent or an
// attribute, never as markup.
const $ = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
const svgNs = "http://www.w3.org/2000/svg";
const s$ = (tag, attrs = {}) => {
  const e = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};
const pct = (x) => (100 * x).toFixed(1) + " %";
const when = (t) => t ? new Date(t * 1000).toISOString().replace("T", " ").replace(".000Z", " UTC") : "";
const filters = {};
// A filter given in the address (#q=TEXT) applies to every device table.
const initialFilter = new URLSearchParams(location.hash.slice(1)).get("q") || "";

// One wave: its success and failure ratios and its progress over time, with
// the gates' thresholds as dashed lines.
function waveChart(c, i) {
  const W = 320, H = 150, L = 34, B = 20;
  const svg = s$("svg", { width: W, height: H, "data-wave": String(i + 1), role: "img" });
  const pts = c.history.filter((h) => h.waves[i]);
  const t0 = pts.length ? pts[0].t : 0, t1 = pts.length ? Math.max(pts[pts.length - 1].t, t0 + 1) : 1;
  const x = (t) => L + (W - L - 6) * (t - t0) / (t1 - t0);
  const y = (v) => 6 + (H - B - 6) * (1 - v);
  svg.append(s$("rect", { x: L, y: 6, width: W - L - 6, height: H - B - 6, fill: "#fff", stroke: "#d0d7de" }));
  for (const v of [0, 0.5, 1]) {
    const t = s$("text", { x: 2, y: y(v) + 4, "font-size": 10, fill: "#57606a" });
    t.textContent = (v * 100) + "%";
    svg.append(t);
  }
  const line = (v, color, name) => {
    svg.append(s$("line", { x1: L, x2: W - 6, y1: y(v), y2: y(v), stroke: color, "stroke-dasharray": "4 3",
                            "data-threshold": name }));
  };
  line(c.gates.success, "#1a7f37", "success");
  line(c.gates.failure, "#cf222e", "failure");
  const series = (f, color, name) => {
    if (!pts.length) return;
    const d = pts.map((h, k) => (k ? "L" : "M") + x(h.t).toFixed(1) + " " + y(f(h.waves[i])).toFixed(1)).join(" ");
    svg.append(s$("path", { d, fill: "none", stroke: color, "stroke-width": 2, "data-series": name }));
  };
  const fin = (w) => w.succeeded + w.failed + w.rolled_back;
  series((w) => w.targeted ? fin(w) / w.targeted : 0, "#2f81f7", "progress");
  series((w) => fin(w) ? w.succeeded / fin(w) : 0, "#1a7f37", "success");
  series((w) => fin(w) ? (w.failed + w.rolled_back) / fin(w) : 0, "#cf222e", "failure");
  const t = s$("text", { x: L, y: H - 5, "font-size": 10, fill: "#57606a" });
  t.textContent = pts.length ? when(t0) + " \u2192 " + when(t1) : "no samples yet";
  svg.append(t);
  return svg;
}

function render(view) {
  const root = document.getElementById("campaigns");
  root.replaceChildren();
  document.getElementById("updated").textContent = "as of " + when(view.time);
  document.getElementById("source").textContent = view.source || "";
  for (const c of view.campaigns) {
    const box = $("section", { class: "campaign", "data-campaign": c.id });
    box.append($("h2", {}, c.id + " ", $("span", { class: "state state-" + c.state }, c.state)));
    box.append($("div", { class: "meta" }, "fleet " + c.fleet + ", version " + c.version +
      ", " + c.waves.length + " waves, gates: success \u2265 " + pct(c.gates.success) +
      ", failure \u2264 " + pct(c.gates.failure) + ", min sample " + c.gates.min_sample +
      (c.reason ? ", last decision: " + c.reason : "")));
    if (c.advisory)
      box.append($("div", { class: "advisory" }, "security update: " + c.advisory.ids.join(", ") + ": " + c.advisory.text));
    const waves = $("div", { class: "waves" });
    c.waves.forEach((w, i) => {
      const fin = w.succeeded + w.failed + w.rolled_back;
      const card = $("div", { class: "wave" },
        $("h3", {}, "Wave " + (i + 1) + " (" + w.percent + " % of the fleet)" + (w.open ? "" : ", not open")),
        waveChart(c, i),
        $("div", { class: "legend" }, $("span", { class: "prog" }, "\u2014 progress"),
          $("span", { class: "ok" }, "\u2014 success"), $("span", { class: "bad" }, "\u2014 failure"), "- - gates"),
        $("div", { "data-counts": String(i + 1) }, w.targeted + " targeted, " + w.succeeded + " succeeded, " +
          (w.failed + w.rolled_back) + " failed (" + w.rolled_back + " rolled back, " + w.timed_out + " timed out), " +
          w.pending + " pending" + (fin ? ", success " + pct(w.succeeded / fin) : "")));
      waves.append(card);
    });
    box.append(waves);
    box.append($("h3", {}, "Failures by reason"));
    const reasons = Object.entries(c.failures).sort((a, b) => b[1] - a[1]);
    if (!reasons.length) box.append($("div", { class: "meta" }, "none"));
    else {
      const t = $("table", { class: "failures" }, $("tr", {}, $("th", {}, "devices"), $("th", {}, "reason")));
      for (const [r, n] of reasons) t.append($("tr", {}, $("td", { class: "n" }, String(n)), $("td", {}, r)));
      box.append(t);
    }
    box.append($("h3", {}, "Devices (" + c.devices.length + ")"));
    const search = $("input", { type: "search", placeholder: "filter: device, phase, version, reason",
                                "data-search": c.id });
    search.value = filters[c.id] !== undefined ? filters[c.id] : initialFilter;
    const table = $("table", { class: "devices" });
    const fill = () => {
      const q = search.value.toLowerCase();
      filters[c.id] = search.value;
      table.replaceChildren($("tr", {}, ...["device", "wave", "phase", "version", "bytes", "reason"].map((h) => $("th", {}, h))));
      for (const d of c.devices) {
        const text = [d.device, d.phase, d.version, d.reason].join(" ").toLowerCase();
        if (q && !text.includes(q)) continue;
        table.append($("tr", { "data-device": d.device }, $("td", {}, d.device), $("td", { class: "n" }, String(d.wave + 1)),
          $("td", {}, d.phase), $("td", {}, d.version), $("td", { class: "n" }, String(d.bytes)), $("td", {}, d.reason)));
      }
    };
    search.addEventListener("input", fill);
    fill();
    box.append(search, table);
    root.append(box);
  }
  if (!view.campaigns.length) root.append($("p", { class: "meta" }, "No campaign yet."));
}

const embedded = document.getElementById("view").textContent.trim();
if (embedded && embedded !== "/*OTA_VIEW*/") {
  render(JSON.parse(embedded));
} else {
  const tick = () => fetch("api/view", { cache: "no-store" }).then((r) => r.json()).then(render)
    .catch((e) => { document.getElementById("updated").textContent = "not updated: " + e; });
  tick();
  setInterval(tick, 2000);
}
</script>
</body>
</html>
)OTAPAGE";
}

}  // namespace ota::campaign
