// A SIM's conversation reads like a chat: the newest message at the bottom, in view. When the live list
// (console.js) brings new messages, follow them only if the operator was already at the bottom, so reading
// older messages is never interrupted.
const NEAR_BOTTOM_PX = 48;

function atBottom(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= NEAR_BOTTOM_PX;
}

function follow(list) {
  const scroller = list.closest(".conversation-scroll");
  if (!scroller) return;
  const target = document.getElementById(location.hash.slice(1));
  if (target && scroller.contains(target)) {
    target.scrollIntoView({ block: "center" });
  } else {
    scroller.scrollTop = scroller.scrollHeight;
  }
  let wasAtBottom = atBottom(scroller);
  scroller.addEventListener("scroll", () => { wasAtBottom = atBottom(scroller); }, { passive: true });
  list.addEventListener("console:updated", () => {
    if (wasAtBottom) scroller.scrollTop = scroller.scrollHeight;
  });
}

const list = document.getElementById("conversation");
if (list) follow(list);
