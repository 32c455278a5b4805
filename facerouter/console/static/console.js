// The facestack operator console. Every value from the server is shown through textContent or
// attributes set one by one (never as HTML); images load from this origin with the session
// cookie; changes send the session's CSRF token.
"use strict";

const RESULTS = {
  new: ["new person", "res-new"], reinit: ["re-initialised", "res-reinit"],
  exact: ["recognised", "res-exact"], ha: ["uncertain match", "res-ha"],
  junk: ["too unlike (junk)", "res-junk"], nm: ["not matched", "res-nm"],
  det: ["detected only", "res-det"],
};
const SEX = { 0: "male", 1: "female" };
const API = "/v2";
const state = { session: null, sources: [], stream: null, liveFilter: {}, personsOffset: 0,
  entriesSeen: new Set(), lastPhotoByCam: {} };

// --- helpers ---------------------------------------------------------------------------------
function $(id) { return document.getElementById(id); }
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
function setText(id, text) { $(id).textContent = text || ""; }
function fmtTime(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}
function toIso(local) { return local ? new Date(local).toISOString() : ""; }
function sourceName(entry) {
  return entry.cam_id || (entry.source && entry.source.name) || "upload";
}
function errorText(res) {
  const b = res.body;
  if (b && typeof b === "object") {
    let t = b.reason || b.desc || b.code || ("HTTP " + res.status);
    if (b.code && b.reason) t = b.code + ": " + b.reason;
    return t;
  }
  return "HTTP " + res.status;
}

async function api(method, path, opts) {
  opts = opts || {};
  const headers = {};
  let body;
  if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(opts.json); }
  if (opts.form !== undefined) body = opts.form;
  if (method !== "GET" && state.session && state.session.csrf) headers["X-CSRF-Token"] = state.session.csrf;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body, credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    return { ok: false, status: 0, body: { reason: "the server cannot be reached (" + e.message + ")" } };
  }
  let data = null;
  const ctype = resp.headers.get("Content-Type") || "";
  if (ctype.startsWith("application/json")) { try { data = await resp.json(); } catch (e) { data = null; } }
  if (resp.status === 401 && path !== "/ui/login") { showLogin("Your session ended: log in again."); }
  return { ok: resp.ok, status: resp.status, body: data };
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

// --- session ---------------------------------------------------------------------------------
async function boot() {
  const res = await api("GET", "/ui/api/session");
  if (!res.ok) { showLogin("The console cannot reach facerouter: " + errorText(res)); return; }
  const s = res.body;
  if (s.auth_required && !s.authenticated) { showLogin(""); return; }
  state.session = s;
  $("top").hidden = false;
  $("who").textContent = (s.name || "") + (s.role ? " (" + s.role + ")" : "");
  const writes = ["operator", "admin", "write"].includes(s.role);
  $("who").className = writes ? "role-write" : "role-read";
  document.body.classList.toggle("read-only", !writes);
  await loadSources();
  startStream();
  route();
}

function showLogin(message) {
  if (state.stream) { state.stream.close(); state.stream = null; }
  state.session = null;
  $("top").hidden = true;
  for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== "page-login";
  setText("login-error", message);
  $("login-token").focus();
}

async function login(ev) {
  ev.preventDefault();
  const token = $("login-token").value;
  const res = await api("POST", "/ui/login", { json: { token } });
  $("login-token").value = "";
  if (!res.ok) { setText("login-error", errorText(res)); return; }
  setText("login-error", "");
  await boot();
}

async function logout() {
  const res = await api("POST", "/ui/logout");
  showLogin(res.ok ? "Logged out." : "Logging out failed: " + errorText(res));
}

async function loadSources() {
  const res = await api("GET", API + "/sources?limit=1000");
  state.sources = res.ok && res.body && Array.isArray(res.body.results) ? res.body.results : [];
  for (const sel of [document.querySelector("#live-filters select[name=source]")]) {
    clear(sel).appendChild(el("option", { value: "", text: "all cameras" }));
    for (const s of state.sources) sel.appendChild(el("option", { value: s.id, text: s.name }));
  }
  for (const sel of [$("enrol-source"), document.querySelector("#camera-form select[name=source]")]) {
    clear(sel);
    for (const s of state.sources) sel.appendChild(el("option", { value: s.name, text: s.name }));
  }
}

