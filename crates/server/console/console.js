// Burrow's operator console: one page, hash routes, every call through the admin API with the
// token pasted at sign-in (kept in this tab's session storage only). Everything shown is built
// with DOM calls and textContent, never HTML strings: the data is the users', not ours.
"use strict";

const TOKEN_KEY = "burrow.adminToken";
const PAGE_SIZE = 20;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// ---- DOM helpers ------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "onclick" || name === "onsubmit" || name === "onchange") node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
}

function time(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "—";
}

function statusBadge(status) {
  const s = status || "unknown";
  return el("span", { class: `status ${s}`, "data-status": s }, s);
}

function table(id, headings, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function errorLine(e) {
  return el("p", { class: "error", role: "alert" }, e.message || String(e));
}

// ---- The admin API ----------------------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(method, path, body) {
  const response = await fetch(`/api/admin/${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token()}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { /* not JSON: shown as text */ }
  if (!response.ok) {
    if (response.status === 401) signOut("Your token was refused (expired or invalid): sign in again.");
    const message = json && json.error ? json.error : text || response.statusText;
    const details = json && json.details ? ` — ${typeof json.details === "string" ? json.details : JSON.stringify(json.details)}` : "";
    const error = new Error(`${response.status}: ${message}${details}`);
    error.status = response.status;
    throw error;
  }
  return json;
}

// ---- Sign-in ----------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  signInPage(message);
}

function signInPage(message) {
  document.getElementById("nav").hidden = true;
  const input = el("input", { id: "token", type: "password", autocomplete: "off", placeholder: "admin token (burrow token --admin)" });
  const problem = el("div");
  if (message) problem.append(errorLine(new Error(message)));
  const submit = async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await api("GET", "actors/count");
      location.hash = "#/instances";
      route();
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      problem.replaceChildren(errorLine(e));
    }
  };
  show(el("section", {},
    el("h1", {}, "Sign in"),
    el("p", { class: "note" }, "Paste an admin token. It stays in this tab only and is sent to this server's admin API."),
    el("form", { class: "row", onsubmit: submit }, input, el("button", { id: "sign-in", class: "primary", type: "submit" }, "Sign in")),
    problem));
  input.focus();
}

// ---- Instances --------------------------------------------------------------------------

async function instancesPage(params) {
  const by = params.get("by") || "user";
  const query = params.get("q") || "";
  const cursor = params.get("cursor");
  const select = el("select", { id: "search-by" },
    ["user", "org", "instance"].map((v) => el("option", { value: v, selected: v === by }, `${v} id`)));
  const input = el("input", { id: "search", type: "search", value: query, placeholder: "user id, organisation id or instance id" });
  const results = el("div", { id: "results" });
  const search = (event) => {
    event.preventDefault();
    const q = input.value.trim();
    if (select.value === "instance") {
      location.hash = `#/instances/${encodeURIComponent(q)}`;
    } else {
      location.hash = `#/instances?by=${select.value}&q=${encodeURIComponent(q)}`;
    }
  };
  show(el("h1", {}, "Instances"),
    el("section", {}, el("form", { class: "row", onsubmit: search }, select, input,
      el("button", { id: "search-go", class: "primary", type: "submit" }, "Search")), results));
  if (!query) {
    results.append(el("p", { class: "note" }, "Search by a user's id, an organisation's id, or open an instance by its id."));
    return;
  }
  try {
    const key = by === "org" ? "orgId" : "userId";
    const page = await api("GET", `instances?${key}=${encodeURIComponent(query)}&limit=${PAGE_SIZE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    const rows = page.instances.map((row) => {
      const status = el("td", {}, "…");
      const id = row.instanceId;
      if (id) {
        api("GET", `instances/${id}`).then((d) => status.replaceChildren(statusBadge(d.status)),
          (e) => status.replaceChildren(el("span", { class: "error" }, e.message)));
      } else {
        status.replaceChildren(el("span", { class: "note" }, "legacy"));
      }
      return el("tr", {},
        el("td", { class: "mono" }, id ? el("a", { href: `#/instances/${id}` }, id) : `${row.rowId} (legacy)`),
        el("td", { class: "mono" }, row.userId),
        el("td", { class: "mono" }, row.orgId || "—"),
        el("td", { class: "mono" }, row.sandboxId),
        el("td", {}, time(row.createdAt)),
        status);
    });
    results.append(table("instances", ["Instance", "User", "Organisation", "Sandbox", "Created", "Status"], rows));
    if (!rows.length) results.append(el("p", { class: "note" }, "No active instance."));
    const pager = el("div", { class: "row" });
    if (cursor) pager.append(el("button", { type: "button", onclick: () => history.back() }, "Previous"));
    if (page.nextCursor) {
      pager.append(el("button", { id: "next-page", type: "button", onclick: () => {
        location.hash = `#/instances?by=${by}&q=${encodeURIComponent(query)}&cursor=${encodeURIComponent(page.nextCursor)}`;
      } }, "Next page"));
    }
    results.append(pager);
  } catch (e) {
    results.append(errorLine(e));
  }
}

