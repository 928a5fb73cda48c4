// Live fragments. An element with data-live="<url>" is re-fetched every data-every ms (default 2000) while
// the tab is visible; the server answers only that fragment when asked with X-Console-Fragment. The element
// is replaced only when its HTML changed, so focus and selection survive quiet refreshes. A fragment's answer
// may name the URL to fetch next (X-Console-Live-Url: the messages log reads only the span it shows). With
// data-idle-every="<ms>", the interval doubles up to that while the fragment stays the same and nobody uses
// the page; a change, a key, the pointer or the tab coming back brings it down to data-every again.
export const FRAGMENT_HEADER = "X-Console-Fragment";
export const LIVE_URL_HEADER = "X-Console-Live-Url";
// A fragment answered with this header holds only new rows and rows that changed (the messages log): they are
// merged into the element by data-message-id, newest first, keeping at most data-keep rows.
export const PATCH_HEADER = "X-Console-Live-Patch";

let lastActivity = Date.now();
const nudges = new Set();
for (const type of ["keydown", "pointerdown", "pointermove", "wheel", "focusin", "visibilitychange"]) {
  document.addEventListener(
    type,
    () => {
      lastActivity = Date.now();
      for (const nudge of nudges) nudge();
    },
    { capture: true, passive: true },
  );
}

// A refresh keeps the operator's place: focus goes back to the same control of the same row (a row is known by
// its data-message-id, data-batch-id or data-queue), and a fragment with a field being typed in waits until it
// is left. What changed is said in one polite line (#live-announcer in base.html), never by reading a whole
// replaced fragment out: data-announce="<noun>" counts new rows and rows whose status changed;
// data-announce-state="<selector>" says the new text of that element ("Status: delivered").
const ROW_KEYS = [
  ["messageId", "data-message-id"],
  ["batchId", "data-batch-id"],
  ["queue", "data-queue"],
];
const ROW = ROW_KEYS.map(([, attribute]) => `[${attribute}]`).join(", ");
const FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";
const TYPING = new Set(["INPUT", "SELECT", "TEXTAREA"]);

function focusedPlace(element) {
  const active = document.activeElement;
  if (!active || active === element || !element.contains(active)) return null;
  if (active.id) return { id: active.id };
  const row = active.closest(ROW);
  const key = row && element.contains(row) ? ROW_KEYS.find(([name]) => row.dataset[name] !== undefined) : null;
  const selector = key ? `[${key[1]}="${CSS.escape(row.dataset[key[0]])}"]` : null;
  const scope = selector ? row : element;
  return { selector, signature: signature(active), index: [...scope.querySelectorAll(FOCUSABLE)].indexOf(active) };
}

// A control as the operator knows it: where it leads or what it does, and what it says; rows may come and go
// around it, so its position is only the last resort.
function signature(control) {
  const form = control.closest("form");
  const says = [control.getAttribute("href"), control.name, control.getAttribute("aria-label"), control.textContent.trim()];
  return [control.tagName, form?.getAttribute("action"), ...says].join("\u0000");
}

function restoreFocus(element, place) {
  const scope = place.selector ? element.querySelector(place.selector) : element;
  const controls = [...(scope?.querySelectorAll(FOCUSABLE) ?? [])];
  const same = controls.find((control) => signature(control) === place.signature);
  const target = place.id ? document.getElementById(place.id) : (same ?? controls[place.index]);
  if (target && element.contains(target)) {
    target.focus({ preventScroll: true });
    return;
  }
  // what had focus is gone (a batch's Cancel once the batch ended): stay here, not at the page's start
  element.tabIndex = -1;
  element.focus({ preventScroll: true });
}

function rows(element) {
  const states = new Map();
  for (const row of element.querySelectorAll(ROW)) {
    const key = ROW_KEYS.find(([name]) => row.dataset[name] !== undefined);
    states.set(`${key[0]}:${row.dataset[key[0]]}`, row.dataset.status ?? row.dataset.state ?? "");
  }
  return states;
}