// --- routing ---------------------------------------------------------------------------------
function route() {
  if (!state.session) return;
  const hash = location.hash.replace(/^#/, "") || "live";
  const [page, arg] = hash.split("/");
  const known = ["live", "persons", "person", "search", "cameras", "stats"];
  const name = known.includes(page) ? page : "live";
  for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== "page-" + name;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  if (name === "live") loadLive();
  else if (name === "persons") loadPersons();
  else if (name === "person") loadPerson(decodeURIComponent(arg || ""));
  else if (name === "cameras") loadCameras();
  else if (name === "stats") loadStats();
}

// --- entries ---------------------------------------------------------------------------------
function resultBadge(result) {
  const [words, cls] = RESULTS[result] || [String(result), "res-det"];
  return el("span", { class: "badge " + cls, text: words, title: result });
}

function entryCard(entry, extra) {
  const img = faceThumb(entry.images, entry.bbox);
  const who = entry.pid
    ? el("a", { href: "#person/" + encodeURIComponent(entry.pid), class: "pid", text: entry.pid.slice(0, 12), title: entry.pid,
      onclick: (e) => e.stopPropagation() })
    : el("span", { class: "pid none", text: "unknown" });
  const facts = [
    ["confidence", entry.confidence === null || entry.confidence === undefined ? "-" : Number(entry.confidence).toFixed(2)],
    ["camera", sourceName(entry)], ["time", fmtTime(entry.created)], ["age", entry.age ?? "-"],
    ["sex", SEX[entry.sex] || "-"], ["mood", entry.mood || "-"],
  ];
  const dl = el("dl");
  for (const [k, v] of facts) { dl.appendChild(el("dt", { text: k })); dl.appendChild(el("dd", { text: v, class: "f-" + k })); }
  const card = el("article", { class: "entry", "data-id": entry.id, "data-result": entry.result, tabindex: 0,
    onclick: () => showEntry(entry) }, img, el("div", { class: "body" }, resultBadge(entry.result), who, extra || null, dl));
  if (entry.images && entry.images.photo && entry.cam_id) state.lastPhotoByCam[entry.cam_id] = entry.images.photo;
  return card;
}

function liveParams() {
  const f = new FormData($("live-filters"));
  return { result: f.get("result"), sources_ids: f.get("source"), pid: f.get("pid").trim(),
    date_from: toIso(f.get("date_from")), date_to: toIso(f.get("date_to")) };
}

function matchesLive(entry) {
  const p = state.liveFilter;
  if (p.result && entry.result !== p.result) return false;
  if (p.sources_ids && String(entry.source && entry.source.id) !== String(p.sources_ids)) return false;
  if (p.pid && entry.pid !== p.pid) return false;
  if (p.date_to) return false;  // a closed range shows history only
  return true;
}

async function loadLive() {
  state.liveFilter = liveParams();
  const res = await api("GET", API + "/entries" + query({ ...state.liveFilter, limit: 60 }));
  const list = clear($("live-list"));
  if (!res.ok) { setText("live-error", errorText(res)); return; }
  setText("live-error", "");
  state.entriesSeen = new Set();
  for (const e of res.body.results) { state.entriesSeen.add(e.id); list.appendChild(entryCard(e)); }
  if (!res.body.results.length) list.appendChild(el("p", { class: "empty", text: "No entries yet: they appear here as the cameras see faces." }));
}

function startStream() {
  if (state.stream) state.stream.close();
  const es = new EventSource("/v1/events/stream");
  state.stream = es;
  es.onopen = () => { $("live-state").textContent = "live"; $("live-state").className = "pill on"; };
  es.onerror = () => { $("live-state").textContent = "reconnecting"; $("live-state").className = "pill off"; };
  es.addEventListener("entry", (ev) => {
    let entry;
    try { entry = JSON.parse(ev.data); } catch (e) { return; }
    if (state.entriesSeen.has(entry.id) || !matchesLive(entry)) return;
    state.entriesSeen.add(entry.id);
    const list = $("live-list");
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    const card = entryCard(entry);
    card.classList.add("fresh");
    list.insertBefore(card, list.firstChild);
    while (list.children.length > 200) list.removeChild(list.lastChild);
  });
}

// The face box of an entry: bbox is [[x1, y1, x2, y2]] in the frame's pixels.
function faceBox(bbox) {
  const b = Array.isArray(bbox) && Array.isArray(bbox[0]) ? bbox[0] : null;
  return b && b.length === 4 && b.every((v) => typeof v === "number") ? b : null;
}

function drawFrame(canvas, url, bbox) {
  const img = new Image();
  img.onload = () => {
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const b = faceBox(bbox);
    if (b) {
      ctx.lineWidth = Math.max(3, img.naturalWidth / 200);
      ctx.strokeStyle = "#ffcc00";
      ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    }
  };
  img.src = url;
}

// A face thumbnail: the kept crop, else the face cut out of the kept frame, else a placeholder.
function faceThumb(images, bbox) {
  if (images && images.face) return el("img", { src: images.face, alt: "face", loading: "lazy" });
  const b = faceBox(bbox);
  if (images && images.photo && b) {
    const canvas = el("canvas", { class: "thumb", width: 96, height: 96, "data-src": images.photo });
    const img = new Image();
    img.onload = () => {
      const w = b[2] - b[0], h = b[3] - b[1], side = Math.max(w, h) * 1.3;
      const cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2;
      canvas.getContext("2d").drawImage(img, cx - side / 2, cy - side / 2, side, side, 0, 0, 96, 96);
      canvas.dataset.drawn = "1";
    };
    img.src = images.photo;
    return canvas;
  }
  return el("div", { class: "noimg", text: "no image" });
}

async function showEntry(entry) {
  const body = clear($("modal-body"));
  body.appendChild(el("h2", {}, resultBadge(entry.result), " ", sourceName(entry), " · ", fmtTime(entry.created)));
  const row = el("div", { class: "side" });
  const frame = el("figure", {}, el("figcaption", { text: "full frame" }));
  if (entry.images && entry.images.photo) {
    const canvas = el("canvas", { class: "frame" });
    frame.insertBefore(canvas, frame.firstChild);
    drawFrame(canvas, entry.images.photo, entry.bbox);
  } else frame.appendChild(el("p", { class: "empty", text: "the frame is not kept for this result" }));
  row.appendChild(frame);
  const enrolled = el("figure", {}, el("figcaption", { text: entry.pid ? "enrolled photo of " + entry.pid.slice(0, 12) : "no person" }));
  row.appendChild(enrolled);
  body.appendChild(row);
  $("modal").hidden = false;
  if (entry.pid) {
    const res = await api("GET", API + "/persons/" + encodeURIComponent(entry.pid));
    const made = res.ok && res.body.entry_id ? await api("GET", API + "/entries/" + encodeURIComponent(res.body.entry_id)) : null;
    const link = made && made.ok ? (made.body.images.photo || made.body.images.face) : null;
    if (link) {
      enrolled.insertBefore(el("img", { class: "enrolled", alt: "enrolled photo", src: link }), enrolled.firstChild);
    } else enrolled.appendChild(el("p", { class: "empty", text: res.ok ? "no enrolled photo" : errorText(res) }));
  }
}

// --- persons ---------------------------------------------------------------------------------
function droppable(zoneId, inputId, onFile) {
  const zone = $(zoneId), input = $(inputId);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (e.dataTransfer.files.length) { onFile(e.dataTransfer.files[0]); }
  });
  input.addEventListener("change", () => { if (input.files.length) onFile(input.files[0]); });
}

