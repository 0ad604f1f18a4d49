// Bastion dashboard: keeps a page's live region (#live) current. The live feed
// (/dashboard/events, server-sent events) names what changed; when it is something this page
// shows (main[data-kinds]), the region is fetched again from /dashboard/fragment/PAGE and put
// in place. The server renders and escapes everything; this script only moves its HTML.
"use strict";
(function () {
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  if (!main || !live || !main.dataset.page || !window.EventSource) return;
  var page = main.dataset.page;
  var kinds = (main.dataset.kinds || "").split(" ").filter(Boolean);
  if (kinds.length === 0) return;
  var busy = false, again = false, reloadWanted = false;

  // A person typing or choosing inside the region keeps it still until they leave it.
  function editing() {
    var a = document.activeElement;
    return a && live.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }

  function refresh() {
    if (busy) { again = true; return; }
    if (editing()) { again = true; return; }
    busy = true;
    fetch("/dashboard/fragment/" + page + location.search, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { location.href = "/dashboard/login"; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          var fresh = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html").body.firstChild;
          // Unchanged content stays in place: nothing under the pointer or the focus moves.
          if (fresh.innerHTML !== live.innerHTML) {
            live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes));
          }
          live.dataset.refreshed = String(Date.now());
        }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; setTimeout(refresh, 100); }
      });
  }

  live.addEventListener("focusout", function () { if (again) { again = false; setTimeout(refresh, 50); } });

  var source = null;
  function connect() {
    source = new EventSource("/dashboard/events");
    source.addEventListener("refresh", onRefresh);
    // What changed between rendering the page and this feed starting (a restart finishing, a
    // call ending) was announced to nobody: fetch the region once on every (re)connection.
    source.addEventListener("open", function () { document.documentElement.dataset.live = "connected"; refresh(); });
  }
  // A page left behind (navigation, the back-forward cache) gives its connection back: browsers
  // allow six per host, and six forgotten feeds would stall every request after them.
  window.addEventListener("pagehide", function () { if (source) { source.close(); source = null; } });
  window.addEventListener("pageshow", function (e) { if (e.persisted && !source) connect(); });
  function onRefresh(e) {
    // Pause and mode change the header too: reload the page unless someone is typing.
    if (e.data === "switch") {
      if (editing()) { reloadWanted = true; } else { location.reload(); }
      return;
    }
    if (e.data === "all" || kinds.indexOf(e.data) >= 0) refresh();
  }
  connect();
  live.addEventListener("focusout", function () { if (reloadWanted) location.reload(); });
})();
