// A page's live part (the matrix, a release view) redrawn as the server sends it (server-sent events): no reload.
"use strict";
const live = document.querySelector("[data-live]");
if (live && window.EventSource) {
  const source = new EventSource(live.dataset.live);
  source.addEventListener("update", (event) => {
    // Keep a comment being typed: skip a redraw while a form field has the focus.
    if (!live.contains(document.activeElement) || document.activeElement === document.body) {
      live.innerHTML = event.data;
    }
  });
}
