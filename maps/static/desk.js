/* The operator's event desk (/desk, maps/templates/desk.html): the events of the operator's
   areas as a list (soonest deadline first) and on a map, filtered by light, status,
   category, area and time; an event's detail with its photos and history; the closed
   loop's actions (the API applies the rules: 采办分离, one level at a time); new events
   appear without a reload; /desk?event=ID (or a click on the big screen) opens one.
   Events reported by an address the geocoder could not place (needs_location) are listed
   apart: pick one, click where it happened on the map, and it becomes a routed event. */
(function () {
  "use strict";
  var C = window.gridmapCommon, el = C.el, cfg = C.config();
  var zone = cfg.timezone.name, me = cfg.me;
  var POLL_MS = 5000;
  var COLORS = {red: "#d64545", yellow: "#f0b429", green: "#3f9142"};
  var desk = window.gridmapDesk = {ready: false, events: [], seen: null, current: null,
    markers: {}, polls: 0, newIds: [], unlocated: [], placing: null};
  var LEVEL_WORDS = {door: "门牌", building: "楼栋", compound: "小区", road: "道路",
    intersection: "路口", community: "社区/村", none: "未匹配"};
  var form = document.getElementById("filters");
  var map = null, layer = null;

  document.getElementById("ws-logout").addEventListener("click", function () {
    C.api("POST", "/logout").then(function () { window.location.assign("/login"); });
  });
  window.name = "gridmap-desk";   // the big screen opens events in this window

  cfg.territories.forEach(function (t) {
    var o = el("option", "", t.name);
    o.value = t.id;
    if (cfg.territory === t.id) { o.selected = true; }
    form.territory.appendChild(o);
  });

  function territory() { return form.territory.value; }

  function query() {
    var q = new URLSearchParams({order: "deadline", limit: "500"});
    if (territory()) { q.set("territory", territory()); }
    if (form.status.value === "open") { q.set("open", "true"); }
    else if (form.status.value) { q.set("status", form.status.value); }
    ["light", "category"].forEach(function (k) { if (form[k].value) { q.set(k, form[k].value); } });
    var area = form.area.value.trim();
    if (area.length === 9) { q.set("town", area); }
    else if (area.length === 12) { q.set("village", area); }
    else if (area.length === 15) { q.set("grid", area); }
    if (form.since.value) { q.set("since", dayStart(form.since.value, 0)); }
    if (form.until.value) { q.set("until", dayStart(form.until.value, 1)); }
    return q.toString();
  }

  /* Midnight of a day in the server's zone (plus ``plus`` days), as UTC ISO text. */
  function dayStart(day, plus) {
    var m = day.split("-").map(Number);
    return C.zoneToUtc(m[0], m[1], m[2] + plus, 0, 0, zone);
  }

  function lightCell(light) {
    return el("td", "l-" + light, C.LIGHT_NAMES[light] || light);
  }

  function load(fromPoll) {
    var msg = document.getElementById("live");
    return C.api("GET", "/events?" + query()).then(function (res) {
      if (!res.ok) { C.say(msg, res.error, "error"); return; }
      var fresh = [];
      if (fromPoll && desk.seen) {
        res.body.forEach(function (e) { if (!desk.seen[e.id]) { fresh.push(e.id); } });
      }
      desk.seen = desk.seen || {};
      res.body.forEach(function (e) { desk.seen[e.id] = true; });
      desk.newIds = fromPoll ? desk.newIds.concat(fresh) : [];
      if (fresh.length) { C.say(msg, "新事件 " + fresh.length + " 件：#" + fresh.join("、#"), "warn"); }
      desk.events = res.body;
      renderList();
      renderMap();
      if (fromPoll) { desk.polls++; }
    }).catch(function () { C.say(msg, "无法连接服务器，稍后自动重试", "error"); });
  }

  /* A list's table refilled: a focusable row per item (its id in data-id), its cells
     added by fill(tr, item), a click or Enter choosing it; the count shown in countId. */
  function fillRows(selector, countId, items, fill, choose) {
    var body = document.querySelector(selector);
    C.clear(body);
    items.forEach(function (item) {
      var tr = body.insertRow();
      tr.dataset.id = item.id;
      tr.tabIndex = 0;
      fill(tr, item);
      tr.addEventListener("click", function () { choose(item); });
      tr.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { choose(item); } });
    });
    document.getElementById(countId).textContent = "（" + items.length + "）";
  }

  function renderList() {
    fillRows("#events tbody", "count", desk.events, function (tr, e) {
      if (desk.newIds.indexOf(e.id) >= 0) { tr.className = "new"; }
      if (desk.current === e.id) { tr.className += " current"; }
      tr.appendChild(el("td", "", "#" + e.id));
      tr.appendChild(el("td", "", cfg.categories[e.category] || e.category));
      tr.appendChild(el("td", "", e.grid_code || "—"));
      tr.appendChild(el("td", "", (C.STATUS_NAMES[e.status] || e.status) + " · " +
        (C.LEVEL_NAMES[e.level] || e.level)));
      tr.appendChild(lightCell(e.light));
      tr.appendChild(el("td", "", C.fmtTime(e.deadline_at, zone)));
    }, function (e) { open(e.id); });
  }

  function renderMap() {
    if (!map) { return; }
    if (layer) { layer.clearLayers(); } else { layer = L.layerGroup().addTo(map); }
    desk.markers = {};
    var bounds = [];
    desk.events.forEach(function (e) {
      if (e.lon === null || e.lon === undefined) { return; }
      var p = C.toDisplay(e.lon, e.lat, cfg.map.display);
      var m = L.circleMarker([p[1], p[0]], {radius: 7, color: "#fff", weight: 2,
        fillColor: COLORS[e.light] || "#888", fillOpacity: 0.95});
      m.bindTooltip(C.esc("#" + e.id + " " + (cfg.categories[e.category] || e.category)));
      m.on("click", function () { open(e.id); });
      m.addTo(layer);
      desk.markers[e.id] = m;
      bounds.push([p[1], p[0]]);
    });
    if (!desk.fitted && bounds.length) { map.fitBounds(bounds, {maxZoom: 17}); desk.fitted = true; }
  }

  /* ---------------------------------------------------------------- detail */
  function field(dl, name, value) {
    dl.appendChild(el("dt", "", name));
    dl.appendChild(el("dd", "", value === null || value === undefined || value === "" ? "—" : value));
  }

  function open(id) {
    desk.current = id;
    document.querySelectorAll("#events tbody tr").forEach(function (tr) {
      tr.classList.toggle("current", String(tr.dataset.id) === String(id));
    });
    return C.api("GET", "/events/" + encodeURIComponent(id)).then(function (res) {
      var msg = document.getElementById("action-msg");
      document.getElementById("detail-empty").hidden = res.ok;
      document.getElementById("detail-body").hidden = !res.ok;
      if (!res.ok) {
        document.getElementById("detail-empty").hidden = false;
        document.getElementById("detail-empty").textContent = res.error;
        return;
      }
      C.say(msg, "");
      var e = desk.event = res.body;
      document.getElementById("detail-title").textContent = "事件 #" + e.id;
      var dl = document.getElementById("detail-fields");
      C.clear(dl);
      field(dl, "类别", cfg.categories[e.category] || e.category);
      field(dl, "状态", (C.STATUS_NAMES[e.status] || e.status) + "（" + (C.LEVEL_NAMES[e.level] || e.level) + "级）");
      field(dl, "灯", C.LIGHT_NAMES[e.light] || e.light);
      field(dl, "办理期限", C.fmtTime(e.deadline_at, zone));
      field(dl, "网格", e.grid_code);
      if (e.department_unit) {
        /* 多网融合: the department its category goes to, and that department's unit. */
        var du = e.department_unit;
        field(dl, "职能部门", du.department + "：" + (du.unit_code ?
          (du.unit_name || du.unit_code) + "（" + du.unit_code + "）" : "无该部门网格"));
      }
      field(dl, "上报人", e.reporter);
      field(dl, "上报时间", C.fmtTime(e.reported_at, zone));
      field(dl, "来源", e.source);
      field(dl, "处置人", e.handler);
      field(dl, "描述", e.description);
      if ((e.flags || []).length) { field(dl, "定位提示", e.flags.join("、")); }
      var photos = document.getElementById("detail-photos");
      C.clear(photos);
      (e.photos || []).forEach(function (p) {
        var a = el("a", "");
        a.href = p.url;
        a.target = "_blank";
        a.rel = "noopener";
        var img = el("img", "");
        img.src = p.url;
        img.alt = "事件照片（" + p.uploaded_by + " 上传）";
        img.loading = "lazy";
        a.appendChild(img);
        photos.appendChild(a);
      });
      var list = document.getElementById("history");
      C.clear(list);
      (e.history || []).forEach(function (h) {
        var li = el("li", "");
        li.appendChild(el("span", "", C.fmtTime(h.at, zone) + " "));
        li.appendChild(el("span", "who", h.actor));
        li.appendChild(el("span", "", " " + (h.from_status ? (C.STATUS_NAMES[h.from_status] || h.from_status) + " → " : "") +
          (C.STATUS_NAMES[h.to_status] || h.to_status) + (h.reason ? "：" + h.reason : "")));
        list.appendChild(li);
      });
      showActions(e);
      if (desk.markers[e.id] && map) {
        map.setView(desk.markers[e.id].getLatLng(), Math.max(map.getZoom(), 16));
      } else if (map && e.lon !== null && e.lon !== undefined) {
        var p = C.toDisplay(e.lon, e.lat, cfg.map.display);
        map.setView([p[1], p[0]], 17);
      }
      return loadRoster(e);
    });
  }
  desk.open = open;

  var OPEN = ["reported", "accepted", "dispatched", "handling"];
  function showActions(e) {
    var can = {accept: e.status === "reported", verify: e.status === "resolved"};
    document.querySelectorAll("#actions [data-action]").forEach(function (b) {
      b.hidden = !can[b.dataset.action];
    });
    document.getElementById("dispatch-form").hidden = e.status !== "accepted";
    document.getElementById("escalate-form").hidden = OPEN.indexOf(e.status) < 0 || e.level === "department";
    document.getElementById("close-form").hidden = e.status !== "verified";
    document.getElementById("reopen-form").hidden = ["resolved", "verified", "closed"].indexOf(e.status) < 0;
  }

  function loadRoster(e) {
    var select = document.getElementById("handler");
    C.clear(select);
    if (!e.grid_code) { return Promise.resolve(); }
    return C.api("GET", "/territories/" + e.territory_id + "/staff?grid=" + encodeURIComponent(e.grid_code))
      .then(function (res) {
        if (!res.ok) { return; }
        res.body.forEach(function (s) {
          var o = el("option", "", s.name + (s.role === "grid_worker" ? "（网格员）" : "（" + s.role + "）"));
          o.value = s.name;
          select.appendChild(o);
        });
        if (!res.body.length) { select.appendChild(el("option", "", "（本网格无登记人员）")); select.options[0].value = ""; }
      });
  }

  function act(body) {
    var msg = document.getElementById("action-msg");
    body.actor = me.label;
    return C.api("POST", "/events/" + desk.current + "/actions", body).then(function (res) {
      if (!res.ok) { C.say(msg, res.error, "error"); return; }
      C.say(msg, "已" + ({accept: "受理", dispatch: "派遣", escalate: "上报", verify: "核查",
        close: "结案", reopen: "重新办理"}[body.action] || body.action), "ok");
      return Promise.all([open(desk.current), load(false)]);
    });
  }
  desk.act = act;

  document.querySelectorAll("#actions [data-action]").forEach(function (b) {
    b.addEventListener("click", function () { act({action: b.dataset.action}); });
  });
  document.getElementById("dispatch-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target, handler = f.other.value.trim() || f.handler.value;
    if (!handler) { C.say(document.getElementById("action-msg"), "请选择或填写处置人", "warn"); return; }
    act({action: "dispatch", handler: handler});
  });
  document.getElementById("escalate-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    act({action: "escalate", reason: ev.target.reason.value.trim()});
  });
  document.getElementById("close-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target, body = {action: "close"};
    if (f.rating.value) { body.rating = Number(f.rating.value); }
    if (f.feedback.value.trim()) { body.feedback = f.feedback.value.trim(); }
    act(body);
  });
  document.getElementById("reopen-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    act({action: "reopen", reason: ev.target.reason.value.trim()});
  });

  /* ---------------------------------------------------------------- patrols */
  function loadPatrols() {
    var t = cfg.territories.filter(function (x) { return String(x.id) === territory(); })[0];
    if (!t || !t.published) {
      document.getElementById("patrol-sum").textContent = "（尚无已发布的网格方案）";
      C.clear(document.querySelector("#patrols tbody"));
      return Promise.resolve();
    }
    return C.api("GET", "/patrols/coverage?territory=" + territory()).then(function (res) {
      var body = document.querySelector("#patrols tbody");
      C.clear(body);
      if (!res.ok) { document.getElementById("patrol-sum").textContent = "（" + res.error + "）"; return; }
      desk.coverage = res.body;
      document.getElementById("patrol-sum").textContent = "（" + res.body.day + "：" +
        res.body.twice + "/" + res.body.total + " 个网格已完成）";
      res.body.grids.slice().sort(function (a, b) { return a.ended - b.ended; }).forEach(function (g) {
        var tr = body.insertRow();
        tr.dataset.code = g.code;
        tr.appendChild(el("td", "", (g.name || "") + " " + g.code));
        tr.appendChild(el("td", "", g.patrols));
        tr.appendChild(el("td", "", g.ended));
        tr.appendChild(el("td", g.twice ? "ok-yes" : "ok-no", g.twice ? "✓ 已双巡" : "✗ 未完成"));
      });
    });
  }

  /* ---------------------------------------------------------------- start */
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    desk.seen = null;
    desk.fitted = false;
    Promise.all([drawGrids(), load(false), loadPatrols(), loadUnlocated()]);
  });

  /* The big screen asks an open desk to show an event (screen.js, the urgent list). */
  if (window.BroadcastChannel) {
    var channel = new BroadcastChannel("gridmap-desk");
    channel.onmessage = function (m) {
      if (m.data && m.data.event) {
        channel.postMessage({ack: m.data.event});
        window.focus();
        open(m.data.event);
      }
    };
  }

  /* ------------------------------------------------- events that need a location */
  function loadUnlocated() {
    var q = territory() ? "?territory=" + encodeURIComponent(territory()) : "";
    return C.api("GET", "/events/unlocated" + q).then(function (res) {
      if (!res.ok) { return; }
      desk.unlocated = res.body.events;
      renderUnlocated();
    }).catch(function () { /* the poll tries again */ });
  }

  function renderUnlocated() {
    fillRows("#unlocated tbody", "unlocated-count", desk.unlocated, function (tr, u) {
      if (desk.placing === u.id) { tr.className = "current"; }
      var g = u.geocode || {};
      tr.appendChild(el("td", "", "#" + u.id));
      tr.appendChild(el("td", "", cfg.categories[u.category] || u.category));
      tr.appendChild(el("td", "", u.address));
      tr.appendChild(el("td", "", (LEVEL_WORDS[g.level] || g.level || "—") +
        (g.area_name ? " · " + g.area_name : "")));
    }, pick);
  }

  function pick(u) {
    desk.placing = u.id;
    renderUnlocated();
    document.querySelector(".desk-map").classList.add("placing");
    C.say(document.getElementById("place-msg"), "在地图上点击 #" + u.id + " 的事发位置：" +
      u.address, "warn");
    var g = u.geocode || {};
    if (map && g.lon !== null && g.lon !== undefined) {   // the geocoder's best guess
      var p = C.toDisplay(g.lon, g.lat, cfg.map.display);
      map.setView([p[1], p[0]], Math.max(map.getZoom(), 16));
    }
  }

  function place(latlng) {
    var id = desk.placing, msg = document.getElementById("place-msg");
    if (id === null) { return; }
    desk.placing = null;
    document.querySelector(".desk-map").classList.remove("placing");
    // The map shows the display system (cfg.map.display): the API takes it as it is.
    return C.api("POST", "/events/unlocated/" + id + "/place",
      {x: latlng.lng, y: latlng.lat, coord_sys: cfg.map.display}).then(function (res) {
      if (!res.ok) { C.say(msg, res.error, "error"); renderUnlocated(); return; }
      C.say(msg, "已定位：#" + id + " → 事件 #" + res.body.id + "（网格 " +
        res.body.grid_code + "）", "ok");
      return Promise.all([loadUnlocated(), load(false)]).then(function () {
        return open(res.body.id);
      });
    });
  }

  /* The published plan's grids under the events, for where they are. */
  var gridLayer = null;
  function drawGrids() {
    var t = cfg.territories.filter(function (x) { return String(x.id) === territory(); })[0];
    if (gridLayer) { map.removeLayer(gridLayer); gridLayer = null; }
    if (!t || !t.published) { return Promise.resolve(); }
    var url = "/plans/" + t.published + "/grids?simplify=5" +
      (cfg.map.display !== "wgs84" ? "&display=" + cfg.map.display : "");
    return C.api("GET", url).then(function (res) {
      if (!res.ok) { return; }
      gridLayer = L.geoJSON(res.body, {interactive: false, style: {color: "#52606d",
        weight: 1, fillOpacity: 0}}).addTo(map);
      gridLayer.bringToBack();
      if (!desk.fitted && gridLayer.getBounds().isValid()) { map.fitBounds(gridLayer.getBounds()); }
    });
  }

  C.loadLeaflet().then(function (L) {
    map = desk.map = C.baseMap(L, "desk-map", cfg.map, {preferCanvas: true});
    map.setView([35, 105], 4);
    map.on("click", function (ev) { place(ev.latlng); });
    return Promise.all([drawGrids(), load(false), loadPatrols(), loadUnlocated()]);
  }).then(function () {
    if (cfg.event) { return open(cfg.event); }
  }).then(function () {
    desk.ready = true;
    window.setInterval(function () { load(true); }, POLL_MS);
    window.setInterval(loadPatrols, POLL_MS * 12);
    window.setInterval(loadUnlocated, POLL_MS * 2);
  });
})();
