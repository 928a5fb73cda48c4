// Live fragments. An element with data-live="<url>" is re-fetched every data-every ms (default 2000) while
// the tab is visible; the server answers only that fragment when asked with X-Console-Fragment. The element
// is replaced only when its HTML changed, so focus and selection survive quiet refreshes.
export const FRAGMENT_HEADER = "X-Console-Fragment";

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
    if (html !== element.dataset.lastHtml) {
      element.innerHTML = html;
      element.dataset.lastHtml = html;
      element.dispatchEvent(new CustomEvent("console:updated", { bubbles: true }));
    }
  } catch (error) {
    note.textContent = `Live updates paused: the console is not answering (${error.message}).`;
    note.hidden = false;
  }
}

function follow(element) {
  const every = Number(element.dataset.every || 2000);
  const tick = async () => {
    if (!element.isConnected) return;
    if (document.visibilityState === "visible") await refresh(element);
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

export function start(root = document) {
  for (const element of root.querySelectorAll("[data-live]")) {
    if (element.dataset.following) continue;
    element.dataset.following = "1";
    follow(element);
  }
}

start();
