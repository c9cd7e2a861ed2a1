// The dashboard: logs in, then polls the admin API, turns counter differences into rates, and
// offers kick, delete and publish.

import { ApiError, call, currentUser, login, logout } from "./api.js";
import { drawChart, formatRate } from "./chart.js";
import { buildTree, renderTree } from "./topic_tree.js";

const params = new URLSearchParams(location.search);
/** Poll interval, ms (`?interval=500` for a faster page). */
const INTERVAL = Math.max(200, Number(params.get("interval")) || 2000);
/** Samples kept for the chart. */
const CAPACITY = 120;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @type {{ in: number[], out: number[], conn: number[] }} */
const history = { in: [], out: [], conn: [] };
/** @type {{ at: number, received: number, sent: number, connects: number } | undefined} */
let previous;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let timer;
let searchText = "";

function showLogin(message = "") {
  clearTimeout(timer);
  $("dashboard").hidden = true;
  $("logout").hidden = true;
  $("user").textContent = "";
  $("login-view").hidden = false;
  $("login-error").textContent = message;
}

/** @param {string} user */
function showDashboard(user) {
  $("login-view").hidden = true;
  $("dashboard").hidden = false;
  $("logout").hidden = false;
  $("user").textContent = user;
  previous = undefined;
  poll();
}

/** @param {unknown} error */
function report(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    showLogin(error.message);
    return;
  }
  $("status").textContent = error instanceof Error ? error.message : String(error);
}

/** @param {number[]} list @param {number} value */
function push(list, value) {
  list.push(value);
  if (list.length > CAPACITY) list.shift();
}

async function poll() {
  clearTimeout(timer);
  try {
    const [overview, clients, subscriptions, retained] = await Promise.all([
      call("GET", "/api/overview"),
      call("GET", `/api/clients?limit=500&search=${encodeURIComponent(searchText)}`),
      call("GET", "/api/subscriptions?limit=500"),
      call("GET", "/api/retained?limit=2000"),
    ]);
    $("status").textContent = "";
    renderOverview(overview);
    renderClients(clients.items, clients.total);
    renderSubscriptions(subscriptions.items);
    renderRetained(
      retained.items.filter((/** @type {{topic: string}} */ m) => !m.topic.startsWith("$SYS/")),
    );
  } catch (error) {
    report(error);
    if (!$("dashboard").hidden) timer = setTimeout(poll, INTERVAL);
    return;
  }
  timer = setTimeout(poll, INTERVAL);
}

/** @param {any} o */
function renderOverview(o) {
  $("version").textContent = `version ${o.version}`;
  $("clients-connected").textContent = String(o.clientsConnected);
  $("subscription-count").textContent = String(o.subscriptions);
  $("retained-count").textContent = String(o.retainedCount);
  $("dropped").textContent = String(o.dropped);
  const now = {
    at: o.now,
    received: o.messagesReceived,
    sent: o.messagesSent,
    connects: o.connectsTotal,
  };
  if (previous !== undefined && now.at > previous.at) {
    const seconds = (now.at - previous.at) / 1000;
    const rate = (/** @type {number} */ a, /** @type {number} */ b) => Math.max(0, a - b) / seconds;
    push(history.in, rate(now.received, previous.received));
    push(history.out, rate(now.sent, previous.sent));
    push(history.conn, rate(now.connects, previous.connects));
    $("rate-in").textContent = formatRate(history.in.at(-1) ?? 0);
    $("rate-out").textContent = formatRate(history.out.at(-1) ?? 0);
    $("rate-connects").textContent = formatRate(history.conn.at(-1) ?? 0);
  }
  previous = now;
  drawChart($("chart"), [
    { name: "in", points: history.in },
    { name: "out", points: history.out },
    { name: "conn", points: history.conn },
  ], CAPACITY);
}

