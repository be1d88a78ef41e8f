/* The editor of a draft plan (gridmap): the planner map (planner.js) plus tools to select
   blocks and move them to a neighbouring grid, merge two grids, split one into k, reshape a
   boundary with a drawn line, lock/unlock and rename; live household counts from each
   edit's answer, undo/redo (Ctrl+Z / Ctrl+Y), the plan's history. Every edit names the
   version the page holds in If-Match; a 409 for a stale version reloads the current one.
   Started by planner.js when the config has "editor" (maps/editor.py). Needs Leaflet 1.9.
   Values from the server reach the page through P.esc or textContent only. */
(function () {
  "use strict";

  var OP_NAMES = {move: "移动地块", merge: "合并网格", split: "拆分网格", reshape: "画线重划",
    lock: "锁定", unlock: "解锁", rename: "重命名", undo: "撤销", redo: "重做"};
  var STATE_NAMES = {applied: "", undone: "（已撤销）", discarded: "（已作废）"};
  var TOOLS = [["select", "选择地块", "点击地块选择，按住 Shift 点击可多选；点击网格设为当前网格"],
    ["move", "移到网格", "点击目标网格（相邻、同一村/社区），所选地块移入该网格"],
    ["merge", "合并网格", "点击与当前网格相邻的另一网格，两格合并为一格"],
    ["reshape", "画线重划", "在地图上逐点单击画线，双击结束；线须横穿两个网格（Esc 取消）"],
    ["paint", "刷选地块", "按住鼠标拖过地块即加入选择（按住 Shift 拖过则取消选择），松开结束"]];
  /* Blocks light and dashed, grids' outlines strong: the two are told apart at a glance. */
  var BLOCK_STYLE = {color: "#7b8794", weight: 0.6, opacity: 0.9, dashArray: "3 3",
    fillColor: "#ffffff", fillOpacity: 0.02};
  var BLOCK_SELECTED = {color: "#0b4fa8", weight: 2.5, opacity: 1, dashArray: null, fillColor: "#1c7ed6",
    fillOpacity: 0.5};
  var USER_KEY = "gridmap.user";

  var P, gm, cfg, ecfg, map;
  var ed = {
    ready: false, version: 0, tool: "select", selected: {}, current: null, locked: {},
    busy: false, message: "", messageKind: "", history: [], blocksLoads: 0, blocks: 0,
    focus: [], line: [], lastEdit: null, reloads: 0
  };

  /* ---------------------------------------------------------------- coordinates */

  /* GCJ-02 and BD-09 as gis/obfuscation.py computes them (common.js): the page draws in the display
     system, edits are sent and answered in WGS84. */
  var common = window.gridmapCommon;

  function toDisplay(p) { return common.toDisplay(p[0], p[1], cfg.display); }

  function toWgs84(p) { return common.toWgs84(p[0], p[1], cfg.display); }

  function shiftCoords(c) {
    return typeof c[0] === "number" ? toDisplay(c) : c.map(shiftCoords);
  }

  function forDisplay(feature) {
    if (cfg.display === "wgs84" || !feature.geometry) { return feature; }
    var g = {type: feature.geometry.type, coordinates: shiftCoords(feature.geometry.coordinates)};
    return {type: "Feature", id: feature.id, properties: feature.properties, geometry: g};
  }

  /* ---------------------------------------------------------------- helpers */

  function el(tag, cls, html) {
    var e = L.DomUtil.create(tag, cls || "");
    if (html !== undefined) { e.innerHTML = html; }
    return e;
  }

  function user() {
    try { return window.localStorage.getItem(USER_KEY) || ""; } catch (e) { return ""; }
  }

  function headers() {
    var h = {"content-type": "application/json", "If-Match": "\"" + ed.version + "\""};
    var name = user().trim();
    /* HTTP headers are ASCII: a Chinese name goes percent-encoded as UTF-8 (docs/editing.md). */
    if (name) { h["X-Gridmap-User"] = encodeURIComponent(name); }
    return h;
  }

  function props(code) {
    var layer = gm.byCode[code];
    return layer ? layer.feature.properties : null;
  }

  function say(text, kind) {
    ed.message = text;
    ed.messageKind = kind || "info";
    var box = ed.ui.msg;
    box.className = "gm-ed-msg gm-ed-" + ed.messageKind;
    box.textContent = text;
    box.style.display = text ? "block" : "none";
  }

  function getJson(url) {
    return fetch(url, {cache: "no-store"}).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.detail || body.title || ("HTTP " + r.status)); }
        return {body: body, etag: r.headers.get("ETag")};
      });
    });
  }

  /* ---------------------------------------------------------------- grid styles */

  function restyle(code) {
    var layer = gm.byCode[code];
    if (!layer) { return; }
    var style = P.gridStyle(layer.feature);
    style.weight = 2; style.color = "#243b53"; style.opacity = 0.9;
    if (ed.locked[code]) {
      style.color = "#111827"; style.weight = 2.5; style.dashArray = "6 4"; style.opacity = 1;
    } else {
      style.dashArray = null;
    }
    if (code === ed.current) {
      style.color = "#0b4fa8"; style.weight = 3.5; style.opacity = 1;
    }
    layer.setStyle(style);
  }

  function restyleAll() {
    for (var code in gm.byCode) { restyle(code); }
  }

  function setCurrent(code) {
    var old = ed.current;
    ed.current = code && gm.byCode[code] ? code : null;
    if (old) { restyle(old); }
    if (ed.current) { restyle(ed.current); }
    renderPanel();
  }

  /* ---------------------------------------------------------------- blocks */

  function blockStyle(feature) {
    return ed.selected[feature.properties.block_no] ? BLOCK_SELECTED : BLOCK_STYLE;
  }

  function loadBlocks(force) {
    if (!map.hasLayer(ed.blockLayer)) { return Promise.resolve(); }
    var view = map.getBounds();
    if (!force && ed.blocksFetched && ed.blocksFetched.contains(view)) { return Promise.resolve(); }
    var box = view.pad(0.2);
    var url = ecfg.blocksUrl + "&bbox=" + [box.getWest(), box.getSouth(), box.getEast(),
      box.getNorth()].map(function (v) { return v.toFixed(6); }).join(",");
    if (ed.blocksController) { ed.blocksController.abort(); }
    var controller = ed.blocksController = new AbortController();
    return fetch(url, {signal: controller.signal, cache: "no-store"}).then(function (r) {
      return r.json().then(function (body) { return {ok: r.ok, status: r.status, body: body}; });
    }).then(function (res) {
      if (controller !== ed.blocksController) { return; }
      ed.blocksController = null;
      ed.blockLayer.clearLayers();
      ed.blockByNo = {};
      if (!res.ok) {
        ed.blocksFetched = null;
        ed.blocks = 0;
        ed.blocksNotice = res.status === 400 ? "地块过多，请放大地图后再选择地块" :
          ("地块加载失败：" + (res.body.detail || res.status));
        renderPanel();
        return;
      }
      ed.blocksNotice = "";
      ed.blockLayer.addData(res.body);
      ed.blocks = res.body.features.length;
      ed.blocksFetched = box;
      ed.blocksLoads++;
      /* Selected blocks keep their selection, with their grid as now stored. */
      Object.keys(ed.selected).forEach(function (no) {
        if (ed.blockByNo[no]) { ed.selected[no] = ed.blockByNo[no].feature.properties; }
      });
      renderPanel();
    }).catch(function (err) {
      if (err && err.name === "AbortError") { return; }
      gm.errors.push(String(err));
      say("地块加载失败：" + err, "error");
    });
  }

  function onBlock(feature, e) {
    var p = feature.properties;
    if (ed.tool === "reshape") { return; }          /* the map's click adds a point */
    L.DomEvent.stopPropagation(e);
    if (ed.tool === "paint") { return; }           /* painted on mousedown/mouseover */
    if (ed.tool === "select") {
      var shift = e.originalEvent && e.originalEvent.shiftKey;
      if (!shift) {
        var only = ed.selected[p.block_no] && Object.keys(ed.selected).length === 1;
        ed.selected = {};
        if (!only) { ed.selected[p.block_no] = p; }
      } else if (ed.selected[p.block_no]) {
        delete ed.selected[p.block_no];
      } else {
        ed.selected[p.block_no] = p;
      }
      ed.blockLayer.setStyle(blockStyle);
      ed.focus = [];
      setCurrent(p.grid_code);
      return;
    }
    onTarget(p.grid_code);
  }

  /* A click on a grid (where no block is drawn, e.g. zoomed out). */
  function onGrid(feature) {
    var code = feature.properties.code;
    if (ed.tool === "select" || ed.tool === "paint") {
      setCurrent(code);
      return false;                                 /* and its popup opens */
    }
    if (ed.tool === "reshape") { return true; }
    onTarget(code);
    return true;
  }

  function onTarget(code) {
    if (ed.tool === "move") {
      var blocks = Object.keys(ed.selected).map(Number);
      if (!blocks.length) { say("请先用“选择地块”选中要移动的地块", "warn"); return; }
      edit({op: "move", blocks: blocks, to: code});
    } else if (ed.tool === "merge") {
      if (!ed.current) { setCurrent(code); say("已选第一个网格，再点击与之相邻的网格", "info"); return; }
      if (code === ed.current) { say("请点击另一个相邻网格", "warn"); return; }
      edit({op: "merge", grids: [ed.current, code]});
    }
  }

  /* ---------------------------------------------------------------- drawing a line */

  function lineClick(e) {
    if (ed.tool !== "reshape" || ed.busy) { return; }
    var last = ed.line[ed.line.length - 1], ll = e.latlng;
    if (last && map.latLngToContainerPoint(last).distanceTo(map.latLngToContainerPoint(ll)) < 3) {
      return;                                       /* the double click's second click */
    }
    ed.line.push(ll);
    ed.lineLayer.setLatLngs(ed.line);
    renderPanel();
  }

  /* Even-odd ray casting over every ring (holes included) of a grid's geometry. */
  function inGrid(code, ll) {
    if (!gm.bounds[code].contains(ll)) { return false; }
    var g = gm.byCode[code].feature.geometry, x = ll.lng, y = ll.lat, hit = false;
    var polys = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
    polys.forEach(function (poly) {
      poly.forEach(function (ring) {
        for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
          var yi = ring[i][1], yj = ring[j][1];
          if ((yi > y) !== (yj > y) &&
              x < (ring[j][0] - ring[i][0]) * (y - yi) / (yj - yi) + ring[i][0]) { hit = !hit; }
        }
      });
    });
    return hit;
  }

  /* Distance in metres (locally flat) from a point to a grid: 0 inside. */
  function distanceTo(code, ll) {
    if (inGrid(code, ll)) { return 0; }
    var g = gm.byCode[code].feature.geometry, kx = Math.cos(ll.lat * Math.PI / 180) * 111320;
    var ky = 111320, best = Infinity, px = ll.lng * kx, py = ll.lat * ky;
    var polys = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
    polys.forEach(function (poly) {
      poly.forEach(function (ring) {
        for (var i = 0; i + 1 < ring.length; i++) {
          var ax = ring[i][0] * kx, ay = ring[i][1] * ky, bx = ring[i + 1][0] * kx;
          var by = ring[i + 1][1] * ky, dx = bx - ax, dy = by - ay, len = dx * dx + dy * dy;
          var t = len ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len)) : 0;
          var ex = ax + t * dx - px, ey = ay + t * dy - py;
          best = Math.min(best, ex * ex + ey * ey);
        }
      });
    });
    return Math.sqrt(best);
  }

  /* The two grids a drawn line reshapes the boundary of: the one holding most of it (the
     current grid when the line runs through it), and the grid of the same village nearest
     to the whole line (a new boundary is drawn inside one grid near the other, or across
     both; its ends stray into neighbours, as a line is drawn edge to edge). */
  function lineGrids(line) {
    var samples = [], share = {};
    for (var s = 0; s + 1 < line.length; s++) {
      for (var t = 0.025; t < 1; t += 0.05) {
        samples.push(L.latLng(line[s].lat + t * (line[s + 1].lat - line[s].lat),
          line[s].lng + t * (line[s + 1].lng - line[s].lng)));
      }
    }
    var box = L.latLngBounds(line).pad(0.1), code;
    var near = Object.keys(gm.byCode).filter(function (c) { return gm.bounds[c].intersects(box); });
    samples.forEach(function (ll) {
      for (var i = 0; i < near.length; i++) {
        if (inGrid(near[i], ll)) { share[near[i]] = (share[near[i]] || 0) + 1; break; }
      }
    });
    var first = ed.current && share[ed.current] ? ed.current :
      Object.keys(share).sort(function (a, b) { return share[b] - share[a]; })[0];
    if (!first) { return null; }
    var village = props(first).village_code, second = null, bestMean = Infinity;
    for (var i = 0; i < near.length; i++) {
      code = near[i];
      if (code === first || props(code).village_code !== village) { continue; }
      var mean = samples.reduce(function (sum, ll) { return sum + distanceTo(code, ll); }, 0) /
        samples.length;
      if (mean < bestMean) { bestMean = mean; second = code; }
    }
    return second ? [first, second] : null;
  }

  function lineDone(e) {
    if (ed.tool !== "reshape") { return; }
    if (e) { L.DomEvent.stop(e); }
    if (ed.line.length < 2) { say("线至少需要两个点", "warn"); return; }
    var line = ed.line.map(function (ll) { return toWgs84([ll.lng, ll.lat]); });
    var body = {op: "reshape", line: line}, grids = lineGrids(ed.line);
    if (grids) { body.grids = grids; }
    edit(body);
  }

  function clearLine() {
    ed.line = [];
    ed.lineLayer.setLatLngs([]);
  }

  /* ---------------------------------------------------------------- edits */

  function post(url, body) {
    if (ed.busy) { return Promise.resolve(null); }
    ed.busy = true;
    renderPanel();
    say("正在提交…", "info");
    return fetch(url, {method: "POST", headers: headers(), body: JSON.stringify(body || {})})
      .then(function (r) {
        return r.json().then(function (b) { return {status: r.status, ok: r.ok, body: b}; });
      }).then(function (res) {
        ed.busy = false;
        if (res.ok) { return applyAnswer(res.body); }
        if (res.status === 409 && res.body.current_version !== undefined) {
          return stale(res.body);
        }
        /* A refusal (422), a locked grid or nothing to undo (409): its reason, in Chinese
           with English as the API gives it. */
        say((res.status === 422 ? "无法执行：" : "") + (res.body.detail || res.body.title ||
          ("HTTP " + res.status)), "error");
        ed.lastRefusal = {status: res.status, detail: res.body.detail};
        renderPanel();
        return null;
      }).catch(function (err) {
        ed.busy = false;
        gm.errors.push(String(err));
        say("提交失败：" + err, "error");
        renderPanel();
      });
  }

  function edit(body) {
    return post(ecfg.editsUrl, body);
  }

  function step(which) {
    return post(which === "undo" ? ecfg.undoUrl : ecfg.redoUrl, {});
  }

  function applyAnswer(body) {
    ed.version = body.version;
    var features = body.grids.features.map(forDisplay);
    features.forEach(function (f) {
      if (f.properties.locked) { ed.locked[f.properties.code] = true; }
      else { delete ed.locked[f.properties.code]; }
    });
    (body.removed || []).forEach(function (code) { delete ed.locked[code]; });
    P.updateGrids(features, body.removed);
    var codes = features.map(function (f) { return f.properties.code; });
    if (body.op === "move") { ed.selected = {}; }
    if (ed.current && !gm.byCode[ed.current]) { ed.current = null; }
    if (body.op === "merge" || body.op === "split") { ed.current = codes[0] || null; }
    clearLine();
    restyleAll();
    ed.focus = codes;
    ed.lastEdit = {op: body.op, seq: body.seq, version: body.version, grids: codes,
      removed: body.removed};
    var warnings = features.map(function (f) { return f.properties.warning; })
      .filter(function (r) { return r; });
    say("已完成：" + body.summary + (warnings.length ? "。注意：" + warnings.join("；") : ""),
      warnings.length ? "warn" : "ok");
    renderPanel();
    return Promise.all([loadBlocks(true), loadHistory()]).then(function () { return body; });
  }

  /* Another planner edited the draft: the page's version is stale. Reload the current
     one (grids, locks, blocks, history); the user repeats the edit on it. */
  function stale(body) {
    say("方案已被他人修改（当前版本 " + body.current_version + "，本页为版本 " + ed.version +
      "），已重新加载最新版本，请重新操作。", "error");
    ed.stale = {pageVersion: ed.version, current: body.current_version};
    return reload().then(function () { return null; });
  }

  function reload() {
    ed.busy = true;
    renderPanel();
    return getJson(ecfg.planUrl).then(function (plan) {
      var version = plan.body.edit_version;
      return getJson(cfg.gridsUrl).then(function (grids) {
        P.replaceGrids(grids.body);
        return getJson(ecfg.lockedUrl);
      }).then(function (locked) {
        ed.locked = {};
        locked.body.locked.forEach(function (c) { ed.locked[c] = true; });
        ed.version = version;
        if (ed.current && !gm.byCode[ed.current]) { ed.current = null; }
        restyleAll();
        ed.reloads++;
        ed.busy = false;
        return Promise.all([loadBlocks(true), loadHistory()]);
      });
    }).catch(function (err) {
      ed.busy = false;
      gm.errors.push(String(err));
      say("重新加载失败：" + err.message, "error");
    }).then(function () { renderPanel(); });
  }

  /* ---------------------------------------------------------------- history */

  function loadHistory() {
    return getJson(ecfg.editsUrl).then(function (res) {
      ed.history = res.body;
      renderHistory();
      renderPanel();
    }).catch(function (err) {
      gm.errors.push(String(err));
      ed.ui.history.textContent = "修改记录加载失败：" + err.message;
    });
  }

  /* An edit's time in the server's zone (cfg.timezone, GRIDMAP_TIMEZONE), not the
     browser's: "05-01 10:59"; the panel's heading says which zone. */
  function when(at) {
    if (!at) { return ""; }
    var d = new Date(at);
    if (isNaN(d.getTime())) { return String(at); }
    var zone = (cfg.timezone && cfg.timezone.name) || undefined, parts = {};
    new Intl.DateTimeFormat("en-GB", {timeZone: zone, month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23"}).formatToParts(d)
      .forEach(function (p) { parts[p.type] = p.value; });
    return parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
  }

  function renderHistory() {
    var rows = ed.history.slice().reverse();
    ed.ui.history.innerHTML = rows.length ? rows.map(function (h) {
      var summary = String(h.summary || "").split("; ")[0] || OP_NAMES[h.op] || h.op;
      return "<li class=\"gm-h gm-h-" + P.esc(h.state) + "\" data-seq=\"" + P.esc(h.seq) + "\">" +
        "<span class=\"gm-h-seq\">#" + P.esc(h.seq) + "</span> <b>" + P.esc(OP_NAMES[h.op] || h.op) +
        "</b>" + P.esc(STATE_NAMES[h.state] || "") + " <span class=\"gm-h-who\">" +
        P.esc(h.author || "（未署名）") + " · " + P.esc(when(h.at)) + "</span><div>" +
        P.esc(summary) + "</div></li>";
    }).join("") : "<li class=\"gm-h-none\">尚无修改</li>";
  }

  function canUndo() {
    return ed.history.some(function (h) {
      return h.op !== "undo" && h.op !== "redo" && h.state === "applied";
    });
  }

  function canRedo() {
    return ed.history.some(function (h) { return h.state === "undone"; });
  }

  /* ---------------------------------------------------------------- panel */

  function bandText(p) {
    var b = P.bandOf(p);
    return "<span class=\"band band-" + b + "\">" + P.esc({below: "低于 " + cfg.band[0],
      within: cfg.band[0] + "–" + cfg.band[1], above: "超过 " + cfg.band[1],
      dedicated: "专属"}[b]) + "</span>";
  }

  /* A grid's flags in Chinese under its name (跨越河流/山脊/铁路 …), the reason as a tooltip,
     and the river, ridge or railway inside it. */
  function flagsLine(p) {
    var f = P.flagText(p), inside = Number(p.barrier_inside_m || 0);
    if (!f.names && !(inside > 0)) { return ""; }
    return "<div class=\"gm-ed-flags\" title=\"" + P.esc(f.reason) + "\">" + P.esc(f.names) +
      (inside > 0 ? (f.names ? " · " : "") + "内含河流/山脊/铁路 " + P.esc(inside.toFixed(0)) +
        " 米" : "") + "</div>";
  }

  function gridRow(code) {
    var p = props(code);
    if (!p) { return ""; }
    return "<tr data-code=\"" + P.esc(code) + "\"" + (code === ed.current ? " class=\"gm-cur\"" : "") +
      "><td class=\"code\" title=\"" + P.esc(code) + "\">" + P.esc(code.slice(-6)) + "</td><td>" +
      P.esc(p.name || "") + (ed.locked[code] ? " <span class=\"gm-locked\">（已锁定）</span>" : "") +
      flagsLine(p) + "</td><td class=\"gm-hh\">" +
      P.esc(P.num(p.households)) + "</td><td>" + bandText(p) + "</td></tr>";
  }

  function focusCodes() {
    var codes = [];
    function add(c) { if (c && codes.indexOf(c) < 0 && gm.byCode[c]) { codes.push(c); } }
    add(ed.current);
    Object.keys(ed.selected).forEach(function (no) { add(ed.selected[no].grid_code); });
    ed.focus.forEach(add);
    return codes;
  }

  function renderPanel() {
    if (!ed.ui) { return; }
    var ui = ed.ui, nos = Object.keys(ed.selected);
    var hh = nos.reduce(function (s, no) { return s + (ed.selected[no].households || 0); }, 0);
    ui.version.textContent = ed.version;
    ui.tools.forEach(function (b) {
      b.classList.toggle("gm-on", b.getAttribute("data-tool") === ed.tool);
      b.disabled = ed.busy;
    });
    var hint = TOOLS.filter(function (t) { return t[0] === ed.tool; })[0][2];
    if (ed.tool === "reshape" && ed.line.length) { hint += "（已画 " + ed.line.length + " 点）"; }
    ui.hint.textContent = hint;
    ui.undo.disabled = ed.busy || !canUndo();
    ui.redo.disabled = ed.busy || !canRedo();
    ui.sel.innerHTML = "<div class=\"gm-ed-count\">已选地块 <b id=\"gm-sel-n\">" + P.esc(nos.length) +
      "</b> 块，共 <b id=\"gm-sel-hh\">" + P.esc(P.num(hh)) + "</b> 户</div>" +
      (ed.blocksNotice ? "<div class=\"gm-ed-warn-line\">" + P.esc(ed.blocksNotice) + "</div>" : "");
    var codes = focusCodes();
    ui.grids.innerHTML = codes.length ? "<table class=\"gm-ed-grids\"><thead><tr><th>编码</th>" +
      "<th>名称</th><th>户数</th><th>区间 " + P.esc(cfg.band[0] + "–" + cfg.band[1]) + "</th></tr></thead>" +
      "<tbody>" + codes.map(gridRow).join("") + "</tbody></table>" :
      "<div class=\"gm-ed-empty\">点击地块或网格查看户数</div>";
    var cur = ed.current ? props(ed.current) : null;
    ui.curName.textContent = cur ? ed.current + " " + (cur.name || "") : "（未选网格）";
    ui.lock.textContent = cur && ed.locked[ed.current] ? "解锁" : "锁定";
    [ui.split, ui.lock, ui.renameBtn, ui.rebalance, ui.rebalanceVillage].forEach(function (b) {
      b.disabled = ed.busy || !cur;
    });
    if (cur && document.activeElement !== ui.rename && ui.rename.getAttribute("data-for") !== ed.current) {
      ui.rename.value = cur.name || "";
      ui.rename.setAttribute("data-for", ed.current);
    }
  }

  function button(parent, cls, text, onClick) {
    var b = el("button", cls, text);
    b.type = "button";
    b.addEventListener("click", onClick);
    parent.appendChild(b);
    return b;
  }

  /* The paint tool: a press on a block starts painting; every block the pointer passes over
     while the button is held joins the selection (with Shift: leaves it). */
  function paint(feature, e, start) {
    if (ed.tool !== "paint") { return; }
    if (start) {
      L.DomEvent.stopPropagation(e);
      ed.painting = true;
      ed.unpaint = !!(e.originalEvent && e.originalEvent.shiftKey);
    }
    if (!ed.painting) { return; }
    var p = feature.properties;
    if (ed.unpaint) { delete ed.selected[p.block_no]; } else { ed.selected[p.block_no] = p; }
    ed.blockLayer.setStyle(blockStyle);
    ed.focus = [];
    if (start) { setCurrent(p.grid_code); } else { renderPanel(); }
  }
  document.addEventListener("mouseup", function () { ed.painting = false; });

  function setTool(tool) {
    ed.tool = tool;
    clearLine();
    if (tool === "reshape") { map.doubleClickZoom.disable(); map.closePopup(); } else {
      map.doubleClickZoom.enable();
    }
    map.getContainer().classList.toggle("gm-drawing", tool === "reshape");
    /* Painting drags over blocks, so the map itself does not pan meanwhile. */
    if (tool === "paint") { map.dragging.disable(); } else { map.dragging.enable(); }
    ed.painting = false;
    say("", "");
    renderPanel();
  }

  function editorControl() {
    var c = L.control({position: "topright"});
    c.onAdd = function () {
      var box = el("div", "gm-panel gm-ed"), ui = ed.ui = {};
      box.innerHTML = "<h2>编辑草稿 <span class=\"gm-ed-ver\">版本 <b></b></span></h2>";
      ui.version = box.querySelector(".gm-ed-ver b");
      var who = el("label", "gm-ed-user", "编辑人 ");
      ui.user = el("input");
      ui.user.placeholder = "您的姓名（记入修改记录）";
      ui.user.maxLength = 30;
      ui.user.value = user();
      ui.user.addEventListener("change", function () {
        try { window.localStorage.setItem(USER_KEY, ui.user.value.trim()); } catch (e) { /* private mode */ }
      });
      who.appendChild(ui.user);
      box.appendChild(who);
      var tools = el("div", "gm-ed-tools");
      ui.tools = TOOLS.map(function (t) {
        var b = button(tools, "gm-tool", t[1], function () { setTool(t[0]); });
        b.setAttribute("data-tool", t[0]);
        return b;
      });
      box.appendChild(tools);
      var steps = el("div", "gm-ed-steps");
      ui.undo = button(steps, "gm-undo", "↶ 撤销", function () { step("undo"); });
      ui.redo = button(steps, "gm-redo", "↷ 重做", function () { step("redo"); });
      ui.undo.title = "撤销 (Ctrl+Z)";
      ui.redo.title = "重做 (Ctrl+Y)";
      box.appendChild(steps);
      ui.hint = el("div", "gm-ed-hint");
      box.appendChild(ui.hint);
      ui.msg = el("div", "gm-ed-msg");
      ui.msg.setAttribute("role", "alert");
      box.appendChild(ui.msg);
      var cur = el("div", "gm-ed-cur");
      cur.appendChild(el("div", "gm-ed-cur-title", "当前网格："));
      ui.curName = el("span", "gm-ed-cur-name");
      cur.firstChild.appendChild(ui.curName);
      var row1 = el("div", "gm-ed-row");
      ui.k = el("input", "gm-k");
      ui.k.type = "number"; ui.k.min = 2; ui.k.max = 50; ui.k.placeholder = "自动";
      ui.k.title = "拆分份数（2–50，空为自动）";
      row1.appendChild(document.createTextNode("拆分为 "));
      row1.appendChild(ui.k);
      row1.appendChild(document.createTextNode(" 份 "));
      ui.split = button(row1, "gm-split", "拆分", function () {
        var body = {op: "split", grid: ed.current}, k = parseInt(ui.k.value, 10);
        if (k) { body.k = k; }
        edit(body);
      });
      ui.lock = button(row1, "gm-lock", "锁定", function () {
        edit({op: ed.locked[ed.current] ? "unlock" : "lock", grids: [ed.current]});
      });
      cur.appendChild(row1);
      /* Rebalance: the engine's village stage again, on the current grid and the grids of
         the selected blocks, or on the whole village/community (locked grids stay). */
      var rowR = el("div", "gm-ed-row");
      ui.rebalance = button(rowR, "gm-rebalance", "重新平衡所选网格", function () {
        var grids = {};
        grids[ed.current] = true;
        Object.keys(ed.selected).forEach(function (no) { grids[ed.selected[no].grid_code] = true; });
        edit({op: "rebalance", grids: Object.keys(grids).sort()});
      });
      ui.rebalance.title = "当前网格与所选地块所在网格一起重新划分（锁定的网格不动）";
      ui.rebalanceVillage = button(rowR, "gm-rebalance-village", "重新平衡本社区", function () {
        edit({op: "rebalance", village: String(ed.current).slice(0, 12)});
      });
      ui.rebalanceVillage.title = "当前网格所在村/社区的全部未锁定网格重新划分";
      cur.appendChild(rowR);
      var row2 = el("div", "gm-ed-row");
      ui.rename = el("input", "gm-name");
      ui.rename.placeholder = "网格名称";
      ui.rename.maxLength = 200;
      row2.appendChild(ui.rename);
      ui.renameBtn = button(row2, "gm-rename", "重命名", function () {
        var name = ui.rename.value.trim();
        if (!name) { say("名称不能为空", "warn"); return; }
        edit({op: "rename", grid: ed.current, name: name});
      });
      cur.appendChild(row2);
      box.appendChild(cur);
      ui.sel = el("div", "gm-ed-sel");
      box.appendChild(ui.sel);
      ui.grids = el("div", "gm-ed-gridlist");
      ui.grids.addEventListener("click", function (ev) {
        var row = ev.target.closest("tr[data-code]");
        if (row) { map.fitBounds(gm.bounds[row.getAttribute("data-code")], {maxZoom: 18}); }
      });
      box.appendChild(ui.grids);
      var links = el("div", "gm-ed-links");
      links.innerHTML = "<a href=\"" + P.esc(ecfg.mapUrl) + "\">只读地图</a>" +
        (ecfg.compareUrl ? " · <a class=\"gm-compare-link\" href=\"" + P.esc(ecfg.compareUrl) +
          "\">与原方案对比</a>" : "");
      box.appendChild(links);
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    };
    return c;
  }

  function historyControl() {
    var c = L.control({position: "bottomleft"});
    c.onAdd = function () {
      var box = el("div", "gm-panel gm-history", "<h2>修改记录</h2>");
      if (cfg.timezone) {
        var zone = el("div", "gm-h-zone");
        zone.textContent = "时间为" + cfg.timezone.label;
        box.appendChild(zone);
      }
      ed.ui.history = el("ol", "gm-h-list");
      box.appendChild(ed.ui.history);
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    };
    return c;
  }

  function onKey(ev) {
    var tag = (ev.target && ev.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA") { return; }
    var key = (ev.key || "").toLowerCase();
    if ((ev.ctrlKey || ev.metaKey) && key === "z" && !ev.shiftKey) {
      ev.preventDefault(); step("undo");
    } else if ((ev.ctrlKey || ev.metaKey) && (key === "y" || (key === "z" && ev.shiftKey))) {
      ev.preventDefault(); step("redo");
    } else if (key === "escape") {
      clearLine();
      ed.selected = {};
      ed.blockLayer.setStyle(blockStyle);
      renderPanel();
    }
  }

  /* ---------------------------------------------------------------- start */

  function start(leafletMap, config, planner) {
    map = leafletMap; cfg = config; ecfg = config.editor; gm = planner; P = window.GridmapPlanner;
    gm.editor = ed;
    ed.version = ecfg.version;
    ed.api = {edit: edit, undo: function () { return step("undo"); },
      redo: function () { return step("redo"); }, reload: reload, setTool: setTool,
      toWgs84: toWgs84, toDisplay: toDisplay};
    ed.blockByNo = {};
    ed.blockLayer = L.geoJSON(null, {
      pane: "gm-overlays", renderer: gm.svg, style: blockStyle,
      onEachFeature: function (feature, layer) {
        ed.blockByNo[feature.properties.block_no] = layer;
        layer.on("click", function (e) { onBlock(feature, e); });
        layer.on("mousedown", function (e) { paint(feature, e, true); });
        layer.on("mouseover", function (e) { paint(feature, e, false); });
      }
    }).addTo(map);
    ed.lineLayer = L.polyline([], {pane: "gm-overlays", renderer: gm.svg, color: "#c2255c",
      weight: 3, dashArray: "8 6", interactive: false}).addTo(map);
    gm.gridClick = onGrid;
    editorControl().addTo(map);
    historyControl().addTo(map);
    map.on("click", lineClick);
    /* While a line is drawn no popup opens: it would lie over the next points' clicks. */
    map.on("popupopen", function (e) {
      if (ed.tool === "reshape") { map.closePopup(e.popup); }
    });
    map.on("dblclick", lineDone);
    map.on("moveend", function () { loadBlocks(false); });
    document.addEventListener("keydown", onKey);
    renderPanel();
    gm.onDrawn = (gm.onDrawn || []).concat([function () {
      Promise.all([getJson(ecfg.lockedUrl).then(function (res) {
        res.body.locked.forEach(function (c) { ed.locked[c] = true; });
        restyleAll();
      }), loadHistory(), loadBlocks(true)]).then(function () {
        ed.ready = true;
        renderPanel();
      }).catch(function (err) {
        gm.errors.push(String(err));
        say("编辑器加载失败：" + err.message, "error");
      });
    }]);
  }

  window.GridmapEditor = {start: start};
})();
