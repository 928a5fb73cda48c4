// Live fragments. An element with data-live="<url>" is re-fetched every data-every ms (default 2000) while
// the tab is visible; the server answers only that fragment when asked with X-Console-Fragment. The element
// is replaced only when its HTML changed, so focus and selection survive quiet refreshes. A fragment's answer
// may name the URL to fetch next (X-Console-Live-Url: the messages log reads only the span it shows). With
// data-idle-every="<ms>", the interval doubles up to that while the fragment stays the same and nobody uses
// the page; a change, a key, the pointer or the tab coming back brings it down to data-every again.
export const FRAGMENT_HEADER = "X-Console-Fragment";
export const LIVE_URL_HEADER = "X-Console-Live-Url";

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
      note.textContent = `Live updates paused: ${page.querySelector(".api-error")?.textContent.trim() ?? response.status}`;
      note.hidden = false;
      return;
    }
    note.hidden = true;
    const next = response.headers.get(LIVE_URL_HEADER);
    if (next && next.startsWith("/") && !next.startsWith("//")) element.dataset.live = next;
    if (html !== element.dataset.lastHtml) {
      element.innerHTML = html;
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
    if (!element.isConnected) {
      nudges.delete(nudge);
      return;
    }
    if (document.visibilityState === "visible") {
      const changed = await refresh(element);
      const idle = Date.now() - lastActivity > every;
      wait = changed || !idle ? every : Math.min(most, wait * 2);
    }
    if (!element.isConnected) {
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
