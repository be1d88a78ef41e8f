/* The command-centre big screen (一屏观全局): the published plan's grids coloured by their
   open events' worst light, the open events clustered, headline counts and child areas for
   the current area, drill-down by clicking, and the figures polled every few seconds
   (If-None-Match: nothing is sent while nothing changed). No page reload, no CDN. Values
   from the server reach the page through esc() or textContent only; times are shown in the
   server's zone (cfg.timezone, GRIDMAP_TIMEZONE). */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("gm-config").textContent);
  var esc = window.gridmapEscape;   // escape.js
  var zone = cfg.timezone || { name: "Asia/Shanghai", label: "北京时间（UTC+8）" };
  var COLORS = { red: "#ff4d4f", yellow: "#ffd21f", green: "#3ddc84" };
  var NEUTRAL = "#2a4a78";
  var LIGHT_NAMES = { red: "红灯", yellow: "黄灯", green: "绿灯" };
  var RANK = { green: 1, yellow: 2, red: 3 };
  var CATEGORIES = { safety_hazard: "安全隐患", dispute: "矛盾纠纷", sanitation: "环境卫生",
                     municipal: "市政设施", livelihood: "民生服务", other: "其他" };
  var LEVELS = { territory: "辖区", district: "区", town: "镇/街道", village: "村/社区",
                 grid: "网格" };
  var CHILDREN = { district: "各区", town: "各镇/街道", village: "各村/社区", grid: "各网格" };
  // Sizes in CSS pixels scale with the screen's height (a 4K wall draws twice as large).
  var unit = Math.max(1, window.innerHeight / 1080);

  var area = cfg.area || null;
  var data = null;
  var etag = null;
  var seq = 0;
  var busy = false;
  var polls = 0;
  var markerKey = "";
  var gridLayers = {};

  var map = L.map("map", { zoomControl: false, attributionControl: !!cfg.basemap_url,
                           preferCanvas: true, zoomSnap: 0.25, maxZoom: 19 });
  if (cfg.basemap_url) {
    L.tileLayer(cfg.basemap_url, { attribution: esc(cfg.basemap_attribution || ""),
                                   maxZoom: 19,
                                   subdomains: cfg.basemap_subdomains || "abc" }).addTo(map);
    if (cfg.basemap_labels_url) {   /* 天地图's annotation layer over its map */
      L.tileLayer(cfg.basemap_labels_url, { maxZoom: 19,
                                            subdomains: cfg.basemap_subdomains || "abc" })
        .addTo(map);
    }
  }
  map.setView([23.2, 113.3], 11);

  function inArea(props) {
    if (!data || !data.area.code || data.area.level === "territory") { return true; }
    var code = data.area.code;
    if (data.area.level === "grid") { return props.code === code; }
    if (data.area.level === "village") { return props.village_code === code; }
    return String(props.village_code || "").indexOf(code) === 0;
  }

  function gridStyle(feature) {
    var p = feature.properties;
    var lit = data && data.grids[p.code];
    var inside = inArea(p);
    var focused = data && data.area.level === "grid" && data.area.code === p.code;
    return {
      color: focused ? "#ffffff" : inside ? "#5d93cf" : "#1a3152",
      weight: focused ? 3 * unit : unit,
      fillColor: lit ? COLORS[lit.light] : NEUTRAL,
      fillOpacity: inside ? (lit ? 0.6 : 0.35) : 0.07,
      opacity: inside ? 0.9 : 0.4
    };
  }

  var grids = L.geoJSON(null, {
    style: gridStyle,
    onEachFeature: function (feature, layer) {
      gridLayers[feature.properties.code] = layer;
      layer.on("click", function () { go(feature.properties.code); });
    }
  }).addTo(map);

  function clusterIcon(cluster) {
    var worst = "green";
    var children = cluster.getAllChildMarkers();
    for (var i = 0; i < children.length; i++) {
      var light = children[i].options.light;
      if (RANK[light] > RANK[worst]) { worst = light; if (worst === "red") { break; } }
    }
    var n = cluster.getChildCount();
    var size = Math.round((n < 10 ? 34 : n < 100 ? 42 : n < 1000 ? 50 : 58) * unit);
    return L.divIcon({ html: "<span>" + esc(n) + "</span>", iconSize: [size, size],
                       className: "ev-cluster ev-cluster-" + worst });
  }

  var markers = L.markerClusterGroup({ chunkedLoading: true, showCoverageOnHover: false,
                                       maxClusterRadius: 60 * unit,
                                       iconCreateFunction: clusterIcon }).addTo(map);
  var dot = Math.round(16 * unit);

  function showMarkers(points) {
    var rows = points.rows;
    var key = rows.map(function (r) { return r[0] + r[3]; }).join(",");
    if (key === markerKey) { return; }
    markerKey = key;
    var made = rows.map(function (r) {
      var m = L.marker([r[2], r[1]], {
        light: r[3], keyboard: false,
        icon: L.divIcon({ className: "ev ev-" + r[3], iconSize: [dot, dot] })
      });
      m.bindPopup(function () {
        return "事件 #" + esc(r[0]) + "<br>" + esc(CATEGORIES[r[4]] || r[4]) + " · " +
          esc(LIGHT_NAMES[r[3]] || r[3]) + "<br>网格 " + esc(r[5] || "—");
      });
      return m;
    });
    markers.clearLayers();
    markers.addLayers(made);
  }

  function fmt(n) { return n === null || n === undefined ? "—" : n.toLocaleString("zh-CN"); }
  function rate(r) { return r === null || r === undefined ? "—" : (r * 100).toFixed(1) + "%"; }
  function text(id, value) { document.getElementById(id).textContent = value; }


  function showCrumbs(path) {
    var nav = document.getElementById("crumbs");
    nav.innerHTML = "";
    path.forEach(function (a, i) {
      if (i > 0) {
        var sep = document.createElement("span");
        sep.className = "sep";
        sep.textContent = "›";
        nav.appendChild(sep);
      }
      var el = document.createElement(i === path.length - 1 ? "span" : "a");
      el.textContent = a.name;
      el.title = a.code || "";
      if (i === path.length - 1) {
        el.className = "here";
      } else {
        el.dataset.code = a.code || "";
        el.addEventListener("click", function () { go(a.code); });
      }
      nav.appendChild(el);
    });
  }

  function cell(value, cls) {
    return "<td class=\"" + (value ? cls : "zero") + "\">" + esc(fmt(value)) + "</td>";
  }

  // A wall has no scrollbars: keep the rows that fit, say how many more there are.
  function fit(table, more, what) {
    var box = table.parentNode;
    var body = table.tBodies[0];
    var hidden = 0;
    while (body.rows.length > 0 && box.scrollHeight > box.clientHeight + 1) {
      body.deleteRow(body.rows.length - 1);
      hidden += 1;
    }
    more.textContent = hidden ? "另有 " + fmt(hidden) + " " + what + "未列出" : "";
  }

  function showChildren(d) {
    var table = document.getElementById("children");
    var body = table.tBodies[0];
    body.innerHTML = "";
    document.querySelector(".side").dataset.level = d.area.level;
    if (!d.children_level) { return; }
    text("children-title", CHILDREN[d.children_level] || "下级区域");
    table.tHead.innerHTML = "<tr><th>名称</th><th>未办结</th><th>红灯</th><th>黄灯</th>" +
      "<th>绿灯</th><th>按期率</th></tr>";
    var sorted = d.children.slice().sort(function (a, b) {
      return (b.red - a.red) || (b.yellow - a.yellow) || (b.open - a.open) ||
        String(a.code).localeCompare(String(b.code));
    });
    sorted.forEach(function (c) {
      var tr = document.createElement("tr");
      tr.className = "l-" + (c.light || "none");
      tr.dataset.code = c.code || "";
      tr.innerHTML = "<td title=\"" + esc(c.code || "") + "\">" + esc(c.name) + "</td>" +
        cell(c.open, "") + cell(c.red, "c-red") + cell(c.yellow, "c-yellow") +
        cell(c.green, "c-green") + "<td>" + esc(rate(c.on_time_rate)) + "</td>";
      if (c.code) { tr.addEventListener("click", function () { go(c.code); }); }
      body.appendChild(tr);
    });
    fit(table, document.getElementById("more"), "项（按红灯、黄灯、未办结排序）");
  }

  // 多网融合: the department unit an event also falls to (公安 第3警务区), when there is one.
  function unitOf(d, id) {
    var u = (d.department_units || {})[id];
    if (!u || !u.unit_code) { return ""; }
    return "<div class=\"dept-unit\">" + esc(u.department) + " " +
      esc(u.unit_name || u.unit_code) + "</div>";
  }

  function showUrgent(d) {
    var table = document.getElementById("urgent");
    var body = table.tBodies[0];
    body.innerHTML = "";
    d.points.rows.slice(0, 60).forEach(function (r) {
      var tr = document.createElement("tr");
      tr.className = "l-" + r[3];
      tr.dataset.id = r[0];
      tr.innerHTML = "<td><a class=\"to-desk\" href=\"/desk?event=" + esc(r[0]) +
        "\" title=\"在事件处置台打开\">#" + esc(r[0]) + "</a></td><td>" + esc(CATEGORIES[r[4]] || r[4]) +
        "</td><td title=\"" + esc(r[5] || "") + "\">" + esc(r[5] || "—") + unitOf(d, r[0]) +
        "</td><td class=\"c-" + esc(r[3]) + "\">" + esc(LIGHT_NAMES[r[3]] || r[3]) + "</td>";
      tr.addEventListener("click", function () { map.setView([r[2], r[1]], 18); });
      body.appendChild(tr);
    });
    var more = document.getElementById("urgent-more");
    fit(table, more, "件");
    var rest = d.points.total_open - body.rows.length;
    more.textContent = !d.points.total_open ? "暂无未办结事件"
      : rest > 0 ? "另有 " + fmt(rest) + " 件未列出" : "";
  }

  function render(d, fit) {
    data = d;
    var c = d.counts;
    text("n-open", fmt(c.open));
    text("n-red", fmt(c.red));
    text("n-rate", rate(c.on_time_rate));
    text("n-today", fmt(c.today));
    text("n-yellow", fmt(c.yellow));
    text("n-green", fmt(c.green));
    text("n-resolved", fmt(c.resolved));
    text("area-level", LEVELS[d.area.level] || "");
    text("area-name", d.area.name);
    document.title = d.area.name + " · 网格化服务管理指挥中心";
    showCrumbs(d.path);
    showChildren(d);
    showUrgent(d);
    grids.setStyle(gridStyle);
    showMarkers(d.points);
    var note = document.getElementById("truncated");
    note.hidden = !d.points.truncated;
    if (d.points.truncated) {
      note.textContent = "地图显示最紧急的 " + fmt(d.points.rows.length) + " 件（共 " +
        fmt(d.points.total_open) + " 件未办结）";
    }
    if (fit && d.bbox) {
      map.fitBounds([[d.bbox[1], d.bbox[0]], [d.bbox[3], d.bbox[2]]],
                    { padding: [20 * unit, 20 * unit], maxZoom: 18 });
    }
  }

  function live(ok) {
    var el = document.getElementById("live");
    el.className = ok ? "live" : "live down";
    el.textContent = ok ? "● 实时 " + clockText().slice(-8) : "● 连接中断，重试中";
  }

  function refresh(fit) {
    if (busy && !fit) { return Promise.resolve(); }
    busy = true;
    var mine = ++seq;
    var params = new URLSearchParams({ territory: cfg.territory });
    if (area) { params.set("area", area); }
    var headers = etag && !fit ? { "If-None-Match": etag } : {};
    return fetch(cfg.data_url + "?" + params.toString(), { headers: headers, cache: "no-store" })
      .then(function (r) {
        if (r.status === 304) { return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        var tag = r.headers.get("ETag");
        return r.json().then(function (d) { return { d: d, tag: tag }; });
      })
      .then(function (got) {
        polls += 1;
        if (mine !== seq) { return; }      // an answer for an area left meanwhile
        if (got) { etag = got.tag; render(got.d, fit); markReady(); }
        live(true);
      })
      .catch(function (err) {
        if (mine === seq) { live(false); }
        if (window.console) { console.warn("screen refresh failed", err); }
      })
      .then(function () { if (mine === seq) { busy = false; } });
  }

  function go(code) {
    if ((code || null) === area) { return; }
    area = code || null;
    var params = new URLSearchParams({ territory: cfg.territory });
    if (area) { params.set("area", area); }
    history.replaceState(null, "", "?" + params.toString());
    refresh(true);
  }

  function clockText() {
    return new Date().toLocaleString("zh-CN", { timeZone: zone.name, hour12: false,
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit" });
  }
  function tick() { text("clock", clockText() + " " + zone.label); }
  tick();
  setInterval(tick, 1000);

  // The first full picture (grids drawn, figures shown) is marked for measurement.
  var gridsLoaded = false;
  function markReady() {
    if (gridsLoaded && data && !performance.getEntriesByName("gridmap-screen-ready").length) {
      performance.mark("gridmap-screen-ready");
    }
  }

  fetch(cfg.grids_url).then(function (r) {
    if (!r.ok) { throw new Error("grids: HTTP " + r.status); }
    return r.json();
  }).then(function (geojson) {
    grids.addData(geojson);
    if (data) { grids.setStyle(gridStyle); }
    else if (grids.getLayers().length) { map.fitBounds(grids.getBounds()); }
    gridsLoaded = true;
    markReady();
  }).catch(function (err) { console.error("could not load the grids", err); });

  /* Department grids (多网融合): switchable outlines over the grids, each fetched the first
     time it is switched on; names reach the page through esc() only. */
  var overlays = {};
  var OVERLAY_COLORS = ["#00e5ff", "#ff9f1a", "#d97cff", "#9cff57"];
  if (cfg.overlays && cfg.overlays.length) {
    var switchable = {};
    cfg.overlays.forEach(function (spec, i) {
      var entry = { loaded: false, features: 0, layer: null };
      entry.layer = L.geoJSON(null, {
        interactive: true,
        style: function () {
          return { color: OVERLAY_COLORS[i % OVERLAY_COLORS.length], weight: 2 * unit,
                   dashArray: (6 * unit) + " " + (4 * unit), fill: false, opacity: 0.95 };
        },
        onEachFeature: function (feature, layer) {
          var p = feature.properties || {};
          layer.bindPopup(function () {
            return esc(spec.key) + " · " + esc(p.name || "") + "<br>" + esc(p.code || "");
          });
        }
      });
      overlays[spec.key] = entry;
      switchable[esc(spec.name)] = entry.layer;
      entry.layer.on("add", function () {
        if (entry.loaded || entry.loading) { return; }
        entry.loading = true;
        fetch(spec.url, { credentials: "same-origin" }).then(function (r) {
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.json();
        }).then(function (geojson) {
          entry.layer.addData(geojson);
          entry.features = (geojson.features || []).length;
          entry.loaded = true;
        }).catch(function (err) {
          entry.loading = false;
          console.error("could not load the overlay", err);
        });
      });
    });
    L.control.layers(null, switchable, { collapsed: false, position: "topright" }).addTo(map);
  }

  refresh(true).then(function () {
    setInterval(function () { refresh(false); }, cfg.poll_seconds * 1000);
  });

  // Read-only handles for tests and for operators at the console.
  window.gridmapScreen = {
    map: map,
    area: function () { return area; },
    data: function () { return data; },
    polls: function () { return polls; },
    markerCount: function () { return markers.getLayers().length; },
    gridStyle: function (code) {
      var layer = gridLayers[code];
      return layer ? { fillColor: layer.options.fillColor,
                       fillOpacity: layer.options.fillOpacity } : null;
    },
    go: go,
    overlays: overlays
  };
})();
