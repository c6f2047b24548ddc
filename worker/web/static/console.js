// The mailgate console: reads the API with the operator's token and shows what it says.
// Every value that comes from mail (names, addresses, subjects, bodies, file names) reaches
// the page through textContent or, for the sanitised HTML body, a sandboxed frame with no
// script; nothing is ever assigned to innerHTML.
"use strict";
const $ = (id) => document.getElementById(id);
const LABELS = JSON.parse($("labels").textContent);
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;
const PAGE = 50;
const HELD_SHOWN = 15;
// ?refresh= seconds, kept from 5 s to an hour: a tiny or negative one polled the API nonstop
// (the hostile branch's finding, kept here since the page moved).
const REFRESH_SECONDS = Math.min(
  Math.max(Number(new URLSearchParams(location.search).get("refresh")) || 15, 5), 3600);
const SVG = "http://www.w3.org/2000/svg";
// The frame's own policy, in case the sanitiser ever let something through: nothing loads.
const FRAME_POLICY = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'">';
const GROUPS = ["accepted", "rejected", "held", "quarantined", "ignored", "other"];
const GROUP_NAMES = {accepted: "Accepted", rejected: "Rejected", held: "Held",
  quarantined: "Quarantined", ignored: "Ignored", other: "Other"};
let token = sessionStorage.getItem("mailgate-token") || "";
let me = null;
let cursor = null;  // the "before" of the next older page, null at the end of the log
let newest = 0;  // the highest seq shown, so a refresh only adds what is new
let timer = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function cell(row, text, cls) {
  const td = el("td", text == null ? "" : text, cls);
  row.appendChild(td);
  return td;
}
async function api(path, options) {
  const init = Object.assign({headers: {Authorization: "Bearer " + token}}, options || {});
  const response = await fetch(path, init);
  if (response.status === 401) throw new Error("token refused");
  if (!response.ok && response.status !== 404 && response.status !== 409) {
    let detail = "";
    try { detail = (await response.json()).error || ""; } catch (e) { detail = ""; }
    throw new Error("HTTP " + response.status + (detail ? ": " + detail : ""));
  }
  return {status: response.status, body: response.status === 404 ? null : await response.json()};
}
async function get(path) { return (await api(path)).body; }

// -- time, in the viewer's zone ---------------------------------------------------------------
function when(iso) {
  const at = new Date(iso);
  const seconds = (Date.now() - at.getTime()) / 1000;
  const ago = seconds < 45 ? "just now" : seconds < 3600 ? Math.round(seconds / 60) + " min ago"
    : seconds < 86400 ? Math.round(seconds / 3600) + " h ago"
    : Math.round(seconds / 86400) + " days ago";
  const today = at.toDateString() === new Date().toDateString();
  const clock = at.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  const day = today ? "" : at.toLocaleDateString([], {day: "numeric", month: "short"}) + " ";
  return {text: day + clock, ago, full: at.toLocaleString() + " " + ZONE + " (" + iso + ")"};
}
function until(iso) {
  const days = (new Date(iso).getTime() - Date.now()) / 86400000;
  return days < 0 ? "now" : days < 1 ? "in " + Math.round(days * 24) + " h"
    : "in " + Math.round(days) + " days";
}
function timeCell(row, iso) {
  const t = when(iso);
  const td = cell(row, t.text + " · " + t.ago, "time");
  td.title = t.full;
  return td;
}

// -- health --------------------------------------------------------------------------------
async function loadHealth() {
  const data = await get("/api/health");
  // The first line an ops person reads: what needs them, or that nothing does.
  const worries = data.cards.filter((card) => card.state === "bad" || card.state === "warn");
  $("attention").className = worries.some((c) => c.state === "bad") ? "bad"
    : worries.length ? "warn" : "ok";
  $("attention").textContent = worries.length
    ? "Needs attention: " + worries.map((c) => c.title + " (" + c.summary + ")").join(" · ")
    : "All parts healthy.";
  $("health").replaceChildren(...data.cards.map((card) => {
    const box = el("div", null, "card state-" + card.state);
    box.dataset.key = card.key;
    box.append(el("h3", card.title), el("p", card.summary, "summary"));
    if (card.detail.length) {
      const list = el("ul");
      for (const line of card.detail) list.appendChild(el("li", line));
      box.appendChild(list);
    }
    return box;
  }));
}

