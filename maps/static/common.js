/* What the workspace pages (workspace.js, admin.js, desk.js, m.js) and the editor share: the config block,
   one fetch wrapper that turns problem details (RFC 9457) into Chinese text with the file,
   layer and row, times in the server's zone, and DOM helpers that only ever set text.
   Loaded after escape.js. */
(function () {
  "use strict";
  var esc = window.gridmapEscape;
  var C = {esc: esc};

  function config() {
    var block = document.getElementById("gm-config");
    return block ? JSON.parse(block.textContent) : {};
  }

  /* A problem as one line: title, where (file / layer / row) and what to fix. */
  function problemText(status, body) {
    if (!body || typeof body !== "object") { return "请求失败（HTTP " + status + "）"; }
    var where = [];
    if (body.file) { where.push("文件 " + body.file); }
    if (body.layer) { where.push("图层 " + body.layer); }
    if (body.row !== undefined && body.row !== null) { where.push("第 " + body.row + " 行"); }
    var detail = body.detail || "";
    if (Array.isArray(body.errors) && body.errors.length) {
      detail = body.errors.map(function (e) { return e.where + "：" + e.message; }).join("；");
    }
    return (body.title ? body.title + "：" : "") +
      (where.length ? "〔" + where.join("，") + "〕" : "") + detail;
  }

  /* fetch with the sign-in cookie (same origin), JSON in and out. Resolves to
     {ok, status, body, text}; rejects only when the server cannot be reached. */
  function api(method, url, body, extra) {
    var headers = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"};
    var options = {method: method, credentials: "same-origin", cache: "no-store",
                   headers: headers};
    Object.keys((extra && extra.headers) || {}).forEach(function (k) {
      headers[k] = extra.headers[k];
    });
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined && body !== null) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    if (extra && extra.signal) { options.signal = extra.signal; }
    return fetch(url, options).then(function (r) {
      return r.text().then(function (text) {
        var parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
        return {ok: r.ok, status: r.status, body: parsed, text: parsed ? "" : text,
                error: r.ok ? "" : problemText(r.status, parsed)};
      });
    });
  }

  var formats = {};
  /* "2026-05-01 10:59" in the zone (an IANA name) the server named. */
  function fmtTime(iso, zone) {
    if (!iso) { return ""; }
    var key = zone || "";
    if (!formats[key]) {
      formats[key] = new Intl.DateTimeFormat("zh-CN", {
        timeZone: zone || undefined, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hour12: false});
    }
    var parts = {};
    formats[key].formatToParts(new Date(iso)).forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " +
      (parts.hour === "24" ? "00" : parts.hour) + ":" + parts.minute;
  }

  /* A wall time (year, month 1-12, day, hour, minute) in the zone (an IANA name) the
     server named, as UTC ISO text: the zone's offset read at that moment. */
  function zoneToUtc(year, month, day, hour, minute, zone) {
    var guess = Date.UTC(year, month - 1, day, hour, minute);
    var parts = {};
    new Intl.DateTimeFormat("en-US", {timeZone: zone, hour12: false, year: "numeric",
      month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"})
      .formatToParts(new Date(guess)).forEach(function (p) { parts[p.type] = p.value; });
    var shown = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute);
    return new Date(guess - (shown - guess)).toISOString();
  }

  /* An element with a class and text (never markup). */
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  /* A message in a live region (role=status/alert in the markup). */
  function say(node, text, kind) {
    node.textContent = text || "";
    node.className = node.className.replace(/\bmsg-\w+\b/g, "").trim() +
      (kind ? " msg-" + kind : "");
  }

  /* A random key (idempotency keys of reports made offline). */
  function newKey(prefix) {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return (prefix || "k") + "-" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  /* Leaflet on demand (pages without a map at first load none of it). */
  var leaflet = null;
  function loadLeaflet() {
    if (window.L) { return Promise.resolve(window.L); }
    if (!leaflet) {
      leaflet = new Promise(function (resolve, reject) {
        var css = document.createElement("link");
        css.rel = "stylesheet";
        css.href = "/static/vendor/leaflet/leaflet.css";
        document.head.appendChild(css);
        var s = document.createElement("script");
        s.src = "/static/vendor/leaflet/leaflet.js";
        s.onload = function () { resolve(window.L); };
        s.onerror = function () { reject(new Error("leaflet")); };
        document.head.appendChild(s);
      });
    }
    return leaflet;
  }

  /* WGS84 -> the basemap's system (GCJ-02, BD-09), as editor.js does: event points and the
     phone's position are stored in WGS84, the map may be drawn in another system. */
  var KA = 6378245.0, KEE = 0.00669342162296594323, XPI = Math.PI * 3000.0 / 180.0;

  function outOfChina(lon, lat) { return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271; }

  function gcjOffset(lon, lat) {
    var x = lon - 105.0, y = lat - 35.0, pi = Math.PI, sx = Math.sqrt(Math.abs(x));
    var common = (20 * Math.sin(6 * pi * x) + 20 * Math.sin(2 * pi * x)) * 2 / 3;
    var dLat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx + common +
      (20 * Math.sin(pi * y) + 40 * Math.sin(pi * y / 3)) * 2 / 3 +
      (160 * Math.sin(pi * y / 12) + 320 * Math.sin(pi * y / 30)) * 2 / 3;
    var dLon = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx + common +
      (20 * Math.sin(pi * x) + 40 * Math.sin(pi * x / 3)) * 2 / 3 +
      (150 * Math.sin(pi * x / 12) + 300 * Math.sin(pi * x / 30)) * 2 / 3;
    var rad = lat * pi / 180, magic = 1 - KEE * Math.sin(rad) * Math.sin(rad), sm = Math.sqrt(magic);
    return [dLon * 180 / (KA / sm * Math.cos(rad) * pi),
      dLat * 180 / ((KA * (1 - KEE)) / (magic * sm) * pi)];
  }

  function gcjForward(p) {
    if (outOfChina(p[0], p[1])) { return [p[0], p[1]]; }
    var d = gcjOffset(p[0], p[1]);
    return [p[0] + d[0], p[1] + d[1]];
  }

  function bdForward(p) {
    var z = Math.sqrt(p[0] * p[0] + p[1] * p[1]) + 0.00002 * Math.sin(p[1] * XPI);
    var t = Math.atan2(p[1], p[0]) + 0.000003 * Math.cos(p[0] * XPI);
    return [z * Math.cos(t) + 0.0065, z * Math.sin(t) + 0.006];
  }

  function invert(forward, target) {
    var p = [target[0], target[1]];
    for (var i = 0; i < 30; i++) {
      var f = forward(p), r0 = f[0] - target[0], r1 = f[1] - target[1];
      p = [p[0] - r0, p[1] - r1];
      if (Math.abs(r0) < 1e-9 && Math.abs(r1) < 1e-9) { break; }
    }
    return p;
  }


  function toDisplay(lon, lat, display) {
    if (display === "gcj02") { return gcjForward([lon, lat]); }
    if (display === "bd09") { return bdForward(gcjForward([lon, lat])); }
    return [lon, lat];
  }

  function toWgs84(lon, lat, display) {
    if (display === "gcj02") { return invert(gcjForward, [lon, lat]); }
    if (display === "bd09") { return invert(function (q) { return bdForward(gcjForward(q)); }, [lon, lat]); }
    return [lon, lat];
  }

  /* A Leaflet map in ``node`` with the configured basemap (none: a plain background). */
  function baseMap(L, node, mapCfg, options) {
    var map = L.map(node, options || {});
    if (mapCfg && mapCfg.basemap) {
      L.tileLayer(mapCfg.basemap, {maxZoom: 19, subdomains: mapCfg.subdomains || "abc",
        attribution: C.esc(mapCfg.attribution || "")}).addTo(map);
      if (mapCfg.labels) {   /* 天地图's annotation layer over its map */
        L.tileLayer(mapCfg.labels, {maxZoom: 19, subdomains: mapCfg.subdomains || "abc"})
          .addTo(map);
      }
    }
    return map;
  }

  var LIGHT_NAMES = {green: "绿灯", yellow: "黄灯", red: "红灯"};
  var STATUS_NAMES = {reported: "已上报", accepted: "已受理", dispatched: "已派遣",
    handling: "处置中", resolved: "已办结", verified: "已核查", closed: "已结案"};
  var LEVEL_NAMES = {grid: "网格", station: "工作站", town: "镇街", district: "区县",
    department: "职能部门"};

  window.gridmapCommon = {config: config, api: api, problemText: problemText,
    fmtTime: fmtTime, zoneToUtc: zoneToUtc, el: el, clear: clear, say: say, esc: esc, newKey: newKey,
    loadLeaflet: loadLeaflet, toDisplay: toDisplay, toWgs84: toWgs84, baseMap: baseMap,
    LIGHT_NAMES: LIGHT_NAMES, STATUS_NAMES: STATUS_NAMES,
    LEVEL_NAMES: LEVEL_NAMES};
})();