const ACTIONS = {
  start: { label: "Start", body: { skipCooldown: true } },
  stop: { label: "Stop" },
  restart: { label: "Restart", body: {} },
  destroy: { label: "Destroy", danger: true },
};

async function instancePage(id) {
  if (!UUID.test(id)) {
    show(el("h1", {}, "Instance"), errorLine(new Error(`${JSON.stringify(id)} is not an instance id (a UUID)`)));
    return;
  }
  const details = el("div", { id: "details" }, "Loading…");
  const confirmArea = el("div");
  const outcome = el("div", { id: "outcome" });
  const buttons = Object.entries(ACTIONS).map(([action, spec]) =>
    el("button", { id: `action-${action}`, type: "button", class: spec.danger ? "danger" : "", onclick: () => ask(action) }, spec.label));
  show(el("h1", {}, "Instance ", el("span", { class: "mono" }, id)),
    el("section", {}, el("div", { class: "row" }, buttons), confirmArea, outcome),
    details);

  function ask(action) {
    const spec = ACTIONS[action];
    confirmArea.replaceChildren(el("div", { class: "confirm row", id: "confirm-bar" },
      `${spec.label} instance ${id}?`,
      el("button", { id: "confirm", type: "button", class: spec.danger ? "danger" : "primary", onclick: () => run(action) }, `Yes, ${spec.label.toLowerCase()}`),
      el("button", { id: "cancel", type: "button", onclick: () => confirmArea.replaceChildren() }, "Cancel")));
  }

  async function run(action) {
    confirmArea.replaceChildren();
    outcome.replaceChildren(el("p", { class: "note" }, `${ACTIONS[action].label}…`));
    try {
      const answer = await api("POST", `instances/${id}/${action}`, ACTIONS[action].body);
      outcome.replaceChildren(el("p", { class: "note" }, `${ACTIONS[action].label}: ${JSON.stringify(answer)}`));
    } catch (e) {
      outcome.replaceChildren(errorLine(e));
    }
    await load();
  }

  async function load() {
    try {
      const d = await api("GET", `instances/${id}`);
      const secretNames = Object.keys(d.secrets || {});
      const envNames = d.envVarNames || [];
      const withheld = Object.entries(d.withheldConfigNames || {});
      const line = (term, value) => [el("dt", {}, term), el("dd", {}, value)];
      details.replaceChildren(
        el("section", {}, el("h2", {}, "Status"), el("dl", {},
          line("Status", statusBadge(d.status)),
          line("User", el("span", { class: "mono" }, d.userId)),
          line("Organisation", el("span", { class: "mono" }, d.orgId || "—")),
          line("Provisioned", time(d.provisionedAt)),
          line("Last started", time(d.lastStartedAt)),
          line("Last stopped", time(d.lastStoppedAt)),
          line("Failed health checks", d.healthCheckFailCount ?? 0),
          line("Last start error", d.lastStartError ? JSON.stringify(d.lastStartError) : "—"),
          line("Last restart error", d.lastRestartError ? JSON.stringify(d.lastRestartError) : "—"),
          line("Last destroy error", d.lastDestroyError ? JSON.stringify(d.lastDestroyError) : "—"))),
        el("section", {}, el("h2", {}, "Sandbox"), el("dl", {},
          line("Sandbox id", el("span", { class: "mono" }, d.sandboxId)),
          line("Machine", el("span", { class: "mono" }, d.machineId || "—")),
          line("Volume", el("span", { class: "mono" }, d.volumeId || "—")),
          line("Region", d.region || "—"),
          line("Image", d.trackedImageTag || d.imageVariant || "—"))),
        el("section", {}, el("h2", {}, "Alarms"), el("dl", {},
          line("Next alarm", el("span", { id: "next-alarm" }, time(d.nextAlarmAt))))),
        el("section", { id: "configuration" }, el("h2", {}, "Configuration"),
          el("p", { class: "note" }, "Names only: values are never shown here."),
          el("dl", {},
            line(`Env vars (${envNames.length})`, el("span", { class: "mono", id: "env-names" }, envNames.join(", ") || "—")),
            line(`Secrets (${secretNames.length})`, el("span", { class: "mono", id: "secret-names" }, secretNames.join(", ") || "—")),
            withheld.length ? line("Withheld", withheld.map(([n, why]) => `${n}: ${why}`).join("; ")) : null)));
    } catch (e) {
      details.replaceChildren(errorLine(e));
    }
  }
  await load();
}

