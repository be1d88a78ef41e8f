/* The planner's map of a plan (gridmap): grids fetched by URL and coloured by households
   against the band, code labels where they fit, popups, legend, search by code, and
   overlay layers fetched only when switched on. Makes its Leaflet map from the page's config
   block (maps/templates/planner.html, maps/planner.py) once the page's scripts are loaded
   (the editor's too). Needs Leaflet 1.9 and nothing else. Values from the server reach the
   page through esc() or textContent only. */
(function () {
  "use strict";

  var FLAG_NAMES = {
    below_min: "户数低于下限",
    above_max: "户数超过上限",
    noncontiguous: "网格不连片",
    village_below_min: "村（社区）户数不足下限",
    part_below_min: "被分隔部分户数不足下限",
    single_building: "单栋建筑户数超过上限",
    block_over_max: "单个地块户数超过上限",
    rural_village: "农村整村划为一格",
    infeasible_band: "总户数无法分入区间",
    infeasible_split: "无可行的区间内划分",
    radius_split: "按服务半径切分",
    crosses_barrier: "跨越河流/山脊/铁路",
    building_split_by_boundary: "建筑被村（社区）界线分割"
  };
  var KIND_NAMES = {comprehensive: "综合网格", dedicated: "专属网格"};
  var COLORS = {below: "#f0b429", within: "#3f9a5b", above: "#d64545", dedicated: "#7c5cc4",
    water: "#4dabf7"};
  /* A river or lake made a grid of its own (gis/names.py WATER_GRID_SUFFIX). */
  var WATER_GRID = /水域专属网格$/;
  /* The inferred streets: thin and dashed, unlike any given road. */
  var STREET_COLOR = "#d6336c";
  var ROAD_STYLE = {
    motorway: ["#c2410c", 5], trunk: ["#c2410c", 4.5], primary: ["#ea7a0c", 4],
    secondary: ["#f0a30a", 3], tertiary: ["#d9a400", 2.5], residential: ["#7a7f87", 1.6],
    service: ["#9aa0a6", 1.2]
  };
  var FACILITY_COLORS = {school: "#1c7ed6", hospital: "#e03131", market: "#f08c00",
    clinic: "#e8590c", police: "#364fc7", community_centre: "#2b8a3e"};
  /* A label is drawn once its grid is this large on screen (pixels). */
  var LABEL_MIN_W = 34, LABEL_MIN_H = 18, LABEL_MAX = 900;

  var state = window.gridmap = {
    ready: false, gridsDrawn: 0, drawnAt: null, timings: {}, labelsShown: 0, counts: {},
    layers: {}, errors: [], map: null
  };

  function el(tag, cls, html) {
    var e = L.DomUtil.create(tag, cls || "");
    if (html !== undefined) { e.innerHTML = html; }
    return e;
  }

  var esc = window.gridmapEscape;   /* escape.js */

  function num(v) { return v === null || v === undefined ? "—" : Number(v).toLocaleString("zh-CN"); }

  function isWater(p) { return p.kind === "dedicated" && WATER_GRID.test(String(p.name || "")); }

  /* The flags in Chinese, and their reason. */
  function flagText(p) {
    var names = (p.flags || []).map(function (f) { return FLAG_NAMES[f] || f; });
    return {names: names.join("；"), reason: names.length ? String(p.flag_reason || "") : ""};
  }

  /* A grid's class against its plan's band, as the server classed it (band_class, by
     gis/band.py's one rule): below, within (in_band), above or dedicated. */
  function bandOf(p) { return p.band_class === "in_band" ? "within" : p.band_class; }

  function notice(text) {
    var box = state.noticeBox;
    if (!box) { return; }
    box.innerHTML = esc(text);
    box.style.display = text ? "block" : "none";
  }

  /* An interior point of the largest polygon: the middle of the widest horizontal chord
     through the centroid's latitude (always inside the outer ring). */
  function labelPoint(geometry) {
    var polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    var best = null, bestArea = -1;
    polys.forEach(function (poly) {
      var ring = poly[0], a = 0, cx = 0, cy = 0;
      for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        var f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
        a += f; cx += (ring[j][0] + ring[i][0]) * f; cy += (ring[j][1] + ring[i][1]) * f;
      }
      if (Math.abs(a) > bestArea) {
        bestArea = Math.abs(a);
        best = {ring: ring, x: a ? cx / (3 * a) : ring[0][0], y: a ? cy / (3 * a) : ring[0][1]};
      }
    });
    var ring = best.ring, y = best.y, xs = [];
    for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      var y1 = ring[j][1], y2 = ring[i][1];
      if ((y1 > y) !== (y2 > y)) {
        xs.push(ring[j][0] + (y - y1) / (y2 - y1) * (ring[i][0] - ring[j][0]));
      }
    }
    xs.sort(function (p, q) { return p - q; });
    var x = best.x, widest = -1;
    for (var k = 0; k + 1 < xs.length; k += 2) {
      if (xs[k + 1] - xs[k] > widest) { widest = xs[k + 1] - xs[k]; x = (xs[k] + xs[k + 1]) / 2; }
    }
    return L.latLng(y, x);
  }

  function popupHtml(p, band) {
    var flags = flagText(p);
    var b = bandOf(p);
    var bandText = {below: "低于 " + band[0] + " 户", within: band[0] + "–" + band[1] + " 户之间",
      above: "超过 " + band[1] + " 户", dedicated: isWater(p) ? "水域专属网格" : "专属网格"}[b];
    var rows = [
      ["网格编码", "<b class=\"code\">" + esc(p.code) + "</b>"],
      ["名称", esc(p.name)],
      ["类型", esc(KIND_NAMES[p.kind] || p.kind)],
      ["户数", "<b>" + esc(num(p.households)) + "</b> <span class=\"band band-" + b + "\">" +
        esc(bandText) + "</span>"],
      ["人口", esc(num(p.population))],
      ["紧凑度", p.compactness === null ? "—" : esc(Number(p.compactness).toFixed(2))],
      ["边界沿道路/河流等比例", p.barrier_share === null ? "—" :
        esc((100 * p.barrier_share).toFixed(0)) + "%"],
      ["四至", esc(p.boundary_text)],
      ["标记", flags.names ? "<span class=\"gm-flags\">" + esc(flags.names) + "</span>" +
        (flags.reason ? "<div class=\"gm-reason\">" + esc(flags.reason) + "</div>" : "") : "无"]
    ];
    if (p.barrier_inside_m > 0) {  // river, ridge or railway inside the grid
      rows.splice(rows.length - 2, 0, ["网格内河流/山脊/铁路",
        esc(Number(p.barrier_inside_m).toLocaleString("zh-CN", {maximumFractionDigits: 0}) +
          " 米")]);
    }
    if (p.households_estimated > 0) {  // households from footprints without a count
      rows.splice(4, 0, ["其中估算", esc(num(p.households_estimated) + " 户")]);
    }
    return "<table class=\"grid-popup\">" + rows.map(function (r) {
      return "<tr><th>" + r[0] + "</th><td>" + r[1] + "</td></tr>";
    }).join("") + "</table>";
  }

  function gridStyle(feature) {
    var p = feature.properties, b = bandOf(p);
    return {color: "#1f2933", weight: 0.8, opacity: 0.8,
      fillColor: isWater(p) ? COLORS.water : COLORS[b], fillOpacity: 0.45};
  }

  /* ---------------------------------------------------------------- controls */

  function titleControl(cfg) {
    var c = L.control({position: "topleft"});
    c.onAdd = function () {
      var box = el("div", "gm-panel gm-title");
      box.innerHTML = "<h1>" + esc(cfg.title) + "</h1><div class=\"gm-sub\">状态：" +
        esc(cfg.status) + " · 网格 <span id=\"gm-n\">" + num(cfg.nGrids) +
        "</span> 个 · 总户数 <span id=\"gm-hh\">…</span></div><div class=\"gm-links\">" +
        "<a href=\"" + esc(cfg.links.index) + "\">首页</a> · <a href=\"" +
        esc(cfg.links.geojson) + "\">GeoJSON</a> · <a href=\"" + esc(cfg.links.xlsx) +
        "\">导出 Excel</a>" + (cfg.links.edit && !cfg.editor ? " · <a class=\"gm-edit-link\" href=\"" +
        esc(cfg.links.edit) + "\">编辑此草稿</a>" : "") + "</div>";
      if (cfg.links.copy) {
        var copy = el("button", "gm-copy", "复制为草稿并编辑");
        copy.type = "button";
        copy.addEventListener("click", function () { copyToDraft(cfg, copy); });
        box.appendChild(copy);
      }
      state.noticeBox = el("div", "gm-notice", "正在加载网格…");
      box.appendChild(state.noticeBox);
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    return c;
  }

  /* A published or archived plan is never edited: copy it to a draft, open the draft's
     editor. The user named in the editor (localStorage) is the copy's author. */
  function copyToDraft(cfg, button) {
    var user = "";
    try { user = window.localStorage.getItem("gridmap.user") || ""; } catch (e) { user = ""; }
    var headers = {"content-type": "application/json"};
    if (user) { headers["X-Gridmap-User"] = encodeURIComponent(user); }
    button.disabled = true;
    notice("正在复制为草稿…");
    fetch(cfg.links.copy, {method: "POST", headers: headers,
      body: JSON.stringify({note: "复制自第 " + cfg.planId + " 号方案"})}).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.detail || body.title || ("HTTP " + r.status)); }
        window.location.href = "/plans/" + body.id + "/edit";
      });
    }).catch(function (err) {
      button.disabled = false;
      notice("复制失败：" + err.message);
    });
  }

  function legendControl(cfg) {
    var c = L.control({position: "bottomright"});
    c.onAdd = function () {
      var lo = cfg.band[0], hi = cfg.band[1];
      var items = [["below", "低于 " + lo + " 户"], ["within", lo + "–" + hi + " 户"],
        ["above", "超过 " + hi + " 户"], ["dedicated", "专属网格"], ["water", "水域专属网格"]];
      var box = el("div", "gm-panel gm-legend");
      box.innerHTML = "<h2>网格户数</h2>" + items.map(function (it) {
        /* The swatch's colour is a class (planner.css): no style attributes under the CSP. */
        return "<div class=\"gm-legend-item\" data-band=\"" + it[0] + "\"><i class=\"gm-swatch-" +
          it[0] + "\"></i>" + esc(it[1]) + " <span class=\"gm-count\"></span></div>";
      }).join("");
      return box;
    };
    return c;
  }

  function searchControl() {
    var c = L.control({position: "topleft"});
    c.onAdd = function () {
      var box = el("div", "gm-panel gm-search");
      box.innerHTML = "<form><input type=\"search\" name=\"q\" autocomplete=\"off\" " +
        "placeholder=\"按网格编码搜索，如 001 或完整编码\" aria-label=\"网格编码\">" +
        "<button type=\"submit\">搜索</button></form><div class=\"gm-results\"></div>";
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      var form = box.querySelector("form"), results = box.querySelector(".gm-results");
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        search(form.q.value, results);
      });
      results.addEventListener("click", function (ev) {
        var code = ev.target.getAttribute("data-code");
        if (code) { select(code); }
      });
      return box;
    };
    return c;
  }

  function search(text, results) {
    var q = String(text || "").trim().replace(/\s+/g, "");
    results.innerHTML = "";
    if (!q) { return; }
    var codes = Object.keys(state.byCode);
    var exact = codes.filter(function (c) { return c === q; });
    var ends = codes.filter(function (c) { return c !== q && c.slice(-q.length) === q; });
    var part = codes.filter(function (c) {
      return c.indexOf(q) >= 0 && c !== q && c.slice(-q.length) !== q;
    });
    var found = exact.concat(ends, part);
    state.lastSearch = {query: q, found: found.length};
    if (!found.length) {
      results.innerHTML = "<div class=\"gm-none\">未找到编码含“" + esc(q) + "”的网格</div>";
      return;
    }
    if (found.length === 1 || exact.length === 1) {
      select(found[0]);
      return;
    }
    results.innerHTML = "<div class=\"gm-many\">找到 " + esc(found.length) + " 个网格" +
      (found.length > 30 ? "，显示前 30 个" : "") + "：</div>" + found.slice(0, 30).map(function (c) {
      var p = state.byCode[c].feature.properties;
      return "<button type=\"button\" data-code=\"" + esc(c) + "\">" + esc(c) + " " +
        esc(p.name || "") + "</button>";
    }).join("");
  }

  function select(code) {
    var layer = state.byCode[code];
    if (!layer) { return false; }
    var map = state.map;
    if (!map.hasLayer(state.gridLayer)) { map.addLayer(state.gridLayer); }
    map.fitBounds(layer.getBounds(), {maxZoom: 17, animate: false, padding: [40, 40]});
    layer.openPopup(state.labelAt[code]);
    return true;
  }

  /* ---------------------------------------------------------------- labels */

  function updateLabels() {
    var map = state.map, shown = state.labelMarkers, want = {};
    var on = map.hasLayer(state.gridLayer) && map.hasLayer(state.labelLayer);
    var view = map.getBounds(), n = 0;
    if (on) {
      for (var code in state.byCode) {
        if (n >= LABEL_MAX) { break; }
        var b = state.bounds[code];
        if (!view.intersects(b)) { continue; }
        var sw = map.latLngToContainerPoint(b.getSouthWest());
        var ne = map.latLngToContainerPoint(b.getNorthEast());
        if (Math.abs(ne.x - sw.x) < LABEL_MIN_W || Math.abs(sw.y - ne.y) < LABEL_MIN_H) { continue; }
        want[code] = true;
        n++;
      }
    }
    Object.keys(shown).forEach(function (code) {
      if (!want[code]) { state.labelLayer.removeLayer(shown[code]); delete shown[code]; }
    });
    Object.keys(want).forEach(function (code) {
      if (shown[code]) { return; }
      var icon = L.divIcon({className: "gm-label", iconSize: null,
        html: "<span title=\"" + esc(code) + "\">" + esc(code.slice(-3)) + "</span>"});
      shown[code] = L.marker(state.labelAt[code], {icon: icon, interactive: false, pane: "gm-labels",
        keyboard: false}).addTo(state.labelLayer);
    });
    state.labelsShown = Object.keys(shown).length;
  }

  /* ---------------------------------------------------------------- overlays */

  function overlayStyle(key) {
    return function (feature) {
      var p = feature.properties || {};
      if (key.indexOf("overlay:") === 0) {
        /* A department's units dashed; the slivers between them and the grids filled red. */
        return p.kind === "sliver" ?
          {color: "#c92a2a", weight: 1, fillColor: "#ff6b6b", fillOpacity: 0.65} :
          {color: p.whole ? "#2b8a3e" : "#e8590c", weight: 2.2, dashArray: "7 4",
            fill: false};
      }
      switch (key) {
        case "blocks": return {color: "#495057", weight: 0.7, opacity: 0.9, fill: false};
        case "roads":
          var s = ROAD_STYLE[p["class"]] || ["#7a7f87", 1.4];
          return {color: s[0], weight: s[1], opacity: 0.9};
        case "water": return {color: "#1c7ed6", weight: 2, fillColor: "#74c0fc", fillOpacity: 0.6};
        case "ridges": return {color: "#8d6e63", weight: 2, dashArray: "6 4"};
        case "inferred_streets": return {color: STREET_COLOR, weight: 1.6, opacity: 0.95,
          dashArray: "5 4", lineCap: "butt"};
        case "railways": return {color: "#212529", weight: 2.5, dashArray: "8 5"};
        case "buildings": return {color: "#5c636a", weight: 0.5, fillColor: "#adb5bd",
          fillOpacity: 0.7};
        case "dedicated_areas": return {color: COLORS.dedicated, weight: 2, dashArray: "5 4",
          fillColor: COLORS.dedicated, fillOpacity: 0.12};
        case "admin_areas":
          var lv = {district: [4, "#111827", null], town: [2.6, "#374151", "10 5"],
            village: [1.4, "#6b7280", "4 4"]}[p.level] || [1, "#6b7280", null];
          return {color: lv[1], weight: lv[0], dashArray: lv[2], fill: false};
        default: return {color: "#333", weight: 1};
      }
    };
  }

  function overlayPopup(key, p) {
    var rows;
    if (key.indexOf("overlay:") === 0) {
      rows = p.kind === "sliver" ?
        [["碎片", "网格与部门单元边界不一致"], ["网格", p.grid_code], ["部门单元", p.unit_code],
          ["面积", num(Math.round(p.area_m2)) + " 平方米"],
          ["占网格面积", (100 * p.area_share).toFixed(1) + "%"]] :
        [["部门单元", p.name || "—"], ["编码", p.code],
          ["由整网格组成", p.whole ? "是" : "否"], ["完整网格", num(p.whole_grids)],
          ["部分网格", num(p.partial_grids)], ["碎片", num(p.slivers)]];
    } else {
      rows = plainPopupRows(key, p);
    }
    return "<table class=\"grid-popup\">" + rows.map(function (r) {
      return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
    }).join("") + "</table>";
  }

  function plainPopupRows(key, p) {
    var rows;
    switch (key) {
      case "blocks": rows = [["地块", p.block_no], ["户数", num(p.households)],
        ["人口", num(p.population)], ["所属网格", p.grid_code || "—"]]; break;
      case "roads": rows = [["道路", p.name || "（无名）"], ["等级", p["class"]]]; break;
      case "inferred_streets": rows = [["推测巷道", p.name || "无名巷道"],
        ["宽度", p.width_m === null || p.width_m === undefined ? "—" :
          Number(p.width_m).toFixed(1) + " 米"],
        ["像街道程度", p.likeness === null || p.likeness === undefined ? "—" :
          Number(p.likeness).toFixed(2)],
        ["说明", "由建筑间的空隙推测，道路数据中无此路"]]; break;
      case "buildings": rows = [["建筑户数", num(p.households)], ["人口", num(p.population)],
        ["层数", num(p.floors)], ["用途", p.use || "—"]]; break;
      case "facilities": rows = [["设施", p.name || "—"], ["类型", p.kind]]; break;
      case "dedicated_areas": rows = [["专属区域", p.name], ["类型", p.kind]]; break;
      case "admin_areas": rows = [["行政区划", p.name], ["代码", p.code],
        ["级别", {district: "区县", town: "街道/乡镇", village: "村/社区"}[p.level] || p.level]];
        break;
      default: rows = [["名称", p.name || "—"]];
    }
    return rows;
  }

  function makeOverlay(spec) {
    var entry = {spec: spec, features: 0, requests: 0, loaded: false, bboxMode: spec.minZoom > 0,
      fetched: null, controller: null};
    entry.layer = L.geoJSON(null, {
      pane: "gm-overlays", renderer: state.svg, style: overlayStyle(spec.key),
      interactive: spec.key !== "admin_areas",
      pointToLayer: function (feature, latlng) {
        var color = spec.key === "facilities" ?
          (FACILITY_COLORS[feature.properties.kind] || "#5f3dc4") : "#5c636a";
        return L.circleMarker(latlng, {pane: "gm-overlays", renderer: state.svg,
          radius: spec.key === "facilities" ? 6 : 3, color: "#fff", weight: 1.5,
          fillColor: color, fillOpacity: 0.95});
      },
      onEachFeature: function (feature, layer) {
        if (spec.key !== "admin_areas") {
          layer.bindPopup(function () { return overlayPopup(spec.key, feature.properties); });
        }
        if (spec.key === "inferred_streets") {
          /* A thin dashed line is hard to hit: a wide transparent twin takes the click. */
          var hit = L.polyline(layer.getLatLngs(), {pane: "gm-overlays", renderer: state.svg,
            weight: 14, opacity: 0, className: "gm-hit"});
          hit.feature = feature;
          hit.bindPopup(function () { return overlayPopup(spec.key, feature.properties); });
          entry.layer.addLayer(hit);
        }
      }
    });
    state.layers[spec.key] = entry;
    return entry;
  }

  function loadOverlay(entry) {
    var map = state.map, spec = entry.spec;
    if (!map.hasLayer(entry.layer)) { return; }
    var url = spec.url, view = null;
    if (entry.bboxMode) {
      if (map.getZoom() < spec.minZoom) {
        entry.layer.clearLayers();
        entry.fetched = null;
        entry.features = 0;
        notice(spec.name + "：请放大到第 " + spec.minZoom + " 级以上再显示");
        return;
      }
      if (entry.fetched && entry.fetched.contains(map.getBounds())) { return; }
      view = map.getBounds().pad(0.25);
      url += "&bbox=" + [view.getWest(), view.getSouth(), view.getEast(), view.getNorth()]
        .map(function (v) { return v.toFixed(6); }).join(",");
    } else if (entry.loaded) {
      return;
    }
    if (entry.controller) { entry.controller.abort(); }
    var controller = entry.controller = new AbortController();
    entry.requests++;
    notice("正在加载" + spec.name + "…");
    fetch(url, {signal: controller.signal}).then(function (r) {
      return r.json().then(function (body) { return {ok: r.ok, status: r.status, body: body}; });
    }).then(function (res) {
      if (controller !== entry.controller) { return; }
      entry.controller = null;
      if (!res.ok) {
        if (res.status === 400 && !entry.bboxMode) {
          /* Too many for one request: from now on by the view's bbox, zoomed in. */
          entry.bboxMode = true;
          spec.minZoom = Math.max(spec.minZoom, map.getZoom() + 2);
        }
        notice(spec.name + "：" + (res.body.detail || res.body.title || ("HTTP " + res.status)));
        return;
      }
      entry.layer.clearLayers();
      entry.layer.addData(res.body);
      entry.features = res.body.features.length;
      entry.loaded = true;
      entry.fetched = view;
      notice("");
    }).catch(function (err) {
      if (err && err.name === "AbortError") { return; }
      state.errors.push(String(err));
      notice(spec.name + " 加载失败：" + err);
    });
  }

  /* ---------------------------------------------------------------- start */

  /* Counts by band, the total and the legend, from the grids drawn now. */
  function updateTotals(cfg) {
    var counts = {below: 0, within: 0, above: 0, dedicated: 0}, water = 0, households = 0, n = 0;
    for (var code in state.byCode) {
      var p = state.byCode[code].feature.properties;
      counts[bandOf(p)]++;
      if (isWater(p)) { water++; }
      households += p.households || 0;
      n++;
    }
    state.counts = counts;
    state.gridsDrawn = n;
    state.households = households;
    document.getElementById("gm-hh").textContent = num(households);
    document.getElementById("gm-n").textContent = num(n);
    state.waterGrids = water;
    Array.prototype.forEach.call(document.querySelectorAll(".gm-legend-item"), function (item) {
      var key = item.getAttribute("data-band");
      /* Water grids are dedicated grids too (counted there), shown apart. */
      item.querySelector(".gm-count").textContent = "（" + (key === "water" ? water :
        key === "dedicated" ? counts.dedicated - water : counts[key]) + "）";
    });
  }

  function indexGrid(layer) {
    var p = layer.feature.properties;
    state.byCode[p.code] = layer;
    state.labelAt[p.code] = labelPoint(layer.feature.geometry);
    state.bounds[p.code] = layer.getBounds();
  }

  function dropLabel(code) {
    if (state.labelMarkers[code]) {
      state.labelLayer.removeLayer(state.labelMarkers[code]);
      delete state.labelMarkers[code];
    }
  }

  /* The editor's answer: the touched grids as now stored replace theirs, removed codes go;
     nothing else is redrawn. */
  function updateGrids(features, removed) {
    var cfg = state.config;
    (removed || []).concat(features.map(function (f) { return f.properties.code; }))
      .forEach(function (code) {
        if (state.byCode[code]) { state.gridLayer.removeLayer(state.byCode[code]); }
        delete state.byCode[code]; delete state.labelAt[code]; delete state.bounds[code];
        dropLabel(code);
      });
    features.forEach(function (f) {
      state.gridLayer.addData(f);
    });
    state.gridLayer.eachLayer(function (layer) {
      if (!state.byCode[layer.feature.properties.code]) { indexGrid(layer); }
    });
    updateTotals(cfg);
    updateLabels();
  }

  /* Every grid again (after another planner's edit), keeping the view. */
  function replaceGrids(data) {
    state.gridLayer.clearLayers();
    Object.keys(state.labelMarkers).forEach(dropLabel);
    state.byCode = {}; state.labelAt = {}; state.bounds = {};
    state.gridLayer.addData(data);
    state.gridLayer.eachLayer(indexGrid);
    updateTotals(state.config);
    updateLabels();
  }

  function drawGrids(cfg, data) {
    var map = state.map;
    state.byCode = {};
    state.labelAt = {};
    state.bounds = {};
    state.gridLayer.addData(data);
    state.gridLayer.eachLayer(indexGrid);
    updateTotals(cfg);
    if (data.features.length) {
      map.fitBounds(state.gridLayer.getBounds(), {animate: false});
    }
    updateLabels();
    notice("");
    state.timings.added = performance.now();
    requestAnimationFrame(function () {
      requestAnimationFrame(function () {
        state.drawnAt = state.timings.drawn = performance.now();
        state.ready = true;
      });
    });
  }

  function start(map, cfg) {
    state.map = map;
    state.config = cfg;
    state.select = select;
    map.createPane("gm-overlays").style.zIndex = 450;
    map.createPane("gm-labels").style.zIndex = 460;
    state.svg = L.svg({pane: "gm-overlays", padding: 0.3});
    var canvas = L.canvas({padding: 0.3});
    state.gridLayer = L.geoJSON(null, {
      renderer: canvas,
      style: function (f) { return gridStyle(f); },
      onEachFeature: function (feature, layer) {
        layer.bindPopup(function () { return popupHtml(feature.properties, cfg.band); },
          {maxWidth: 420, minWidth: 280});
        /* The popup opens here, not on Leaflet's own click: the editor takes the click
           first (a tool's target), and true keeps the popup shut. */
        layer.off("click", layer._openPopup, layer);
        layer.on("click", function (e) {
          if (state.gridClick && state.gridClick(feature, e) === true) { return; }
          layer.openPopup(e.latlng);
        });
      }
    }).addTo(map);
    state.labelLayer = L.layerGroup([], {pane: "gm-labels"}).addTo(map);
    state.labelMarkers = {};
    state.byCode = {};

    var bases = {}, overlays = {"网格": state.gridLayer, "网格编号": state.labelLayer};
    map.eachLayer(function (layer) {
      if (layer instanceof L.TileLayer) { bases["底图"] = layer; }
    });
    cfg.layers.forEach(function (spec) {
      /* The layer control writes names as HTML: a department's name is user text. */
      overlays[esc(spec.name)] = makeOverlay(spec).layer;
    });
    titleControl(cfg).addTo(map);
    searchControl().addTo(map);
    L.control.layers(bases, overlays, {collapsed: !!cfg.editor, position: "topright"}).addTo(map);
    legendControl(cfg).addTo(map);

    map.on("overlayadd", function (e) {
      for (var key in state.layers) {
        if (state.layers[key].layer === e.layer) { loadOverlay(state.layers[key]); }
      }
      if (e.layer === state.labelLayer || e.layer === state.gridLayer) { updateLabels(); }
    });
    map.on("overlayremove", function (e) {
      if (e.layer === state.gridLayer) { updateLabels(); }
      for (var key in state.layers) {
        var entry = state.layers[key];
        if (entry.layer === e.layer && entry.controller) { entry.controller.abort(); }
      }
      notice("");
    });
    map.on("moveend", function () {
      updateLabels();
      for (var key in state.layers) {
        if (state.layers[key].bboxMode) { loadOverlay(state.layers[key]); }
      }
    });

    if (cfg.editor && window.GridmapEditor) { window.GridmapEditor.start(map, cfg, state); }
    state.timings.start = performance.now();
    var pre = window.GRIDMAP_PREFETCH;   /* started in the page's head (prefetch.js) */
    (pre && pre.url === cfg.gridsUrl ? pre.response : fetch(cfg.gridsUrl)).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.detail || ("HTTP " + r.status)); }
        return body;
      });
    }).then(function (data) {
      /* Where the time goes, for bench/page_bench.py (ms since navigation start). */
      var t = state.timings, entry = performance.getEntriesByType("resource").filter(
        function (e) { return e.name.indexOf("/grids?") >= 0; })[0];
      t.parsed = performance.now();
      if (entry) {
        t.gridsRequestStart = entry.requestStart;
        t.gridsResponseStart = entry.responseStart;
        t.gridsResponseEnd = entry.responseEnd;
      }
      drawGrids(cfg, data);
      (state.onDrawn || []).forEach(function (fn) { fn(data); });
    }).catch(function (err) {
      state.errors.push(String(err));
      notice("网格加载失败：" + err.message);
      console.error("gridmap: grids could not be loaded", err);
    });
  }

  /* The Leaflet map as cfg.map describes it (maps/planner.py map_config), in #gm-map. */
  function makeMap(cfg) {
    var m = cfg.map;
    var map = L.map("gm-map", {center: m.center, zoom: m.zoom, maxZoom: m.maxZoom,
      preferCanvas: true, zoomControl: true});
    L.control.scale().addTo(map);
    if (m.basemap) {
      L.tileLayer(m.basemap.url, {attribution: esc(m.basemap.attribution),
        maxZoom: m.basemap.maxZoom, maxNativeZoom: m.basemap.maxNativeZoom,
        subdomains: m.basemap.subdomains || "abc"}).addTo(map);
      if (m.basemap.labels) {   /* 天地图's annotation layer over its map */
        L.tileLayer(m.basemap.labels, {maxZoom: m.basemap.maxZoom,
          maxNativeZoom: m.basemap.maxNativeZoom,
          subdomains: m.basemap.subdomains || "abc"}).addTo(map);
      }
    }
    if (m.bounds) { map.fitBounds(m.bounds); }
    return map;
  }

  /* After every script of the page ran (the editor's registers itself first). */
  function boot() {
    var block = document.getElementById("gm-config");
    if (!block || !document.getElementById("gm-map")) { return; }
    var cfg = JSON.parse(block.textContent);
    start(makeMap(cfg), cfg);
  }

  window.GridmapPlanner = {start: start, labelPoint: labelPoint, FLAG_NAMES: FLAG_NAMES,
    KIND_NAMES: KIND_NAMES, COLORS: COLORS, bandOf: bandOf, gridStyle: gridStyle, esc: esc,
    isWater: isWater, flagText: flagText,
    num: num, notice: notice, popupHtml: popupHtml, updateGrids: updateGrids,
    replaceGrids: replaceGrids};
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", boot);
  } else {
    boot();
  }
})();