// -- chart: decisions per hour, stacked by group, drawn as inline SVG ---------------------
function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text != null) node.textContent = text;
  return node;
}
async function loadChart() {
  const period = Number($("chart-hours").value);
  const data = await get("/api/timeline?hours=" + period);
  const hours = data.hours.map((hour) => {
    const groups = {};
    for (const [decision, count] of Object.entries(hour.counts)) {
      const group = LABELS.groups[decision] || "other";
      groups[group] = (groups[group] || 0) + count;
    }
    return {start: new Date(hour.start), groups, counts: hour.counts};
  });
  const top = Math.max(1, ...hours.map((h) => Object.values(h.groups).reduce((a, b) => a + b, 0)));
  const width = Math.max(480, $("chart").clientWidth), height = 180, left = 40, bottom = 22, step = (width - left) / hours.length;
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart"});
  chart.appendChild(svg("title", {}, "Decisions per hour, last " + period + " hours"));
  chart.appendChild(svg("text", {x: 0, y: 12, class: "axis"}, String(top)));
  chart.appendChild(svg("text", {x: 0, y: height - bottom, class: "axis"}, "0"));
  hours.forEach((hour, index) => {
    let y = height - bottom;
    const x = left + index * step;
    const tip = [hour.start.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})];
    for (const group of GROUPS) {
      const count = hour.groups[group] || 0;
      if (!count) continue;
      const h = (count / top) * (height - bottom - 16);
      y -= h;
      chart.appendChild(svg("rect", {x: x + 1, y, width: Math.max(1, step - 2), height: h, class: "g-" + group}));
      tip.push(GROUP_NAMES[group] + ": " + count);
    }
    const hit = svg("rect", {x, y: 0, width: step, height: height - bottom, class: "hit"});
    hit.appendChild(svg("title", {}, tip.join("\n")));
    chart.appendChild(hit);
    const daily = period > 48;
    if (daily ? hour.start.getHours() === 0 : index % 3 === 0) {
      const label = daily ? hour.start.toLocaleDateString([], {weekday: "short", day: "numeric"})
        : hour.start.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
      chart.appendChild(svg("text", {x, y: height - 6, class: "axis"}, label));
    }
  });
  $("chart").replaceChildren(chart);
  showCounts(hours);
}
function showCounts(hours) {
  const totals = {};
  for (const hour of hours) {
    for (const [decision, count] of Object.entries(hour.counts)) {
      totals[decision] = (totals[decision] || 0) + count;
    }
  }
  const box = $("counts");
  box.replaceChildren();
  for (const [decision, count] of Object.entries(totals).sort((a, b) => b[1] - a[1])) {
    const span = el("span", null, "count g-" + (LABELS.groups[decision] || "other"));
    span.dataset.decision = decision;
    span.dataset.count = count;
    span.title = decision;
    span.append(el("b", count), " " + (LABELS.decisions[decision] || decision));
    box.appendChild(span);
  }
  if (!box.children.length) box.appendChild(el("span", "No mail in this period.", "muted"));
}