// ---- Actors -----------------------------------------------------------------------------

async function actorsPage() {
  const namespaces = el("section", { id: "namespaces" }, el("h2", {}, "Namespaces"));
  const quarantined = el("section", { id: "quarantined" }, el("h2", {}, "Quarantined actor files"));
  const dead = el("section", { id: "dead-alarms" }, el("h2", {}, "Dead-letter alarms"));
  show(el("h1", {}, "Actors"), namespaces, quarantined, dead);
  const fill = async (into, load) => {
    try { into.append(await load()); } catch (e) { into.append(errorLine(e)); }
  };
  await Promise.all([
    fill(namespaces, async () => {
      const { namespaces: list } = await api("GET", "namespaces");
      return table("namespace-table", ["Namespace", "Actors (this node's catalog)"],
        list.map((n) => el("tr", {}, el("td", { class: "mono" }, n.namespace), el("td", {}, n.count))));
    }),
    fill(quarantined, async () => {
      const { incidents } = await api("GET", "incidents?kind=quarantined&limit=100");
      if (!incidents.length) return el("p", { class: "note" }, "None.");
      return table("quarantined-table", ["Actor", "Namespace", "Node", "When", "Reason", "Moved to"],
        incidents.map((i) => el("tr", {}, el("td", { class: "mono" }, i.actorId), el("td", {}, i.namespace),
          el("td", {}, i.nodeId || "—"), el("td", {}, time(i.at)), el("td", {}, i.reason), el("td", { class: "mono" }, i.movedTo))));
    }),
    fill(dead, async () => {
      const { incidents } = await api("GET", "incidents?kind=deadAlarm&limit=100");
      if (!incidents.length) return el("p", { class: "note" }, "None.");
      return table("dead-table", ["Actor", "Namespace", "Alarm", "Due", "Attempts", "Last error"],
        incidents.map((i) => el("tr", {}, el("td", { class: "mono" }, i.actorId), el("td", {}, i.namespace),
          el("td", {}, i.alarm), el("td", {}, time(i.dueAt)), el("td", {}, i.attempts), el("td", {}, i.lastError))));
    }),
  ]);
}

// ---- Health: charts from /metrics, sampled while the console is open --------------------

const SAMPLE_MS = 2000;
const KEEP = 300; // ten minutes of samples
const samples = [];

function parseMetrics(text) {
  const series = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[3] || "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    series.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return series;
}

function sum(series, name, keep) {
  return series.filter((s) => s.name === name && (!keep || keep(s.labels))).reduce((a, s) => a + s.value, 0);
}

function buckets(series) {
  const byLe = new Map();
  for (const s of series) {
    if (s.name !== "burrow_http_request_seconds_bucket") continue;
    byLe.set(s.labels.le, (byLe.get(s.labels.le) || 0) + s.value);
  }
  return byLe;
}

async function sample() {
  try {
    const response = await fetch("/metrics");
    if (!response.ok) return;
    const series = parseMetrics(await response.text());
    samples.push({
      at: Date.now(),
      requests: sum(series, "burrow_http_requests_total"),
      activations: sum(series, "burrow_activations_total"),
      resident: sum(series, "burrow_resident_actors"),
      fds: sum(series, "process_open_fds"),
      rss: sum(series, "process_resident_memory_bytes"),
      buckets: buckets(series),
    });
    if (samples.length > KEEP) samples.shift();
    if (location.hash.startsWith("#/health")) drawHealth();
  } catch (_) { /* the next sample will tell */ }
}

// The q-quantile of the requests answered between two samples, from their bucket counts.
function quantile(before, after, q) {
  const les = [...after.buckets.keys()].filter((le) => le !== "+Inf").map(Number).sort((a, b) => a - b);
  const count = (le) => (after.buckets.get(String(le)) || 0) - (before.buckets.get(String(le)) || 0);
  const total = (after.buckets.get("+Inf") || 0) - (before.buckets.get("+Inf") || 0);
  if (total <= 0) return null;
  for (const le of les) if (count(le) >= q * total) return le * 1000;
  return les.length ? les[les.length - 1] * 1000 : null;
}

function rates(key) {
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].at - samples[i - 1].at) / 1000;
    points.push({ at: samples[i].at, value: dt > 0 ? Math.max(0, samples[i][key] - samples[i - 1][key]) / dt : 0 });
  }
  return points;
}

