/* What the workspace pages (workspace.js, admin.js, desk.js, m.js) share: the config block,
   one fetch wrapper that turns problem details (RFC 9457) into Chinese text with the file,
   layer and row, times in the server's zone, and DOM helpers that only ever set text.
   Loaded after escape.js. */
(function () {
  "use strict";
  var esc = window.gridmapEscape;

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

  var LIGHT_NAMES = {green: "绿灯", yellow: "黄灯", red: "红灯"};
  var STATUS_NAMES = {reported: "已上报", accepted: "已受理", dispatched: "已派遣",
    handling: "处置中", resolved: "已办结", verified: "已核查", closed: "已结案"};
  var LEVEL_NAMES = {grid: "网格", station: "工作站", town: "镇街", district: "区县",
    department: "职能部门"};

  window.gridmapCommon = {config: config, api: api, problemText: problemText,
    fmtTime: fmtTime, el: el, clear: clear, say: say, esc: esc, newKey: newKey,
    loadLeaflet: loadLeaflet, LIGHT_NAMES: LIGHT_NAMES, STATUS_NAMES: STATUS_NAMES,
    LEVEL_NAMES: LEVEL_NAMES};
})();