// -- the log -------------------------------------------------------------------------------
// The search box takes an id (as quoted to the sender), an address or a ticket number.
function searchParam(text) {
  const value = text.trim();
  if (!value) return null;
  if (value.includes("@")) return ["sender", value];
  if (/^#?\d+$/.test(value)) return ["ticket", value.replace("#", "")];
  return ["id", value];
}
function filterParams() {
  const params = new URLSearchParams({limit: String(PAGE)});
  const decision = $("f-decision").value;
  if (!decision) params.set("rejected", "true");
  else if (decision !== "*") params.set("decision", decision);
  const search = searchParam($("f-search").value);
  $("search-note").textContent = search ? "by " + search[0] : "";
  if (search) params.set(search[0], search[1]);
  if ($("f-channel").value) params.set("channel", $("f-channel").value);
  for (const key of ["since", "until"]) {
    const value = $("f-" + key).value;  // the viewer's local time, sent as an instant
    if (value) params.set(key, new Date(value).toISOString());
  }
  return params;
}
function logRow(d) {
  const tr = el("tr", null, "row");
  tr.dataset.id = d.id;
  tr.dataset.seq = d.seq;
  timeCell(tr, d.received_at);
  const decision = cell(tr, d.labels.decision, "decision g-" + d.labels.group);
  decision.dataset.decision = d.decision;
  decision.title = d.decision;
  cell(tr, d.labels.rule, "why").title = d.rule;
  cell(tr, d.ticket || "", "ticket");
  cell(tr, d.envelope_from || "(none)", "sender");
  cell(tr, d.labels.reply).title = [d.reply.status, d.reply.reason, d.reply.delivery]
    .filter(Boolean).join(" / ");
  cell(tr, d.channel);
  cell(tr, d.public_id || "", "public-id");
  cell(tr, d.seq, "seq");
  tr.tabIndex = 0;  // the keyboard opens a row too
  tr.addEventListener("click", () => showDecision(d).catch(showError));
  tr.addEventListener("keydown", (event) => {
    if (event.key === "Enter") showDecision(d).catch(showError);
  });
  return tr;
}
async function loadLog() {
  const data = await get("/api/decisions?" + filterParams());
  $("log").tBodies[0].replaceChildren(...data.decisions.map(logRow));
  newest = data.decisions.length ? data.decisions[0].seq : 0;
  setCursor(data.next);
}
async function loadOlder() {
  if (cursor == null) return;
  const params = filterParams();
  params.set("before", String(cursor));
  const data = await get("/api/decisions?" + params);
  $("log").tBodies[0].append(...data.decisions.map(logRow));
  setCursor(data.next);
}
function setCursor(next) {
  cursor = next;
  $("more").hidden = next == null;
}
async function refreshLog() {
  // Newest first: every row above the newest shown is new; older pages stay as they are.
  const data = await get("/api/decisions?" + filterParams());
  const fresh = data.decisions.filter((d) => d.seq > newest);
  if (fresh.length) {
    $("log").tBodies[0].prepend(...fresh.map(logRow));
    newest = fresh[0].seq;
  }
}

// -- one decision and its message ---------------------------------------------------------
async function showDecision(row) {
  const d = await get("/api/decisions/" + row.id + "?headers=0");
  $("detail").hidden = false;
  $("d-id").textContent = (d.public_id || "#" + d.seq);
  $("d-summary").textContent = d.labels.decision + " (" + d.decision + ") by rule " + d.rule +
    " under policy " + d.policy + " (sha256 " + (d.policy_sha256 || "").slice(0, 12) +
    "…), ticket " + (d.ticket || "-") + ". " + d.labels.reply + ".";
  const trace = $("d-trace").tBodies[0];
  trace.replaceChildren(...d.trace.map((step) => {
    const tr = el("tr");
    cell(tr, step.rule);
    cell(tr, step.hit ? "HIT" : "miss", step.hit ? "hit" : "");
    cell(tr, step.reason);
    return tr;
  }));
  $("d-outbox").replaceChildren(...d.outbox.map((o) => el("li",
    o.kind + ": " + o.status + ", " + o.attempts + " attempts" +
    (o.last_error ? ", last answer " + o.last_error : ""))));
  $("d-rawtext").hidden = true;
  if (d.public_id) await showMessage(d.public_id);
}
async function showMessage(publicId) {
  const data = await get("/api/messages/" + encodeURIComponent(publicId));
  const m = data && data.message;
  $("d-message").hidden = !m;
  if (!m) return;
  const envelope = $("d-envelope");
  envelope.replaceChildren();
  const subject = (m.headers.find((h) => h[0] === "Subject") || ["", ""])[1];
  for (const [name, value] of [["From", m.sender || "(none)"], ["Subject", subject],
    ["Envelope sender", data.envelope_from]]) {
    envelope.append(el("dt", name), el("dd", value));
  }
  $("d-warnings").replaceChildren(...m.warnings.map((w) => el("li", w)));
  $("d-headers").tBodies[0].replaceChildren(...m.headers.map(([name, value]) => {
    const tr = el("tr");
    cell(tr, name);
    cell(tr, value);
    return tr;
  }));
  $("d-text").textContent = m.text || "(no text part)";
  $("d-html-box").hidden = m.html == null;
  // Sanitised by the server; the frame is sandboxed (no script, no same origin) and has its
  // own policy that loads nothing. data-shown says which message the frame holds once it has loaded.
  delete $("d-message").dataset.shown;
  $("d-html").addEventListener("load", () => { $("d-message").dataset.shown = publicId; },
    {once: true});
  $("d-html").srcdoc = m.html == null ? "" : FRAME_POLICY + m.html;
  $("d-links-box").hidden = !m.links.length;
  $("d-links").replaceChildren(...m.links.map((link) => el("li", link)));
  $("d-attachments").replaceChildren(...(m.attachments.length ? m.attachments.map((a) =>
    el("li", a.name + " — " + a.content_type + ", " + a.size.toLocaleString() + " bytes"))
    : [el("li", "none", "muted")]));
  $("d-raw").hidden = !data.may_read_raw;
  $("d-raw").dataset.publicId = publicId;
}
async function showRaw() {
  const publicId = $("d-raw").dataset.publicId;
  const response = await fetch("/api/messages/" + encodeURIComponent(publicId) + "/raw",
    {headers: {Authorization: "Bearer " + token}});
  $("d-rawtext").textContent = response.ok ? await response.text()
    : "HTTP " + response.status + ": the raw message is for operators";
  $("d-rawtext").hidden = false;
}

// -- held mail -----------------------------------------------------------------------------
async function loadHeld() {
  const answer = await api("/api/held");
  if (answer.status === 404 || !answer.body) return;  // a mailgate without held mail
  const held = answer.body.held || [];
  $("held-panel").hidden = false;
  $("held-count").textContent = String(held.length);
  $("held-empty").hidden = held.length > 0;
  $("held").hidden = held.length === 0;
  // Oldest first, as the API lists them; a long queue shows its head, not a wall of rows.
  const shown = held.slice(0, HELD_SHOWN);
  const body = $("held").tBodies[0];
  const before = [...body.rows].map((row) => row.dataset.publicId).join(" ");
  if (before !== shown.map((h) => h.public_id).join(" ")) {
    // The refresh must not eat a reason being typed: kept by message, focus too.
    const typed = {};
    for (const input of body.querySelectorAll("input.reason")) {
      typed[input.closest("tr").dataset.publicId] = input.value;
    }
    const focused = document.activeElement && document.activeElement.matches("input.reason")
      ? document.activeElement.closest("tr").dataset.publicId : null;
    body.replaceChildren(...shown.map(heldRow));
    for (const row of body.rows) {
      const input = row.querySelector("input.reason");
      input.value = typed[row.dataset.publicId] || "";
      if (row.dataset.publicId === focused) input.focus();
    }
  }
  $("held-more").textContent = held.length > HELD_SHOWN
    ? "and " + (held.length - HELD_SHOWN) + " more, newer ones" : "";
}
function heldRow(h) {
  const tr = el("tr", null, "row");
  tr.dataset.publicId = h.public_id;
  timeCell(tr, h.received_at);
  const why = cell(tr, (h.decision === "held" ? "" : "Quarantined: ") +
    (LABELS.rules[h.rule] || h.rule), "why");
  why.title = h.decision + " / " + h.rule;
  cell(tr, h.envelope_from || "(none)", "sender");
  cell(tr, h.ticket || "");
  const expiry = cell(tr, h.expires_at ? "the rule decides " + until(h.expires_at)
    : "waits for a person");
  if (h.expires_at) expiry.title = when(h.expires_at).full;
  const reason = el("input", null, "reason");
  reason.placeholder = "reason";
  reason.title = "kept in the chain record with your name";
  reason.maxLength = 500;
  cell(tr, null).appendChild(reason);
  const actions = cell(tr, null, "actions");
  for (const action of ["release", "reject", "discard"]) {
    const button = el("button", action[0].toUpperCase() + action.slice(1), "act-" + action);
    button.type = "button";
    button.disabled = !(me && me.may_act);
    if (button.disabled) button.title = "your role (" + me.role + ") may not act on held mail";
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      act(h.public_id, action, reason.value, tr).catch((error) => {
        $("held-note").textContent = error.message;  // e.g. 403 for a viewer: stay signed in
      });
    });
    actions.appendChild(button);
  }
  for (const control of [reason]) control.addEventListener("click", (e) => e.stopPropagation());
  tr.addEventListener("click", () => showDecision(h).catch(showError));
  return tr;
}
async function act(publicId, action, reason, row) {
  const answer = await api("/api/held/" + encodeURIComponent(publicId) + "/" + action, {
    method: "POST",
    headers: {Authorization: "Bearer " + token, "Content-Type": "application/json"},
    body: JSON.stringify({reason}),
  });
  if (answer.status === 409 || answer.status === 404) {
    row.classList.add("conflict");
    $("held-note").textContent = answer.body ? answer.body.error : "no such message";
  } else {
    $("held-note").textContent = publicId + ": " + answer.body.record.trace.at(-1).reason;
  }
  await Promise.all([loadHeld(), refreshLog()]);
}

