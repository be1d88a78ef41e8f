/* The one escape the pages' scripts use for HTML built from data (innerHTML, Leaflet popups,
   divIcons, attributions): & < > " ' as entities; null and undefined as "". Loaded before
   planner.js, compare.js and screen.js (maps/templates/). */
(function () {
  "use strict";
  var ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
  window.gridmapEscape = function (v) {
    return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, function (c) {
      return ENTITIES[c];
    });
  };
})();