/** @param {string} tag @param {string} text */
function cell(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

/** Client rows by id: updated in place, so a button stays where the pointer is. */
const clientRows = new Map();

/** @param {any[]} clients @param {number} total */
function renderClients(clients, total) {
  const tbody = /** @type {HTMLElement} */ ($("clients").querySelector("tbody"));
  const seen = new Set();
  /** @type {HTMLElement[]} */
  const rows = [];
  for (const c of clients) {
    seen.add(c.clientId);
    let tr = clientRows.get(c.clientId);
    if (tr === undefined) {
      tr = document.createElement("tr");
      tr.dataset.clientId = c.clientId;
      for (let i = 0; i < 6; i++) tr.append(document.createElement("td"));
      const kick = document.createElement("button");
      kick.type = "button";
      kick.className = "danger kick";
      kick.textContent = "Kick";
      const actions = document.createElement("td");
      actions.append(kick);
      tr.append(actions);
      clientRows.set(c.clientId, tr);
    }
    const texts = [
      c.clientId,
      c.remoteAddress ?? "",
      c.cleanSession ? "clean" : "persistent",
      c.subscriptions.map((/** @type {{topic: string}} */ s) => s.topic).join(", "),
      String(c.inflight),
      String(c.queued),
    ];
    texts.forEach((text, i) => {
      const td = tr.children[i];
      if (td.textContent !== text) td.textContent = text;
    });
    rows.push(tr);
  }
  for (const id of [...clientRows.keys()]) if (!seen.has(id)) clientRows.delete(id);
  const wanted = total > clients.length ? [...rows, moreRow(total - clients.length)] : rows;
  // Only touch the DOM when the rows or their order changed.
  const current = [...tbody.children];
  if (current.length !== wanted.length || current.some((r, i) => r !== wanted[i])) {
    tbody.replaceChildren(...wanted);
  }
}

/** @param {number} n */
function moreRow(n) {
  const tr = document.createElement("tr");
  tr.append(cell("td", `${n} more: narrow the search`));
  return tr;
}

let subscriptionsShown = "";

/** @param {any[]} subscriptions */
function renderSubscriptions(subscriptions) {
  const signature = JSON.stringify(subscriptions);
  if (signature === subscriptionsShown) return;
  subscriptionsShown = signature;
  const rows = subscriptions.map((s) => {
    const tr = document.createElement("tr");
    tr.append(cell("td", s.clientId), cell("td", s.topic), cell("td", String(s.qos)));
    return tr;
  });
  /** @type {HTMLElement} */ ($("subscriptions").querySelector("tbody")).replaceChildren(...rows);
}

let retainedShown = "";

/** @param {any[]} messages */
function renderRetained(messages) {
  const signature = JSON.stringify(messages);
  if (signature === retainedShown) return;
  retainedShown = signature;
  const container = $("retained");
  if (messages.length === 0) {
    container.replaceChildren(cell("p", "No retained messages"));
    return;
  }
  container.replaceChildren(renderTree(buildTree(messages)));
}

/** @param {string} clientId */
async function kickClient(clientId) {
  if (!confirm(`Disconnect client "${clientId}"?`)) return;
  try {
    await call("POST", `/api/clients/${encodeURIComponent(clientId)}/kick`, {});
    await poll();
  } catch (error) {
    report(error);
  }
}

/** @param {string} topic */
async function deleteRetained(topic) {
  if (!confirm(`Delete the retained message of "${topic}"?`)) return;
  try {
    await call("DELETE", `/api/retained?topic=${encodeURIComponent(topic)}`);
    await poll();
  } catch (error) {
    report(error);
  }
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = /** @type {HTMLInputElement} */ ($("username")).value;
  const password = /** @type {HTMLInputElement} */ ($("password"));
  $("login-error").textContent = "";
  try {
    const user = await login(username, password.value);
    password.value = "";
    showDashboard(user);
  } catch (error) {
    $("login-error").textContent = error instanceof Error ? error.message : String(error);
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await logout();
  } finally {
    showLogin();
  }
});

$("clients").addEventListener("click", (event) => {
  const button = /** @type {HTMLElement} */ (event.target).closest("button.kick");
  const row = button?.closest("tr");
  if (row?.dataset.clientId !== undefined) kickClient(row.dataset.clientId);
});

$("retained").addEventListener("click", (event) => {
  const button = /** @type {HTMLElement} */ (event.target).closest("button.delete");
  const item = button?.closest("li");
  if (item?.dataset.topic !== undefined) deleteRetained(item.dataset.topic);
});

$("search").addEventListener("input", (event) => {
  searchText = /** @type {HTMLInputElement} */ (event.target).value;
  poll();
});

$("publish").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await call("POST", "/api/publish", {
      topic: /** @type {HTMLInputElement} */ ($("publish-topic")).value,
      payload: /** @type {HTMLInputElement} */ ($("publish-payload")).value,
      qos: Number(/** @type {HTMLSelectElement} */ ($("publish-qos")).value),
      retain: /** @type {HTMLInputElement} */ ($("publish-retain")).checked,
    });
    await poll();
  } catch (error) {
    report(error);
  }
});

try {
  const user = await currentUser();
  if (user === undefined) showLogin();
  else showDashboard(user);
} catch (error) {
  showLogin(error instanceof Error ? error.message : String(error));
}