function showPicked(zoneId, file) {
  const zone = $(zoneId);
  zone.dataset.picked = "1";
  let prev = zone.querySelector("img.preview");
  if (!prev) { prev = el("img", { class: "preview", alt: "chosen photo" }); zone.appendChild(prev); }
  prev.src = URL.createObjectURL(file);
  let name = zone.querySelector(".picked");
  if (!name) { name = el("span", { class: "picked" }); zone.appendChild(name); }
  name.textContent = file.name;
}

const picked = { enrol: null, search: null };

async function enrol(ev) {
  ev.preventDefault();
  setText("enrol-error", ""); setText("enrol-ok", "");
  if (!picked.enrol) { setText("enrol-error", "Choose or drop a photo first."); return; }
  const form = new FormData();
  form.append("image", picked.enrol, picked.enrol.name || "photo.jpg");
  form.append("source", $("enrol-source").value);
  form.append("on_match", $("enrol-on-match").value);
  $("enrol-submit").disabled = true;
  const res = await api("POST", "/ui/api/persons", { form });
  $("enrol-submit").disabled = false;
  if (!res.ok) {
    let text = errorText(res);
    if (res.status === 409 && res.body && res.body.pid) text = "This face matches person " + res.body.pid + " (" + (res.body.result || "") + "); nothing was stored. Choose \u201cre-initialise\u201d or \u201ccreate anyway\u201d to go on.";
    setText("enrol-error", text);
    return;
  }
  setText("enrol-ok", (res.status === 201 ? "Enrolled person " : "Re-initialised person ") + res.body.pid);
  state.personsOffset = 0;
  loadPersons();
}

