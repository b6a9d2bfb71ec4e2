// The console follows the daemon: the page's URL with live=1 is a stream
// of server-sent events, each the page's body rendered again because it
// changed, which this swaps in. While a form field in the body has the
// focus, the newest body waits, so a change does not wipe what is typed.
(function () {
  "use strict";
  const body = document.getElementById("live");
  const badge = document.getElementById("live-state");
  if (!body || !window.EventSource) {
    return;
  }
  let waiting = null;
  const editing = () => {
    const el = document.activeElement;
    return el && body.contains(el) && (el.tagName === "INPUT" || el.tagName === "SELECT");
  };
  const swap = (html) => {
    if (editing()) {
      waiting = html;
      return;
    }
    body.innerHTML = html;
    waiting = null;
  };
  body.addEventListener("focusout", () => {
    setTimeout(() => { if (waiting !== null) swap(waiting); }, 0);
  });
  // The action forms (drain, set size) are posted from here, so the page
  // stays put and says how it went; the change itself comes back live.
  // Without script they post as plain forms, and come back to the page.
  const said = document.getElementById("act-status");
  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (!form.classList.contains("act")) {
      return;
    }
    e.preventDefault();
    said.className = "act-status";
    said.textContent = "…";
    try {
      const resp = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { "Accept": "application/json" },
        credentials: "same-origin",
      });
      const answer = await resp.json().catch(() => ({}));
      said.className = resp.ok ? "act-status ok" : "act-status error";
      said.textContent = resp.ok ? "Done: " + answer.message : (answer.error || resp.statusText);
    } catch (err) {
      said.className = "act-status error";
      said.textContent = String(err);
    }
  });
  const url = new URL(window.location.href);
  url.searchParams.set("live", "1");
  const events = new EventSource(url);
  events.addEventListener("update", (e) => {
    swap(e.data);
    badge.textContent = "live";
    badge.className = "live on";
    badge.dataset.updated = String(Date.now());
  });
  events.addEventListener("error", () => {
    badge.textContent = "reconnecting…";
    badge.className = "live off";
  });
})();