// -- opening, refreshing, signing out -----------------------------------------------------
async function refresh() {
  await Promise.all([loadHealth(), loadChart(), refreshLog(), loadHeld()]);
  $("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
}
async function open() {
  try {
    me = await get("/api/me");
    $("who").textContent = "signed in as " + me.name + " (" + me.role + ")";
    $("tz").textContent = "(times in " + ZONE + ")";
    $("error").textContent = "";
    $("signin").hidden = true;
    $("main").hidden = false;  // before drawing: the chart takes the width it is given
    $("signout").hidden = false;
    await Promise.all([loadHealth(), loadChart(), loadLog(), loadHeld()]);
    if (timer == null) timer = setInterval(() => refresh().catch(showError), REFRESH_SECONDS * 1000);
  } catch (error) {
    showError(error);
  }
}
function showError(error) {
  $("error").textContent = error.message;
  $("main").hidden = true;
  $("detail").hidden = true;
  $("signin").hidden = false;
  clearInterval(timer);
  timer = null;
}
function start() {
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("mailgate-token", token);
    open();
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadLog().catch(showError);
  });
  $("more").addEventListener("click", () => loadOlder().catch(showError));
  $("chart-hours").addEventListener("change", () => loadChart().catch(showError));
  $("d-close").addEventListener("click", () => { $("detail").hidden = true; });
  $("d-raw").addEventListener("click", () => showRaw().catch(showError));
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem("mailgate-token");
    token = "";
    location.reload();
  });
  if (token) open();
}
start();
