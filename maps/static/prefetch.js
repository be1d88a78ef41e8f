/* Loaded in the planner page's head (maps/templates/planner.html): asks for the grids first
   thing, while Leaflet and planner.js load; planner.js takes the answer from
   window.GRIDMAP_PREFETCH. */
(function () {
  "use strict";
  var block = document.getElementById("gm-config");
  var url = block && JSON.parse(block.textContent).gridsUrl;
  if (url) { window.GRIDMAP_PREFETCH = {url: url, response: fetch(url)}; }
})();
