/* Two plans side by side (gridmap): plan a on the left, plan b on the right, on two synced
   Leaflet maps, with GET /plans/{a}/diff/{b} drawn on them (grids removed red on the left,
   added blue on the right, changed orange on both) and listed (households that change
   grid). Starts itself from the page's config block (maps/templates/compare.html). Every
   value from the server reaches the page escaped (esc) or as text. */
(function () {
  "use strict";

  var COLORS = {below: "#f0b429", within: "#3f9a5b", above: "#d64545", dedicated: "#7c5cc4",
    water: "#4dabf7"};
  var MARK = {removed: "#c92a2a", added: "#1864ab", changed: "#e8590c"};
  var state = window.gridcompare = {ready: false, errors: [], maps: {}, layers: {}, byCode: {a: {}, b: {}},
    marked: {a: {}, b: {}}, diff: null};

  var esc = window.gridmapEscape;   /* escape.js */

  function num(v) { return v === null || v === undefined ? "—" : Number(v).toLocaleString("zh-CN"); }

  /* The colour key of a grid: its class against its plan's band as the server classed it
     (band_class, gis/band.py's one rule), or water. */
  function band(p) {
    /* A river or lake made a grid of its own ("…水域专属网格"), as on the planner map. */
    if (p.kind === "dedicated" && /水域专属网格$/.test(String(p.name || ""))) { return "water"; }
    return p.band_class === "in_band" ? "within" : p.band_class;
  }

  function getJson(url) {
    return fetch(url).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.detail || body.title || ("HTTP " + r.status)); }
        return body;
      });
    });
  }

  function makeMap(id, cfg) {
    var map = L.map(id, {preferCanvas: true, maxZoom: 20, zoomSnap: 0.25});
    L.control.scale({imperial: false}).addTo(map);
    if (cfg.bounds) {
      map.fitBounds([[cfg.bounds[1], cfg.bounds[0]], [cfg.bounds[3], cfg.bounds[2]]]);
    } else {
      map.setView([35, 105], 5);
    }
    return map;
  }

  /* Moving one map moves the other to the same view. */
  function sync(a, b) {
    var busy = false;
    function follow(src, dst) {
      src.on("move", function () {
        if (busy) { return; }
        busy = true;
        dst.setView(src.getCenter(), src.getZoom(), {animate: false});
        busy = false;
      });
    }
    follow(a, b);
    follow(b, a);
  }

  function draw(side, data, cfg, marks) {
    var map = state.maps[side];
    var layer = L.geoJSON(data, {
      style: function (f) {
        var p = f.properties, m = marks[p.code];
        var s = {color: "#1f2933", weight: 0.6, opacity: 0.7, fillColor: COLORS[band(p)],
          fillOpacity: 0.3};
        if (m) { s.color = MARK[m]; s.weight = 3; s.opacity = 1; s.fillColor = MARK[m]; s.fillOpacity = 0.45; }
        return s;
      },
      onEachFeature: function (f, l) {
        var p = f.properties, m = marks[p.code];
        state.byCode[side][p.code] = l;
        l.bindPopup("<table class=\"grid-popup\"><tr><th>网格编码</th><td class=\"code\">" +
          esc(p.code) + "</td></tr><tr><th>名称</th><td>" + esc(p.name) + "</td></tr><tr><th>户数</th><td>" +
          esc(num(p.households)) + "</td></tr>" + (m ? "<tr><th>对比</th><td>" +
          esc({removed: "已删除", added: "新增", changed: "有变化"}[m]) + "</td></tr>" : "") + "</table>");
      }
    }).addTo(map);
    state.layers[side] = layer;
    state.marked[side] = marks;
  }

  function zoomTo(code) {
    var l = state.byCode.b[code] || state.byCode.a[code];
    if (!l) { return; }
    state.maps.b.fitBounds(l.getBounds(), {maxZoom: 17, animate: false, padding: [30, 30]});
    state.focused = code;
  }

  function listHtml(d) {
    var changed = d.grids_changed.map(function (g) {
      var delta = g.households_after - g.households_before;
      return "<li><button type=\"button\" data-code=\"" + esc(g.code) + "\">" + esc(g.code) +
        "</button> " + esc(num(g.households_before)) + " → <b>" + esc(num(g.households_after)) +
        "</b> 户" + (delta ? "（" + (delta > 0 ? "+" : "") + esc(delta) + "）" : "") + "</li>";
    }).join("");
    function codes(list) {
      return list.map(function (c) {
        return "<li><button type=\"button\" data-code=\"" + esc(c) + "\">" + esc(c) + "</button></li>";
      }).join("");
    }
    var moves = d.moves.map(function (m) {
      return "<li>" + esc(m.from || "（无）") + " → " + esc(m.to) + "：<b>" + esc(num(m.households)) +
        "</b> 户</li>";
    }).join("");
    /* Swatch colours are classes (editor.css): no style attributes under the CSP. */
    return "<div class=\"gm-diff-legend\"><i class=\"gm-mark-removed\"></i>已删除（左）" +
      "<i class=\"gm-mark-added\"></i>新增（右）<i class=\"gm-mark-changed\"></i>有变化</div>" +
      "<h3>有变化的网格（" + d.grids_changed.length + "）</h3><ul class=\"gm-diff-changed\">" +
      (changed || "<li>无</li>") + "</ul>" +
      "<h3>新增网格（" + d.grids_added.length + "）</h3><ul class=\"gm-diff-added\">" +
      (codes(d.grids_added) || "<li>无</li>") + "</ul>" +
      "<h3>删除的网格（" + d.grids_removed.length + "）</h3><ul class=\"gm-diff-removed\">" +
      (codes(d.grids_removed) || "<li>无</li>") + "</ul>" +
      "<h3>换格的户（共 " + num(d.households_moved) + " 户）</h3><ul class=\"gm-diff-moves\">" +
      (moves || "<li>无</li>") + "</ul>";
  }

  /* Department grids (多网融合): each overlay's aligned proposal (its units redrawn as whole
     grids of the plan) on both maps when switched on, and how many households change unit
     under either plan. Fetched once, the first time it is switched on. */
  state.align = {};

  function alignHtml(cfg) {
    if (!cfg.overlays || !cfg.overlays.length) { return ""; }
    return "<h3>部门网格对齐方案</h3><ul class=\"gm-align\">" + cfg.overlays.map(function (o, i) {
      return "<li><label><input type=\"checkbox\" data-align=\"" + i + "\"> " +
        esc(o.department) + "</label> <span class=\"gm-align-moved\" id=\"gm-align-" + i +
        "\"></span></li>";
    }).join("") + "</ul>";
  }

  function unitPopup(department, p) {
    return "<table class=\"grid-popup\"><tr><th>" + esc(department) + "单元</th><td>" +
      esc(p.name || "") + "（" + esc(p.code) + "）</td></tr><tr><th>网格</th><td>" +
      esc(num(p.grids)) + " 个</td></tr><tr><th>户数</th><td>" + esc(num(p.households)) +
      "</td></tr><tr><th>迁入/迁出</th><td>" + esc(num(p.households_in)) + " / " +
      esc(num(p.households_out)) + " 户</td></tr></table>";
  }

  function toggleAlign(cfg, i, on) {
    var o = cfg.overlays[i], entry = state.align[o.department];
    if (!entry) {
      entry = state.align[o.department] = {loaded: false, layers: {}, moved: {}, features: {}};
      var out = document.getElementById("gm-align-" + i);
      out.textContent = "计算中…";
      entry.promise = Promise.all([getJson(o.a), getJson(o.b)]).then(function (res) {
        ["a", "b"].forEach(function (side, k) {
          var body = res[k];
          entry.moved[side] = body.summary.households_moved;
          entry.features[side] = (body.features || []).length;
          entry.layers[side] = L.geoJSON(body, {
            interactive: true,
            style: function () {
              return {color: "#0b7285", weight: 2.5, dashArray: "8 4", fill: false, opacity: 0.95};
            },
            onEachFeature: function (f, l) {
              l.bindPopup(function () { return unitPopup(o.department, f.properties || {}); });
            }
          });
        });
        out.textContent = "换单元：左 " + num(Math.round(entry.moved.a)) + " 户 · 右 " +
          num(Math.round(entry.moved.b)) + " 户";
        entry.loaded = true;
      }).catch(function (err) {
        out.textContent = "无法计算：" + err.message;
        state.errors.push(String(err));
      });
    }
    entry.promise.then(function () {
      ["a", "b"].forEach(function (side) {
        var layer = entry.layers[side];
        if (!layer) { return; }
        if (on) { layer.addTo(state.maps[side]); } else { state.maps[side].removeLayer(layer); }
      });
      entry.shown = on;
    });
  }

  function start(cfg) {
    state.config = cfg;
    state.maps.a = makeMap("gm-map-a", cfg);
    state.maps.b = makeMap("gm-map-b", cfg);
    sync(state.maps.a, state.maps.b);
    var summary = document.getElementById("gm-summary"), list = document.getElementById("gm-diff");
    list.addEventListener("click", function (ev) {
      var code = ev.target.getAttribute && ev.target.getAttribute("data-code");
      if (code) { zoomTo(code); }
    });
    list.addEventListener("change", function (ev) {
      var i = ev.target.getAttribute && ev.target.getAttribute("data-align");
      if (i !== null && i !== undefined) { toggleAlign(cfg, Number(i), ev.target.checked); }
    });
    Promise.all([getJson(cfg.a.gridsUrl), getJson(cfg.b.gridsUrl), getJson(cfg.diffUrl)])
      .then(function (res) {
        var d = state.diff = res[2], marksA = {}, marksB = {};
        d.grids_removed.forEach(function (c) { marksA[c] = "removed"; });
        d.grids_added.forEach(function (c) { marksB[c] = "added"; });
        d.grids_changed.forEach(function (g) { marksA[g.code] = "changed"; marksB[g.code] = "changed"; });
        draw("a", res[0], cfg, marksA);
        draw("b", res[1], cfg, marksB);
        summary.innerHTML = "新增 <b>" + esc(d.grids_added.length) + "</b> 格 · 删除 <b>" +
          esc(d.grids_removed.length) + "</b> 格 · 有变化 <b>" + esc(d.grids_changed.length) +
          "</b> 格 · 未变 <b>" + esc(d.grids_unchanged) + "</b> 格 · 换格 <b id=\"gm-moved\">" +
          esc(num(d.households_moved)) + "</b> 户";
        list.innerHTML = alignHtml(cfg) + listHtml(d);
        var first = d.grids_changed[0] || {code: d.grids_added[0] || d.grids_removed[0]};
        if (first.code) { zoomTo(first.code); }
        requestAnimationFrame(function () { state.ready = true; });
      }).catch(function (err) {
        state.errors.push(String(err));
        summary.textContent = "对比失败：" + err.message;
        console.error("gridmap: compare failed", err);
      });
  }

  window.GridmapCompare = {start: start};
  start(JSON.parse(document.getElementById("gm-config").textContent));
})();