async function loadPersons() {
  const limit = 24;
  const res = await api("GET", API + "/persons" + query({ limit, offset: state.personsOffset }));
  const list = clear($("persons-list"));
  if (!res.ok) { setText("persons-error", errorText(res)); return; }
  setText("persons-error", "");
  const { count, results } = res.body;
  setText("persons-count", count ? (state.personsOffset + 1) + "–" + (state.personsOffset + results.length) + " of " + count : "nobody enrolled yet");
  $("persons-prev").disabled = state.personsOffset === 0;
  $("persons-next").disabled = state.personsOffset + results.length >= count;
  for (const p of results) list.appendChild(personCard(p));
}

function personCard(p) {
  const src = state.sources.find((s) => s.id === p.source_id);
  const photo = el("div", { class: "photo" }, el("div", { class: "noimg", text: "no photo" }));
  if (p.entry_id) {
    api("GET", API + "/entries/" + encodeURIComponent(p.entry_id)).then((res) => {
      if (res.ok) clear(photo).appendChild(faceThumb(res.body.images, res.body.bbox));
    });
  }
  const stats = el("dl", {});
  const card = el("article", { class: "person", "data-pid": p.pid }, photo,
    el("div", { class: "body" },
      el("a", { href: "#person/" + encodeURIComponent(p.pid), class: "pid", text: p.pid.slice(0, 12), title: p.pid }),
      el("div", { class: "meta", text: "source: " + (src ? src.name : p.source_id ?? "-") }),
      stats, personActions(p)));
  api("GET", API + "/entries/stats/pid/" + encodeURIComponent(p.pid)).then((res) => {
    const s = res.ok ? res.body : {};
    const total = s.by_result ? Object.values(s.by_result).reduce((a, b) => a + b, 0) : (s.count ?? "-");
    stats.appendChild(el("dt", { text: "entries" })); stats.appendChild(el("dd", { class: "f-count", text: s.total ?? total }));
    stats.appendChild(el("dt", { text: "last seen" })); stats.appendChild(el("dd", { text: fmtTime(s.last_seen || s.last) }));
  });
  return card;
}

function personActions(p) {
  const file = el("input", { type: "file", accept: "image/jpeg,image/png,image/webp", hidden: true });
  const msg = el("p", { class: "error" });
  file.addEventListener("change", async () => {
    if (!file.files.length) return;
    const form = new FormData();
    form.append("image", file.files[0], file.files[0].name);
    const src = state.sources.find((s) => s.id === p.source_id) || state.sources[0];
    form.append("source", src ? src.name : "");
    const res = await api("POST", API + "/persons/" + encodeURIComponent(p.pid) + "/reinit", { form });
    msg.className = res.ok ? "ok" : "error";
    msg.textContent = res.ok ? "re-initialised" : errorText(res);
    if (res.ok) loadPersons();
  });
  const reinit = el("label", { class: "button" }, "Re-init from photo", file);
  const del = el("button", { type: "button", class: "danger", text: "Delete", onclick: async () => {
    if (!confirm("Delete person " + p.pid + "? Their entries stay.")) return;
    const res = await api("DELETE", API + "/persons/" + encodeURIComponent(p.pid));
    if (res.ok) loadPersons(); else { msg.className = "error"; msg.textContent = errorText(res); }
  } });
  return el("div", { class: "actions" }, reinit, del, msg);
}

