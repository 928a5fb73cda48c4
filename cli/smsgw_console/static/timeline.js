// A message's page is live until its status is final: once the refreshed fragment says so (data-final), the
// live element loses data-live, which ends console.js's polling of it. Nothing is replaced, so focus stays put.
const live = document.getElementById("message-live");
if (live) {
  live.addEventListener("console:updated", () => {
    if (live.querySelector("[data-final]")) delete live.dataset.live;
  });
}
