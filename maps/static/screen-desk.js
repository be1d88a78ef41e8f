/* Loaded after screen.js on the big screen: a click on an urgent event's number opens it on
   the event desk — in a desk already open in this browser (it answers on the
   "gridmap-desk" channel), else in the desk's window, opened once; and today's patrols
   (日双巡) of the screen's territory, refreshed every minute. */
(function () {
  "use strict";
  var block = document.getElementById("gm-config");
  var cfg = block ? JSON.parse(block.textContent) : {};
  var channel = window.BroadcastChannel ? new BroadcastChannel("gridmap-desk") : null;
  var acked = {};
  if (channel) {
    channel.onmessage = function (m) { if (m.data && m.data.ack) { acked[m.data.ack] = true; } };
  }
  var urgent = document.getElementById("urgent");
  if (urgent) {
    urgent.addEventListener("click", function (e) {
      var link = e.target.closest && e.target.closest("a.to-desk");
      if (!link) { return; }
      e.preventDefault();
      e.stopPropagation();
      var id = Number(new URL(link.href).searchParams.get("event"));
      if (!channel) { window.open(link.href, "gridmap-desk"); return; }
      channel.postMessage({event: id});
      window.setTimeout(function () {
        if (!acked[id]) { window.open(link.href, "gridmap-desk"); }
      }, 400);
    }, true);
  }
  var out = document.getElementById("n-patrols");
  function patrols() {
    if (!out || !cfg.territory) { return; }
    fetch("/patrols/coverage?territory=" + encodeURIComponent(cfg.territory) +
          (cfg.area ? "&area=" + encodeURIComponent(cfg.area) : ""),
          {credentials: "same-origin", cache: "no-store"}).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (d) {
      if (d) {
        out.textContent = d.twice + " / " + d.total;
        out.title = d.day + "：已完成日双巡的网格 / 全部网格";
      }
    }).catch(function () { /* the next minute tries again */ });
  }
  patrols();
  window.setInterval(patrols, 60000);
})();