async function loadPerson(pid) {
  setText("person-pid", pid);
  const head = clear($("person-head"));
  const list = clear($("person-entries"));
  clear($("person-chart"));
  const [pres, sres, eres] = await Promise.all([
    api("GET", API + "/persons/" + encodeURIComponent(pid)),
    api("GET", API + "/entries/stats/pid/" + encodeURIComponent(pid)),
    api("GET", API + "/entries" + query({ pid, limit: 100 })),
  ]);
  setText("person-error", pres.ok ? "" : errorText(pres));
  if (pres.ok && pres.body.entry_id) {
    const eres0 = await api("GET", API + "/entries/" + encodeURIComponent(pres.body.entry_id));
    if (eres0.ok) head.appendChild(faceThumb(eres0.body.images, eres0.body.bbox));
  }
  if (pres.ok) head.appendChild(personActions(pres.body));
  if (sres.ok) {
    const st = sres.body;
    const dl = el("dl");
    const add = (k, v) => { dl.appendChild(el("dt", { text: k })); dl.appendChild(el("dd", {}, v)); };
    add("entries", String(st.total));
    const badges = el("span");
    for (const [r, n] of Object.entries(st.by_result || {})) badges.appendChild(el("span", {}, resultBadge(r), String(n) + " "));
    add("by result", badges);
    add("by source", (st.by_source || []).map((x) => {
      const src = state.sources.find((s) => s.id === x.source_id);
      return (src ? src.name : String(x.source_id)) + ": " + x.count;
    }).join(", ") || "-");
    add("first seen", fmtTime(st.first_seen));
    add("last seen", fmtTime(st.last_seen));
    if (!st.exists) add("state", "deleted (their entries remain)");
    head.appendChild(dl);
  }
  if (eres.ok) {
    const rows = eres.body.results;
    for (const e of rows) list.appendChild(entryCard(e));
    const byDay = {};
    for (const e of rows) { const d = (e.created || "").slice(0, 10); byDay[d] = byDay[d] || {}; byDay[d][e.result] = (byDay[d][e.result] || 0) + 1; }
    const days = Object.keys(byDay).sort();
    if (days.length) $("person-chart").appendChild(barChart("Entries per day", days, byDay));
  }
}

// --- search ----------------------------------------------------------------------------------
async function search(ev) {
  ev.preventDefault();
  setText("search-error", ""); setText("search-note", "");
  if (!picked.search) { setText("search-error", "Choose or drop a photo first."); return; }
  const f = new FormData($("search-form"));
  const form = new FormData();
  form.append("image", picked.search, picked.search.name || "photo.jpg");
  if (f.get("date_from")) form.append("date_from", toIso(f.get("date_from")));
  if (f.get("date_to")) form.append("date_to", toIso(f.get("date_to")));
  if (f.get("cameras").trim()) form.append("cameras", f.get("cameras").trim());
  $("search-submit").disabled = true;
  const res = await api("POST", "/ui/api/search", { form });
  $("search-submit").disabled = false;
  const list = clear($("search-results"));
  if (!res.ok) { setText("search-error", errorText(res)); return; }
  const hits = res.body.results;
  setText("search-note", hits.length + " look-alike(s) in gallery " + res.body.gallery + " at similarity ≥ " + res.body.threshold + ", best first");
  for (const h of hits) {
    const extra = el("span", { class: "score", text: "similarity " + h.confidence.toFixed(3) });
    if (h.entry) list.appendChild(entryCard(h.entry, extra));
    else list.appendChild(el("article", { class: "entry" }, el("div", { class: "noimg", text: "entry removed" }),
      el("div", { class: "body" }, extra, el("p", { text: "camera " + (h.cam_id || "-") + " at " + (h.ts ? new Date(h.ts * 1000).toLocaleString() : "-") }))));
  }
}