function counted(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function changes(element, before) {
  if (element.dataset.announceState) {
    const now = element.querySelector(element.dataset.announceState)?.textContent.trim() ?? "";
    return now && now !== before.state ? `Status: ${now}` : "";
  }
  const noun = element.dataset.announce;
  if (!noun) return "";
  let added = 0;
  let changed = 0;
  for (const [key, state] of rows(element)) {
    if (!before.rows.has(key)) added += 1;
    else if (before.rows.get(key) !== state) changed += 1;
  }
  const said = [];
  if (added) said.push(`${counted(added, `new ${noun}`)}`);
  if (changed) said.push(`${counted(changed, noun)} changed status`);
  return said.join(", ");
}

function announce(text) {
  const region = document.getElementById("live-announcer");
  if (!region || !text) return;
  // the same words twice are read twice only if the region was emptied in between
  region.textContent = "";
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

// What the operator opened (a <details>: Eseye's answer as sent, skipped recipients) stays open: known by its
// summary's words and which of those it is (a timeline only grows at its end).
function keyedDetails(element) {
  const seen = new Map();
  return [...element.querySelectorAll("details")].map((details) => {
    const words = details.querySelector("summary")?.textContent.trim() ?? "";
    const nth = seen.get(words) ?? 0;
    seen.set(words, nth + 1);
    return [details, `${words}\u0000${nth}`];
  });
}

function replace(element, html) {
  const place = focusedPlace(element);
  const opened = keyedDetails(element).flatMap(([details, key]) => (details.open ? [key] : []));
  const before = {
    rows: element.dataset.announce ? rows(element) : null,
    state: element.dataset.announceState ? element.querySelector(element.dataset.announceState)?.textContent.trim() : null,
  };
  element.innerHTML = html;
  for (const [details, key] of opened.length ? keyedDetails(element) : []) details.open ||= opened.includes(key);
  if (place) restoreFocus(element, place);
  announce(changes(element, before));
}

// A row's place in the log: newest first by created_at (ISO, UTC, all in one format), then by id, as the API lists.
function rowOrder(row) {
  return [row.querySelector("time")?.getAttribute("datetime") ?? "", row.dataset.messageId ?? ""];
}

function newer(a, b) {
  const [x, y] = [rowOrder(a), rowOrder(b)];
  return x[0] !== y[0] ? x[0] > y[0] : x[1] > y[1];
}

function merge(element, html) {
  const incoming = document.createElement("template");
  incoming.innerHTML = html;
  const arrived = [...incoming.content.querySelectorAll("tr[data-message-id]")];
  if (!arrived.length) return false;
  if (element.contains(document.activeElement) && TYPING.has(document.activeElement.tagName)) return false;
  const place = focusedPlace(element);
  const before = { rows: element.dataset.announce ? rows(element) : null, state: null };
  for (const row of arrived) {
    const shown = element.querySelector(`tr[data-message-id="${CSS.escape(row.dataset.messageId)}"]`);
    if (shown) {
      shown.replaceWith(row);
      continue;
    }
    const after = [...element.querySelectorAll("tr[data-message-id]")].find((other) => newer(row, other));
    if (after) after.before(row);
    else element.append(row);
  }
  // the page's "No messages match." line, and the rows past the page's size
  for (const row of element.querySelectorAll("tr:not([data-message-id])")) row.remove();
  const keep = Number(element.dataset.keep || Infinity);
  [...element.querySelectorAll("tr[data-message-id]")].slice(keep).forEach((row) => row.remove());
  if (place && !element.contains(document.activeElement)) restoreFocus(element, place);
  announce(changes(element, before));
  return true;
}

function liveError(element) {
  let note = element.closest("table, section, div")?.previousElementSibling;
  if (!note || !note.classList.contains("live-error")) {
    note = document.createElement("p");
    note.className = "flash error live-error";
    note.setAttribute("role", "alert");
    note.hidden = true;
    (element.closest("table, section, div") ?? element).before(note);
  }
  return note;
}

export async function refresh(element) {
  const note = liveError(element);
  try {
    const response = await fetch(element.dataset.live, {
      headers: { [FRAGMENT_HEADER]: "1" },
      credentials: "same-origin",
      cache: "no-store",
    });
    const html = await response.text();
    if (!response.ok) {
      // The server renders the API's own words into the error page: show them, keep the last good rows.
      const page = new DOMParser().parseFromString(html, "text/html");
      const said = page.querySelector(".api-error, [role=alert]")?.textContent.trim().replace(/\s+/g, " ");
      note.textContent = `Live updates paused: ${said || response.status}`;
      note.hidden = false;
      return;
    }
    note.hidden = true;
    const next = response.headers.get(LIVE_URL_HEADER);
    if (response.headers.get(PATCH_HEADER)) {
      const merged = merge(element, html);
      // the operator is typing: the rows wait, and so does the URL that says they were shown
      if (merged || !html.trim()) {
        if (next && new URL(next, location.href).origin === location.origin) element.dataset.live = next;
      }
      if (merged) element.dispatchEvent(new CustomEvent("console:updated", { bubbles: true }));
      return merged;
    }
    if (next && new URL(next, location.href).origin === location.origin) element.dataset.live = next;
    if (html !== element.dataset.lastHtml) {
      // the operator is typing in this fragment: it waits until they leave the field
      if (element.contains(document.activeElement) && TYPING.has(document.activeElement.tagName)) return false;
      replace(element, html);
      element.dataset.lastHtml = html;
      element.dispatchEvent(new CustomEvent("console:updated", { bubbles: true }));
      return true;
    }
  } catch (error) {
    note.textContent = `Live updates paused: the console is not answering (${error.message}).`;
    note.hidden = false;
  }
  return false;
}

function follow(element) {
  const every = Number(element.dataset.every || 2000);
  const most = Math.max(every, Number(element.dataset.idleEvery || every));
  let wait = every;
  let timer = setTimeout(tick, every);
  let due = Date.now() + every;
  async function tick() {
    timer = null;
    // gone from the page, or no longer live (timeline.js ends a final message's refreshes)
    if (!element.isConnected || element.dataset.live === undefined) {
      nudges.delete(nudge);
      return;
    }
    if (document.visibilityState === "visible") {
      const changed = await refresh(element);
      const idle = Date.now() - lastActivity > every;
      wait = changed || !idle ? every : Math.min(most, wait * 2);
    }
    if (!element.isConnected || element.dataset.live === undefined) {
      nudges.delete(nudge);
      return;
    }
    due = Date.now() + wait;
    timer = setTimeout(tick, wait);
  }
  // The operator is back: a refresh backed off to long waits comes due within data-every.
  function nudge() {
    wait = every;
    if (timer !== null && due - Date.now() > every) {
      clearTimeout(timer);
      due = Date.now() + every;
      timer = setTimeout(tick, every);
    }
  }
  nudges.add(nudge);
}

export function start(root = document) {
  for (const element of root.querySelectorAll("[data-live]")) {
    if (element.dataset.following) continue;
    element.dataset.following = "1";
    follow(element);
  }
}

start();
