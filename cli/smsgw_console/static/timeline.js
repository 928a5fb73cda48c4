// A message's page is live until its status is final: once the refreshed fragment says so (data-final),
// the live element is swapped for a copy without data-live, which ends console.js's polling of it.
function settle(element) {
  if (!element.querySelector("[data-final]")) return;
  const quiet = element.cloneNode(true);
  quiet.removeAttribute("data-live");
  quiet.removeAttribute("data-following");
  const hadFocus = element.contains(document.activeElement) ? document.activeElement.id : null;
  element.replaceWith(quiet);
  if (hadFocus) document.getElementById(hadFocus)?.focus();
}

const live = document.getElementById("message-live");
if (live) live.addEventListener("console:updated", () => settle(live));