// --- cameras ---------------------------------------------------------------------------------
async function loadCameras() {
  const res = await api("GET", "/ui/api/cameras");
  const tbody = clear(document.querySelector("#cameras-table tbody"));
  if (!res.ok) { setText("cameras-error", errorText(res)); return; }
  if (!res.body.configured) { setText("cameras-error", "No video worker is configured: set console.worker_url (and worker_token) in facerouter's config."); return; }
  setText("cameras-error", "");
  for (const job of res.body.jobs) {
    const st = job.statistic || {};
    const snap = state.lastPhotoByCam[job.id];
    tbody.appendChild(el("tr", { "data-job": job.id },
      el("td", {}, snap ? el("img", { class: "snap", src: snap, alt: "latest frame with a face" }) : el("span", { class: "empty", text: "-" })),
      el("td", {}, el("strong", { text: job.id }), el("div", { class: "meta", text: job.stream_url })),
      el("td", { text: job.status + (job.status_msg ? " · " + job.status_msg : "") }),
      el("td", { text: st.decode_fps === undefined ? "-" : Number(st.decode_fps).toFixed(1) }),
      el("td", { text: st.faces_posted ?? "-" }),
      el("td", { class: "error", text: st.last_error || "" }),
      el("td", {},
        el("button", { type: "button", text: "Edit", onclick: () => editCamera(job) }),
        el("button", { type: "button", class: "danger", text: "Stop", onclick: async () => {
          if (!confirm("Stop and remove camera " + job.id + "?")) return;
          const r = await api("DELETE", "/ui/api/cameras/" + encodeURIComponent(job.id));
          if (!r.ok) setText("cameras-error", errorText(r)); else loadCameras();
        } }))));
  }
  if (!res.body.jobs.length) tbody.appendChild(el("tr", {}, el("td", { colspan: 7, class: "empty", text: "No cameras yet: add one below." })));
}

function editCamera(job) {
  const f = $("camera-form");
  setText("camera-form-title", "Edit camera " + job.id);
  f.elements.id.value = job.id;
  f.elements.stream_url.value = job.stream_url || "";
  f.elements.source.value = (job.labels && job.labels.source) || "";
  f.elements.single_pass.checked = !!job.single_pass;
  f.elements.play_speed.value = (job.settings && job.settings.play_speed) ?? 1;
  f.scrollIntoView();
}

async function saveCamera(ev) {
  ev.preventDefault();
  const f = $("camera-form").elements;
  const job = { stream_url: f.stream_url.value.trim(), labels: f.source.value ? { source: f.source.value } : {},
    single_pass: f.single_pass.checked, settings: { play_speed: Number(f.play_speed.value || 1) } };
  const res = await api("POST", "/ui/api/cameras/" + encodeURIComponent(f.id.value.trim()), { json: job });
  if (!res.ok) { setText("camera-error", errorText(res)); return; }
  setText("camera-error", "");
  setText("camera-form-title", "Add a camera");
  loadCameras();
}

// --- stats -----------------------------------------------------------------------------------
const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const n = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") n.textContent = String(v); else n.setAttribute(k, String(v));
  }
  return n;
}