const CHARTS = [
  { id: "chart-requests", title: "Requests per second", points: () => rates("requests"), unit: "/s" },
  { id: "chart-latency", title: "Request latency p50 / p99 (ms, bucket bounds)", points: () => samples.slice(1).map((s, i) => ({ at: s.at, value: quantile(samples[i], s, 0.5), second: quantile(samples[i], s, 0.99) })), unit: " ms" },
  { id: "chart-activations", title: "Activations per second", points: () => rates("activations"), unit: "/s" },
  { id: "chart-resident", title: "Resident actors", points: () => samples.map((s) => ({ at: s.at, value: s.resident })), unit: "" },
];

function drawChart(canvas, points) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth * ratio;
  const height = canvas.clientHeight * ratio;
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  g.strokeStyle = "#d9dee5";
  g.strokeRect(0.5, 0.5, width - 1, height - 1);
  const values = points.flatMap((p) => [p.value, p.second]).filter((v) => v !== null && v !== undefined);
  if (points.length < 2 || !values.length) {
    g.fillStyle = "#5f6b7a";
    g.font = `${12 * ratio}px system-ui`;
    g.fillText("collecting samples…", 10 * ratio, 20 * ratio);
    return;
  }
  const max = Math.max(...values, 1e-9) * 1.15;
  const t0 = points[0].at;
  const t1 = points[points.length - 1].at;
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * (width - 8 * ratio) + 4 * ratio;
  const y = (v) => height - 4 * ratio - (v / max) * (height - 20 * ratio);
  for (const [key, colour] of [["value", "#7a4b22"], ["second", "#9a6700"]]) {
    g.beginPath();
    g.strokeStyle = colour;
    g.lineWidth = 1.5 * ratio;
    let started = false;
    for (const p of points) {
      if (p[key] === null || p[key] === undefined) continue;
      if (started) g.lineTo(x(p.at), y(p[key])); else g.moveTo(x(p.at), y(p[key]));
      started = true;
    }
    g.stroke();
  }
  g.fillStyle = "#5f6b7a";
  g.font = `${11 * ratio}px system-ui`;
  g.fillText(`max ${(max / 1.15).toPrecision(3)}`, 8 * ratio, 14 * ratio);
}

function drawHealth() {
  for (const chart of CHARTS) {
    const canvas = document.getElementById(chart.id);
    if (!canvas) continue;
    const points = chart.points();
    drawChart(canvas, points);
    const last = points[points.length - 1];
    const now = document.getElementById(`${chart.id}-now`);
    if (now && last && last.value !== null) now.textContent = `now ${Number(last.value).toFixed(2)}${chart.unit}`;
  }
  const latest = samples[samples.length - 1];
  const proc = document.getElementById("process");
  if (proc && latest) {
    proc.textContent = `open file descriptors ${latest.fds} · resident memory ${(latest.rss / 1048576).toFixed(1)} MiB · ${samples.length} samples every ${SAMPLE_MS / 1000} s`;
  }
}

function healthPage() {
  show(el("h1", {}, "Health"),
    el("p", { class: "note", id: "process" }, "collecting samples…"),
    el("div", { class: "charts" }, CHARTS.map((c) => el("section", { class: "chart" },
      el("h3", {}, c.title, el("span", { class: "now", id: `${c.id}-now` })), el("canvas", { id: c.id })))));
  drawHealth();
}

// ---- Cluster ----------------------------------------------------------------------------

async function clusterPage() {
  const body = el("section", { id: "nodes" });
  show(el("h1", {}, "Cluster nodes"), body);
  try {
    const { nodes } = await api("GET", "cluster");
    body.append(table("node-table", ["Node", "Incarnation", "Advertised at", "Status", "Lease until", "Actors"],
      nodes.map((n) => el("tr", {}, el("td", { class: "mono" }, n.nodeId), el("td", {}, n.incarnation),
        el("td", { class: "mono" }, n.advertiseUrl), el("td", {}, statusBadge(n.status)),
        el("td", {}, time(n.leaseExpiresAt)), el("td", {}, n.actorsOwned)))));
  } catch (e) {
    body.append(e.status === 404 ? el("p", { class: "note" }, "This server runs alone (not started with --cluster).") : errorLine(e));
  }
}

// ---- Routing ----------------------------------------------------------------------------

function route() {
  if (!token()) return signInPage();
  document.getElementById("nav").hidden = false;
  const hash = location.hash || "#/instances";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", path.startsWith(link.getAttribute("href").slice(1)));
  }
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "instances" && parts[1]) return instancePage(decodeURIComponent(parts[1]));
  if (parts[0] === "actors") return actorsPage();
  if (parts[0] === "health") return healthPage();
  if (parts[0] === "cluster") return clusterPage();
  return instancesPage(params);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-out").onclick = () => signOut();
  window.addEventListener("hashchange", route);
  sample();
  setInterval(sample, SAMPLE_MS);
  route();
});
