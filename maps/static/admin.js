/* Accounts (/admin, maps/templates/admin.html): list, create, disable and enable accounts,
   set roles and areas (picked on the area tree or the map, or typed), issue and revoke API
   keys; the audit log with filters. */
(function () {
  "use strict";
  var C = window.gridmapCommon, el = C.el, cfg = C.config();
  var zone = cfg.timezone.name;
  var ad = window.gridmapAdmin = {ready: false, accounts: [], areas: [], editing: null,
    auditOffset: 0, auditRows: 0, treeNodes: 0};
  var AUDIT_PAGE = 50;
  var ACTION_NAMES = {change: "修改", read: "读取", denied: "拒绝", login: "登录",
    "login-failed": "登录失败"};

  document.getElementById("ws-logout").addEventListener("click", function () {
    C.api("POST", "/logout").then(function () { window.location.assign("/login"); });
  });

  /* ---------------------------------------------------------------- tabs */
  var tabs = Array.prototype.slice.call(document.querySelectorAll("[role=tab]"));
  tabs.forEach(function (tab) {
    tab.addEventListener("click", function () {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
      });
      if (tab.id === "tab-audit") { loadAudit(0); }
    });
  });

  /* ---------------------------------------------------------------- accounts */
  function roleName(code) { return (cfg.roles[code] || {}).name || code; }

  function loadAccounts() {
    return C.api("GET", "/accounts").then(function (res) {
      var msg = document.getElementById("accounts-msg");
      if (!res.ok) { C.say(msg, res.error, "error"); return; }
      ad.accounts = res.body;
      var body = document.querySelector("#accounts tbody");
      C.clear(body);
      res.body.forEach(function (a) {
        var tr = body.insertRow();
        tr.dataset.username = a.username;
        if (a.disabled) { tr.className = "disabled"; }
        [a.username, a.display_name || "", roleName(a.role), a.areas.join("、"),
         a.disabled ? "已停用" : "启用"].forEach(function (v) { tr.appendChild(el("td", "", v)); });
        var actions = el("td", "");
        var edit = el("button", "secondary", "修改");
        edit.type = "button";
        edit.addEventListener("click", function () { startEdit(a); });
        var toggle = el("button", a.disabled ? "" : "danger", a.disabled ? "启用" : "停用");
        toggle.type = "button";
        toggle.className += " toggle";
        toggle.addEventListener("click", function () {
          C.api("PATCH", "/accounts/" + encodeURIComponent(a.username),
                {disabled: !a.disabled}).then(function (r) {
            if (!r.ok) { C.say(msg, r.error, "error"); return; }
            C.say(msg, (a.disabled ? "已启用 " : "已停用 ") + a.username, "ok");
            loadAccounts();
          });
        });
        var keys = el("button", "secondary", "API 密钥");
        keys.type = "button";
        keys.addEventListener("click", function () { showKeys(a.username); });
        [edit, toggle, keys].forEach(function (b) { actions.appendChild(b); actions.appendChild(document.createTextNode(" ")); });
        tr.appendChild(actions);
      });
    });
  }

  /* ---------------------------------------------------------------- keys */
  var keyUser = null;
  function showKeys(username) {
    keyUser = username;
    var box = document.getElementById("keys");
    box.hidden = false;
    document.getElementById("keys-title").textContent = "API 密钥：" + username;
    document.getElementById("key-once").hidden = true;
    return C.api("GET", "/accounts/" + encodeURIComponent(username) + "/keys").then(function (res) {
      var body = document.querySelector("#keys-table tbody");
      C.clear(body);
      if (!res.ok) { C.say(document.getElementById("accounts-msg"), res.error, "error"); return; }
      res.body.forEach(function (k) {
        var tr = body.insertRow();
        tr.dataset.key = k.id;
        [k.name, C.fmtTime(k.created_at, zone),
         k.revoked_at ? "已吊销（" + C.fmtTime(k.revoked_at, zone) + "）" : "有效"]
          .forEach(function (v) { tr.appendChild(el("td", "", v)); });
        var td = el("td", "");
        if (!k.revoked_at) {
          var b = el("button", "danger revoke", "吊销");
          b.type = "button";
          b.addEventListener("click", function () {
            C.api("DELETE", "/accounts/" + encodeURIComponent(username) + "/keys/" + k.id)
              .then(function () { showKeys(username); });
          });
          td.appendChild(b);
        }
        tr.appendChild(td);
      });
    });
  }

  document.getElementById("key-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var f = e.target;
    C.api("POST", "/accounts/" + encodeURIComponent(keyUser) + "/keys",
          {name: f.name.value.trim()}).then(function (res) {
      var once = document.getElementById("key-once");
      if (!res.ok) { once.hidden = false; once.textContent = res.error; return; }
      f.reset();
      showKeys(keyUser).then(function () {
        once.hidden = false;
        once.textContent = "新密钥（只显示这一次，请妥善保存）：" + res.body.key;
      });
    });
  });

  /* ---------------------------------------------------------------- areas */
  var chips = document.getElementById("area-chips");
  function renderChips() {
    C.clear(chips);
    ad.areas.forEach(function (code) {
      var chip = el("span", "chip", code === "*" ? "全部区域" : code + (names[code] ? " " + names[code] : ""));
      chip.dataset.code = code;
      var x = el("button", "", "×");
      x.type = "button";
      x.setAttribute("aria-label", "移除 " + code);
      x.addEventListener("click", function () {
        ad.areas = ad.areas.filter(function (c) { return c !== code; });
        renderChips();
      });
      chip.appendChild(x);
      chips.appendChild(chip);
    });
  }
  function addArea(code) {
    code = String(code).trim();
    if (!code) { return; }
    if (code === "*") { ad.areas = ["*"]; }
    else if (!/^(\d{6}|\d{9}|\d{12}|\d{15})$/.test(code)) {
      C.say(document.getElementById("account-msg"), "区域编码应为 6、9、12 或 15 位数字", "warn");
      return;
    } else {
      ad.areas = ad.areas.filter(function (c) { return c !== "*" && c !== code; }).concat([code]);
    }
    renderChips();
  }
  ad.addArea = addArea;
  document.getElementById("area-add").addEventListener("click", function () {
    var input = document.getElementById("area-code");
    addArea(input.value);
    input.value = "";
  });
  document.getElementById("area-all").addEventListener("click", function () { addArea("*"); });

  var names = {};
  var LEVEL_NAMES = {district: "区县", town: "街道/乡镇", village: "社区/村", grid: "网格"};
  var treeBox = document.getElementById("area-tree");
  var select = document.getElementById("area-territory");
  cfg.territories.forEach(function (t) {
    var o = el("option", "", t.name + "（" + t.id + "）");
    o.value = t.id;
    select.appendChild(o);
  });
  var map = null, mapLayer = null;

  function loadAreas() {
    var t = cfg.territories.filter(function (x) { return String(x.id) === select.value; })[0];
    C.clear(treeBox);
    if (!t) { treeBox.appendChild(el("p", "note", "尚无区域")); return Promise.resolve(); }
    var areas = C.api("GET", "/ogc/collections/areas-" + t.id + "/items?limit=10000");
    var grids = t.published ? C.api("GET", "/plans/" + t.published + "/grids?simplify=5")
      : Promise.resolve({ok: true, body: {features: []}});
    return Promise.all([areas, grids]).then(function (got) {
      if (!got[0].ok) { treeBox.appendChild(el("p", "msg msg-error", got[0].error)); return; }
      var features = got[0].body.features.map(function (f) {
        return {code: String(f.properties.code), name: f.properties.name,
                level: f.properties.level, parent: f.properties.parent_code, geometry: f.geometry};
      });
      (got[1].ok ? got[1].body.features : []).forEach(function (f) {
        features.push({code: String(f.properties.code), name: f.properties.name || f.properties.code,
                       level: "grid", parent: String(f.properties.code).slice(0, 12),
                       geometry: f.geometry});
      });
      features.forEach(function (f) { names[f.code] = f.name; });
      buildTree(features);
      return drawMap(features);
    });
  }

  function buildTree(features) {
    var byParent = {};
    var codes = {};
    features.forEach(function (f) { codes[f.code] = true; });
    features.forEach(function (f) {
      var parent = f.parent && codes[f.parent] ? f.parent : "";
      (byParent[parent] = byParent[parent] || []).push(f);
    });
    ad.treeNodes = 0;
    function list(parent) {
      var ul = el("ul", "");
      ul.setAttribute("role", parent ? "group" : "presentation");
      (byParent[parent] || []).sort(function (a, b) { return a.code < b.code ? -1 : 1; })
        .forEach(function (f) {
          var li = el("li", "");
          li.setAttribute("role", "treeitem");
          li.setAttribute("aria-selected", "false");
          var b = el("button", "ws-link area-node", f.name + "（" + (LEVEL_NAMES[f.level] || f.level) + " " + f.code + "）");
          b.type = "button";
          b.dataset.code = f.code;
          b.addEventListener("click", function () { addArea(f.code); });
          li.appendChild(b);
          ad.treeNodes++;
          if (byParent[f.code]) { li.appendChild(list(f.code)); }
          ul.appendChild(li);
        });
      return ul;
    }
    treeBox.appendChild(list(""));
  }

  function drawMap(features) {
    return C.loadLeaflet().then(function (L) {
      if (!map) { map = ad.map = L.map("area-map", {attributionControl: false}); }
      if (mapLayer) { map.removeLayer(mapLayer); }
      var order = {district: 0, town: 1, village: 2, grid: 3};
      var sorted = features.slice().sort(function (a, b) { return order[a.level] - order[b.level]; });
      mapLayer = L.geoJSON({type: "FeatureCollection", features: sorted.map(function (f) {
        return {type: "Feature", geometry: f.geometry, properties: f};
      })}, {style: function (f) {
        var lv = f.properties.level;
        return {color: lv === "grid" ? "#e4572e" : "#1c3d5a", weight: lv === "district" ? 3 : 1,
                fillOpacity: lv === "grid" ? 0.15 : 0.05};
      }, onEachFeature: function (f, layer) {
        layer.bindTooltip(C.esc(f.properties.name + " " + f.properties.code));
        layer.on("click", function (e) {
          L.DomEvent.stopPropagation(e);
          addArea(f.properties.code);
        });
      }}).addTo(map);
      ad.mapLayer = mapLayer;
      if (mapLayer.getBounds().isValid()) { map.fitBounds(mapLayer.getBounds()); }
    });
  }
  select.addEventListener("change", loadAreas);

  /* ---------------------------------------------------------------- create / change */
  var form = document.getElementById("account-form");
  function startEdit(a) {
    ad.editing = a.username;
    form.username.value = a.username;
    form.username.disabled = true;
    form.display_name.value = a.display_name || "";
    form.display_name.disabled = true;
    form.password.value = "";
    form.password.placeholder = "不修改则留空";
    form.role.value = a.role;
    ad.areas = a.areas.slice();
    renderChips();
    document.getElementById("account-form-title").textContent = "修改账户：" + a.username;
    document.getElementById("account-submit").textContent = "保存修改";
    document.getElementById("account-cancel").hidden = false;
    form.scrollIntoView();
  }
  function endEdit() {
    ad.editing = null;
    form.reset();
    form.username.disabled = false;
    form.display_name.disabled = false;
    form.password.placeholder = "";
    ad.areas = [];
    renderChips();
    document.getElementById("account-form-title").textContent = "新建账户";
    document.getElementById("account-submit").textContent = "创建账户";
    document.getElementById("account-cancel").hidden = true;
  }
  document.getElementById("account-cancel").addEventListener("click", endEdit);
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var msg = document.getElementById("account-msg");
    if (!ad.areas.length) { C.say(msg, "请至少选择一个负责区域", "warn"); return; }
    var call;
    if (ad.editing) {
      var change = {role: form.role.value, areas: ad.areas};
      if (form.password.value) { change.password = form.password.value; }
      call = C.api("PATCH", "/accounts/" + encodeURIComponent(ad.editing), change);
    } else {
      if (!form.password.value) { C.say(msg, "请设置初始密码", "warn"); return; }
      call = C.api("POST", "/accounts", {username: form.username.value.trim(),
        display_name: form.display_name.value.trim() || null, password: form.password.value,
        role: form.role.value, areas: ad.areas});
    }
    call.then(function (res) {
      if (!res.ok) { C.say(msg, res.error, "error"); return; }
      C.say(msg, (ad.editing ? "已保存 " : "已创建 ") + res.body.username, "ok");
      endEdit();
      loadAccounts();
    });
  });

  /* ---------------------------------------------------------------- audit */
  /* A wall time typed in the server's zone, as UTC ISO text. */
  function zoneToUtc(value) {
    if (!value) { return ""; }
    var m = value.match(/^(\d+)-(\d+)-(\d+)T(\d+):(\d+)/);
    return C.zoneToUtc(+m[1], +m[2], +m[3], +m[4], +m[5], zone);
  }
  var auditForm = document.getElementById("audit-form");
  function loadAudit(offset) {
    ad.auditOffset = Math.max(0, offset);
    var q = new URLSearchParams({limit: AUDIT_PAGE, offset: ad.auditOffset});
    ["username", "action", "path", "status"].forEach(function (k) {
      if (auditForm[k].value.trim()) { q.set(k, auditForm[k].value.trim()); }
    });
    ["since", "until"].forEach(function (k) {
      if (auditForm[k].value) { q.set(k, zoneToUtc(auditForm[k].value)); }
    });
    var seq = ad.auditSeq = (ad.auditSeq || 0) + 1;
    return C.api("GET", "/audit?" + q.toString()).then(function (res) {
      if (seq !== ad.auditSeq) { return; }   // a later query's answer is (or will be) shown
      ad.auditQuery = q.toString();
      var msg = document.getElementById("audit-msg");
      var body = document.querySelector("#audit tbody");
      C.clear(body);
      if (!res.ok) { C.say(msg, res.error, "error"); return; }
      C.say(msg, res.body.length ? "" : "没有符合条件的记录");
      ad.auditRows = res.body.length;
      res.body.forEach(function (r) {
        var tr = body.insertRow();
        [C.fmtTime(r.at, zone), r.username || "", r.role ? roleName(r.role) : "",
         ACTION_NAMES[r.action] || r.action, r.method + " " + r.path, r.status, r.detail || ""]
          .forEach(function (v) { tr.appendChild(el("td", "", v)); });
      });
      document.getElementById("audit-page").textContent = "第 " +
        (ad.auditOffset / AUDIT_PAGE + 1) + " 页";
    });
  }
  ad.loadAudit = loadAudit;
  auditForm.addEventListener("submit", function (e) { e.preventDefault(); loadAudit(0); });
  document.getElementById("audit-prev").addEventListener("click", function () { loadAudit(ad.auditOffset - AUDIT_PAGE); });
  document.getElementById("audit-next").addEventListener("click", function () {
    if (ad.auditRows === AUDIT_PAGE) { loadAudit(ad.auditOffset + AUDIT_PAGE); }
  });

  Promise.all([loadAccounts(), loadAreas()]).then(function () { ad.ready = true; });
})();