// A stacked bar chart: one bar per key, one colour per result (drawn here, no library).
function barChart(title, keys, counts) {
  const W = 720, H = 240, L = 40, B = 40, T = 20;
  const totals = keys.map((k) => Object.values(counts[k] || {}).reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  root.appendChild(svg("title", { text: title }));
  root.appendChild(svg("text", { x: L, y: 14, class: "chart-title", text: title }));
  const bw = (W - L - 10) / Math.max(1, keys.length);
  keys.forEach((k, i) => {
    let y = H - B;
    for (const r of Object.keys(RESULTS)) {
      const n = (counts[k] || {})[r] || 0;
      if (!n) continue;
      const h = (n / max) * (H - B - T);
      y -= h;
      const rect = svg("rect", { x: L + i * bw + 2, y, width: Math.max(1, bw - 4), height: h, class: "bar " + RESULTS[r][1] });
      rect.appendChild(svg("title", { text: `${k}: ${n} ${RESULTS[r][0]}` }));
      root.appendChild(rect);
    }
    root.appendChild(svg("text", { x: L + i * bw + bw / 2, y: H - B + 14, class: "axis", "text-anchor": "middle", text: k }));
  });
  root.appendChild(svg("line", { x1: L, y1: H - B, x2: W - 5, y2: H - B, class: "axisline" }));
  root.appendChild(svg("text", { x: L - 4, y: T + 8, class: "axis", "text-anchor": "end", text: max }));
  root.appendChild(svg("text", { x: L - 4, y: H - B, class: "axis", "text-anchor": "end", text: 0 }));
  const legend = el("div", { class: "legend" });
  for (const [r, [words, cls]] of Object.entries(RESULTS)) legend.appendChild(el("span", { class: "badge " + cls, text: words }));
  return el("figure", { class: "chartbox" }, root, legend);
}

// Entries per calendar day (UTC) of the last two weeks: one grouped count per day.
async function dailyChart() {
  const days = [];
  const today = new Date(); today.setUTCHours(0, 0, 0, 0);
  for (let i = 13; i >= 0; i--) days.push(new Date(today.getTime() - i * 86400000));
  const answers = await Promise.all(days.map((d) => api("GET", API + "/entries/stats" + query({
    group_by: "result", date_from: d.toISOString(), date_to: new Date(d.getTime() + 86400000 - 1).toISOString() }))));
  const counts = {};
  const keys = days.map((d) => d.toISOString().slice(5, 10));
  answers.forEach((res, i) => {
    counts[keys[i]] = {};
    if (res.ok) for (const row of res.body.stats) counts[keys[i]][row[0]] = row[1];
  });
  return barChart("Entries per day (UTC), last 14 days", keys, counts);
}

async function loadStats() {
  const box = clear($("stats-charts"));
  box.appendChild(await dailyChart());
  const groups = [["hour", "Entries per hour of the day (UTC)"], ["day_of_week", "Entries per day of the week"], ["source", "Entries per camera (source)"]];
  for (const [g, title] of groups) {
    const res = await api("GET", API + "/entries/stats" + query({ group_by: g + ",result" }));
    if (!res.ok) { setText("stats-error", errorText(res)); return; }
    const counts = {};
    for (const row of res.body.stats) {
      let key = row[0];
      if (g === "source") { const s = state.sources.find((x) => x.id === key); key = s ? s.name : String(key); }
      key = String(key);
      counts[key] = counts[key] || {};
      counts[key][row[1]] = (counts[key][row[1]] || 0) + row[2];
    }
    let keys = Object.keys(counts);
    if (g === "hour") keys = Array.from({ length: 24 }, (_, i) => String(i));
    if (g === "day_of_week") keys = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    box.appendChild(barChart(title, keys, counts));
  }
}

// --- start -----------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  const resultSel = document.querySelector("#live-filters select[name=result]");
  resultSel.appendChild(el("option", { value: "", text: "all results" }));
  for (const [r, [words]] of Object.entries(RESULTS)) resultSel.appendChild(el("option", { value: r, text: words }));
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("live-filters").addEventListener("submit", (e) => { e.preventDefault(); loadLive(); });
  $("enrol-form").addEventListener("submit", enrol);
  $("search-form").addEventListener("submit", search);
  $("camera-form").addEventListener("submit", saveCamera);
  $("persons-prev").addEventListener("click", () => { state.personsOffset = Math.max(0, state.personsOffset - 24); loadPersons(); });
  $("persons-next").addEventListener("click", () => { state.personsOffset += 24; loadPersons(); });
  $("modal-close").addEventListener("click", () => { $("modal").hidden = true; });
  $("modal").addEventListener("click", (e) => { if (e.target === $("modal")) $("modal").hidden = true; });
  droppable("enrol-drop", "enrol-file", (f) => { picked.enrol = f; showPicked("enrol-drop", f); });
  droppable("search-drop", "search-file", (f) => { picked.search = f; showPicked("search-drop", f); });
  window.addEventListener("hashchange", route);
  boot();
});
