/* The grid worker's phone page (/m, maps/templates/m.html): my grids on a map with my
   position; my open events by deadline with their lights, and the steps I may take; report
   an event (the phone's position or a point picked on the map, category, description,
   photos resized here); patrols (日双巡) with their track and check-ins. What cannot be
   sent (offline, a lost connection) waits in a queue kept in localStorage and is sent once
   online, each report with its idempotency key so that it is never stored twice. */
(function () {
  "use strict";
  var C = window.gridmapCommon, el = C.el, cfg = C.config();
  var me = cfg.me, zone = cfg.timezone.name, territory = cfg.territory;
  var QUEUE = "gridmap-queue:" + me.username;
  var PATROL = "gridmap-patrol:" + me.username;
  var PHOTO_PX = 1600, PHOTO_QUALITY = 0.8;
  var TRACK_EVERY_MS = 10000, SEND_EVERY_MS = 15000;
  var ph = window.gridmapPhone = {ready: false, position: null, picked: null, photos: [],
    sent: [], patrol: null, track: [], flushing: false, flushes: 0};
  var map = null, gridLayer = null, meMarker = null, pickMarker = null, picking = false;

  /* ---------------------------------------------------------------- tabs */
  var tabButtons = Array.prototype.slice.call(document.querySelectorAll(".m-tabs button"));
  function showTab(id) {
    tabButtons.forEach(function (b) {
      var on = b.dataset.tab === id;
      b.setAttribute("aria-pressed", on ? "true" : "false");
      document.getElementById(b.dataset.tab).hidden = !on;
    });
    if (id === "tab-map" && map) { map.invalidateSize(); }
    if (id === "tab-events") { loadEvents(); }
    if (id === "tab-patrol") { loadPatrols(); }
  }
  ph.showTab = showTab;
  tabButtons.forEach(function (b) { b.addEventListener("click", function () { showTab(b.dataset.tab); }); });

  /* ---------------------------------------------------------------- the queue */
  function queue() {
    try { return JSON.parse(window.localStorage.getItem(QUEUE) || "[]"); } catch (e) { return []; }
  }
  function saveQueue(items) {
    window.localStorage.setItem(QUEUE, JSON.stringify(items));
    var box = document.getElementById("queue-msg");
    box.hidden = !items.length;
    box.textContent = items.length ? "有 " + items.length + " 项待发送，联网后自动发送" : "";
  }
  function enqueue(item) {
    var items = queue();
    items.push(item);
    saveQueue(items);
    return flush();
  }
  ph.queue = queue;

  function dataUrlToBlob(url) {
    var parts = url.split(","), bin = atob(parts[1]);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    return new Blob([bytes], {type: parts[0].split(":")[1].split(";")[0]});
  }

  /* One item; resolves true when it is done with (sent, or refused for good). */
  function sendItem(item, items) {
    if (item.type === "event") {
      var step = item.eventId ? Promise.resolve({ok: true, body: {id: item.eventId}}) :
        C.api("POST", "/events", item.body, {headers: {"Idempotency-Key": item.key}});
      return step.then(function (res) {
        if (!res.ok) { return gone(res, "上报失败：" + res.error); }
        item.eventId = res.body.id;
        if (ph.sent.indexOf(res.body.id) < 0) { ph.sent.push(res.body.id); }
        saveQueue(items);
        return sendPhotos(item, items);
      });
    }
    if (item.type === "points") {
      return C.api("POST", "/patrols/" + item.patrol + "/points", {points: item.points})
        .then(function (res) { return res.ok || gone(res, "轨迹未能保存：" + res.error); });
    }
    if (item.type === "patrol-end") {
      return C.api("POST", "/patrols/" + item.patrol + "/end", {at: item.at})
        .then(function (res) { return res.ok || gone(res, "结束巡查失败：" + res.error); });
    }
    return Promise.resolve(true);
  }

  function sendPhotos(item, items) {
    if (!item.photos.length) {
      say("report-msg", "已上报事件 #" + item.eventId, "ok");
      return Promise.resolve(true);
    }
    var data = new FormData();
    data.append("photo", dataUrlToBlob(item.photos[0]), "photo-" + item.key + ".jpg");
    return C.api("POST", "/events/" + item.eventId + "/photos", data).then(function (res) {
      if (!res.ok && !gone(res, "")) { return false; }
      if (!res.ok) { say("report-msg", "照片未能保存：" + res.error, "error"); }
      item.photos.shift();
      saveQueue(items);
      return sendPhotos(item, items);
    });
  }

  /* A refusal that retrying will not change (4xx but 408/429): drop the item, say why. */
  function gone(res, text) {
    var retry = res.status === 0 || res.status === 408 || res.status === 429 || res.status >= 500;
    if (retry) { return false; }
    if (text) { say("report-msg", text, "error"); }
    return true;
  }

  function flush() {
    if (ph.flushing || !navigator.onLine) { return Promise.resolve(); }
    ph.flushing = true;
    var items = queue();
    function next() {
      if (!items.length) { return Promise.resolve(); }
      return sendItem(items[0], items).then(function (done) {
        if (!done) { return; }
        items.shift();
        saveQueue(items);
        return next();
      });
    }
    return next().catch(function () { /* the connection dropped: later */ }).then(function () {
      ph.flushing = false;
      ph.flushes++;
      saveQueue(queue());
    });
  }
  ph.flush = flush;

  function netState() {
    var net = document.getElementById("net");
    net.textContent = navigator.onLine ? "在线" : "离线";
    net.className = "net" + (navigator.onLine ? "" : " off");
    if (navigator.onLine) { flush().then(loadEvents); }
  }
  window.addEventListener("online", netState);
  window.addEventListener("offline", netState);

  function say(id, text, kind) { C.say(document.getElementById(id), text, kind); }

  /* ---------------------------------------------------------------- map and position */
  function showPosition(lon, lat) {
    if (!map) { return; }
    var p = C.toDisplay(lon, lat, cfg.map.display);
    if (!meMarker) {
      meMarker = L.circleMarker([p[1], p[0]], {radius: 8, color: "#fff", weight: 3,
        fillColor: "#1c64b4", fillOpacity: 1}).addTo(map);
      meMarker.bindTooltip("我的位置");
    } else {
      meMarker.setLatLng([p[1], p[0]]);
    }
  }

  function locate() {
    return new Promise(function (resolve, reject) {
      if (!navigator.geolocation) { reject(new Error("本机不支持定位")); return; }
      navigator.geolocation.getCurrentPosition(function (pos) {
        ph.position = {lon: pos.coords.longitude, lat: pos.coords.latitude,
                       accuracy: pos.coords.accuracy, at: new Date(pos.timestamp || Date.now())};
        showPosition(ph.position.lon, ph.position.lat);
        resolve(ph.position);
      }, function (err) { reject(new Error(err.message || "无法定位")); },
      {enableHighAccuracy: true, timeout: 15000, maximumAge: 5000});
    });
  }
  ph.locate = locate;

  document.getElementById("locate").addEventListener("click", function () {
    locate().then(function (p) {
      var q = C.toDisplay(p.lon, p.lat, cfg.map.display);
      map.setView([q[1], q[0]], 17);
      document.getElementById("where").textContent = "我的位置：" + p.lon.toFixed(6) + ", " +
        p.lat.toFixed(6) + "（精度约 " + Math.round(p.accuracy) + " 米）";
    }).catch(function (e) { document.getElementById("where").textContent = e.message; });
  });

  function drawGrids() {
    if (!territory || !territory.published) {
      document.getElementById("where").textContent = "尚无已发布的网格方案";
      return Promise.resolve();
    }
    var url = "/plans/" + territory.published + "/grids?simplify=2" +
      (cfg.map.display !== "wgs84" ? "&display=" + cfg.map.display : "");
    return C.api("GET", url).then(function (res) {
      if (!res.ok) { document.getElementById("where").textContent = res.error; return; }
      ph.grids = res.body.features.map(function (f) {
        return {code: f.properties.code, name: f.properties.name};
      });
      gridLayer = L.geoJSON(res.body, {style: {color: "#1c3d5a", weight: 2, fillOpacity: 0.08},
        onEachFeature: function (f, l) {
          l.bindTooltip(C.esc((f.properties.name || "") + " " + f.properties.code));
        }}).addTo(map);
      if (gridLayer.getBounds().isValid()) { map.fitBounds(gridLayer.getBounds()); }
      var select = document.getElementById("patrol-grid");
      C.clear(select);
      ph.grids.forEach(function (g) {
        var o = el("option", "", (g.name || "") + " " + g.code);
        o.value = g.code;
        select.appendChild(o);
      });
    });
  }

  /* ---------------------------------------------------------------- my events */
  function loadEvents() {
    if (!territory || !navigator.onLine) { return Promise.resolve(); }
    return C.api("GET", "/events?open=true&order=deadline&limit=200&territory=" + territory.id)
      .then(function (res) {
        var list = document.getElementById("my-events");
        if (!res.ok) { say("events-msg", res.error, "error"); return; }
        C.clear(list);
        ph.events = res.body;
        say("events-msg", res.body.length ? "" : "暂无待办事件");
        res.body.forEach(function (e) {
          var li = el("li", "l-" + e.light);
          li.dataset.id = e.id;
          li.appendChild(el("div", "t", "#" + e.id + " " + (cfg.categories[e.category] || e.category) +
            " · " + (C.LIGHT_NAMES[e.light] || e.light)));
          li.appendChild(el("div", "s", (C.STATUS_NAMES[e.status] || e.status) + " · 期限 " +
            C.fmtTime(e.deadline_at, zone) + " · 网格 " + (e.grid_code || "—")));
          if (e.description) { li.appendChild(el("div", "s", e.description)); }
          var steps = [];
          if (e.status === "dispatched" && e.handler === me.label) { steps.push(["start", "开始处置"]); }
          if (e.status === "handling" && e.handler === me.label) { steps.push(["resolve", "办结"]); }
          steps.forEach(function (s) {
            var b = el("button", "", s[1]);
            b.type = "button";
            b.dataset.action = s[0];
            b.addEventListener("click", function () {
              b.disabled = true;
              C.api("POST", "/events/" + e.id + "/actions", {action: s[0], actor: me.label})
                .then(function (r) {
                  say("events-msg", r.ok ? "已" + s[1] + " #" + e.id : r.error, r.ok ? "ok" : "error");
                  loadEvents();
                });
            });
            li.appendChild(b);
          });
          list.appendChild(li);
        });
      });
  }
  ph.loadEvents = loadEvents;

  /* ---------------------------------------------------------------- report */
  function setPicked(lon, lat, how) {
    ph.picked = {lon: lon, lat: lat, how: how};
    document.getElementById("report-where").textContent = (how === "gps" ? "当前位置：" : "地图选点：") +
      lon.toFixed(6) + ", " + lat.toFixed(6);
  }

  document.getElementById("use-gps").addEventListener("click", function () {
    say("report-where", "正在定位…");
    locate().then(function (p) { setPicked(p.lon, p.lat, "gps"); })
      .catch(function (e) { say("report-where", e.message + "，请在地图上选点", "error"); });
  });
  document.getElementById("pick-map").addEventListener("click", function () {
    picking = true;
    document.getElementById("pick-hint").hidden = false;
    showTab("tab-map");
  });

  /* A photo as a JPEG at most PHOTO_PX on its long side (a data: URL, for the queue). */
  function resize(file) {
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(file), img = new Image();
      img.onload = function () {
        var scale = Math.min(1, PHOTO_PX / Math.max(img.naturalWidth, img.naturalHeight));
        var canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
        canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        URL.revokeObjectURL(url);
        resolve(canvas.toDataURL("image/jpeg", PHOTO_QUALITY));
      };
      img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("无法读取图片 " + file.name)); };
      img.src = url;
    });
  }

  var photoInput = document.getElementById("photos");
  photoInput.addEventListener("change", function () {
    var files = Array.prototype.slice.call(photoInput.files).slice(0, cfg.photosPerEvent);
    Promise.all(files.map(resize)).then(function (urls) {
      ph.photos = urls;
      var thumbs = document.getElementById("thumbs");
      C.clear(thumbs);
      urls.forEach(function (u, i) {
        var img = el("img", "");
        img.src = u;
        img.alt = "照片 " + (i + 1);
        thumbs.appendChild(img);
      });
    }).catch(function (e) { say("report-msg", e.message, "error"); });
  });

  document.getElementById("report-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    if (!ph.picked) { say("report-msg", "请先确定事件位置（当前位置或地图选点）", "warn"); return; }
    var key = C.newKey("m");
    var body = {x: ph.picked.lon, y: ph.picked.lat,
      coord_sys: ph.picked.how === "gps" ? "wgs84" : cfg.map.display, category: f.category.value,
      source: "patrol", description: f.description.value.trim(), reporter: me.label,
      reported_at: new Date().toISOString(), idempotency_key: key};
    if (territory) { body.territory_id = territory.id; }
    enqueue({type: "event", key: key, body: body, photos: ph.photos.slice(), at: Date.now()});
    say("report-msg", navigator.onLine ? "正在上报…" : "当前离线：已保存，联网后自动上报", "busy");
    f.reset();
    ph.photos = [];
    ph.picked = null;
    C.clear(document.getElementById("thumbs"));
    document.getElementById("report-where").textContent = "尚未选择位置";
  });

  /* ---------------------------------------------------------------- patrols */
  function patrolState(text) { say("patrol-state", text); }
  function setPatrol(p) {
    ph.patrol = p;
    if (p) { window.localStorage.setItem(PATROL, JSON.stringify(p)); }
    else { window.localStorage.removeItem(PATROL); }
    document.getElementById("patrol-start").disabled = !!p;
    document.getElementById("patrol-end").disabled = !p;
    document.getElementById("checkin").disabled = !p;
    patrolState(p ? "巡查中：网格 " + p.grid_code + "，已记录 " + (p.points || 0) + " 个轨迹点" : "未在巡查");
  }

  function trackPoint(kind, note) {
    return locate().then(function (pos) {
      if (!ph.patrol) { return; }
      ph.track.push({lon: pos.lon, lat: pos.lat, at: new Date().toISOString(),
        accuracy_m: pos.accuracy, kind: kind || "track", note: note || null});
      ph.patrol.points = (ph.patrol.points || 0) + 1;
      setPatrol(ph.patrol);
      if (kind === "checkin") { return sendTrack(); }
    });
  }
  ph.trackPoint = trackPoint;

  function sendTrack() {
    if (!ph.patrol || !ph.track.length) { return Promise.resolve(); }
    var points = ph.track.splice(0, ph.track.length);
    return enqueue({type: "points", patrol: ph.patrol.id, points: points});
  }
  ph.sendTrack = sendTrack;

  var watcher = null, ticker = null, sender = null;
  function startTracking() {
    if (navigator.geolocation && watcher === null) {
      watcher = navigator.geolocation.watchPosition(function (pos) {
        var last = ph.lastTrack || 0;
        if (!ph.patrol || Date.now() - last < TRACK_EVERY_MS) { return; }
        ph.lastTrack = Date.now();
        ph.track.push({lon: pos.coords.longitude, lat: pos.coords.latitude,
          at: new Date().toISOString(), accuracy_m: pos.coords.accuracy, kind: "track"});
        ph.patrol.points = (ph.patrol.points || 0) + 1;
        showPosition(pos.coords.longitude, pos.coords.latitude);
        setPatrol(ph.patrol);
      }, function () { /* no fix now: the next one */ }, {enableHighAccuracy: true});
    }
    ticker = ticker || window.setInterval(function () { trackPoint("track"); }, TRACK_EVERY_MS * 3);
    sender = sender || window.setInterval(sendTrack, SEND_EVERY_MS);
  }
  function stopTracking() {
    if (watcher !== null) { navigator.geolocation.clearWatch(watcher); watcher = null; }
    window.clearInterval(ticker);
    window.clearInterval(sender);
    ticker = sender = null;
  }

  document.getElementById("patrol-start").addEventListener("click", function () {
    var grid = document.getElementById("patrol-grid").value;
    patrolState("正在定位…");
    locate().then(function (pos) {
      var body = {lon: pos.lon, lat: pos.lat, accuracy_m: pos.accuracy, grid_code: grid || null,
        idempotency_key: C.newKey("p")};
      if (territory) { body.territory_id = territory.id; }
      return C.api("POST", "/patrols", body);
    }).then(function (res) {
      if (!res.ok) { patrolState("无法开始巡查：" + res.error); return; }
      setPatrol({id: res.body.id, grid_code: res.body.grid_code, points: 1});
      startTracking();
    }).catch(function (e) { patrolState("无法开始巡查：" + (navigator.onLine ? e.message : "当前离线")); });
  });

  document.getElementById("patrol-end").addEventListener("click", function () {
    var p = ph.patrol;
    if (!p) { return; }
    stopTracking();
    sendTrack().then(function () {
      return enqueue({type: "patrol-end", patrol: p.id, at: new Date().toISOString()});
    }).then(function () {
      setPatrol(null);
      patrolState("巡查已结束" + (queue().length ? "（待联网发送）" : ""));
      loadPatrols();
    });
  });

  document.getElementById("checkin").addEventListener("click", function () {
    var note = document.getElementById("checkin-note").value.trim();
    trackPoint("checkin", note).then(function () {
      document.getElementById("checkin-note").value = "";
      patrolState("已打卡" + (note ? "：" + note : ""));
    }).catch(function (e) { patrolState("打卡失败：" + e.message); });
  });

  function loadPatrols() {
    if (!navigator.onLine) { return Promise.resolve(); }
    var today = new Intl.DateTimeFormat("en-CA", {timeZone: zone}).format(new Date());
    return C.api("GET", "/patrols?mine=true&day=" + today).then(function (res) {
      var list = document.getElementById("my-patrols");
      C.clear(list);
      if (!res.ok) { return; }
      ph.myPatrols = res.body;
      res.body.forEach(function (p) {
        list.appendChild(el("li", p.ended_at ? "l-green" : "l-yellow",
          "网格 " + p.grid_code + " · " + C.fmtTime(p.started_at, zone) + " 起" +
          (p.ended_at ? "，" + C.fmtTime(p.ended_at, zone) + " 止" : "（进行中）") +
          " · 轨迹点 " + p.track_points + " · 打卡 " + p.checkins));
      });
      if (!res.body.length) { list.appendChild(el("li", "", "今日尚无巡查")); }
    });
  }

  /* ---------------------------------------------------------------- start */
  C.loadLeaflet().then(function (L) {
    map = ph.map = C.baseMap(L, "m-map", cfg.map, {tap: true});
    map.setView([35, 105], 4);
    map.on("click", function (e) {
      if (!picking) { return; }
      picking = false;
      document.getElementById("pick-hint").hidden = true;
      if (pickMarker) { map.removeLayer(pickMarker); }
      /* A drawn marker, not an icon image: it shows offline too. */
      pickMarker = L.circleMarker(e.latlng, {radius: 9, color: "#fff", weight: 3,
        fillColor: "#d64545", fillOpacity: 1}).addTo(map).bindTooltip("事件位置");
      /* Picked in the map's system; the API converts it (coord_sys). */
      setPicked(e.latlng.lng, e.latlng.lat, "map");
      showTab("tab-report");
    });
    return drawGrids();
  }).then(function () {
    var saved = null;
    try { saved = JSON.parse(window.localStorage.getItem(PATROL) || "null"); } catch (e) { saved = null; }
    setPatrol(saved);
    if (saved) { startTracking(); }
    saveQueue(queue());
    netState();
    ph.ready = true;
  });
  window.setInterval(function () { if (navigator.onLine) { flush(); } }, SEND_EVERY_MS);
})();
