/* The workspace (/, maps/templates/index.html): upload a territory (drop files, preview the
   layers, map the fields, import), partition with a live progress bar and cancel, the
   quality report next to a small map, publish with a note, compare, redraw. Every answer's
   problem is shown with its file, layer and row. */
(function () {
  "use strict";
  var C = window.gridmapCommon, el = C.el, cfg = C.config();
  var ws = window.gridmapWorkspace = {ready: false, jobs: {}, preview: null};
  var POLL_MS = 500;
  var STATE_NAMES = {queued: "排队中", running: "运行中", done: "已完成", failed: "失败",
    cancelled: "已取消"};

  /* ---------------------------------------------------------------- sign out */
  var logout = document.getElementById("ws-logout");
  if (logout) {
    logout.addEventListener("click", function () {
      C.api("POST", "/logout").then(function () { window.location.assign("/login"); });
    });
  }

  /* ---------------------------------------------------------------- upload */
  var form = document.getElementById("upload-form");
  var chosen = [];

  function showFiles() {
    var names = chosen.map(function (f) { return f.name + "（" + Math.ceil(f.size / 1024) + " kB）"; });
    document.getElementById("drop-files").textContent = names.length ? names.join("、") : "未选择文件";
    document.getElementById("upload-submit").disabled = true;
    document.getElementById("preview").hidden = true;
    ws.preview = null;
  }

  function setFiles(list) {
    chosen = Array.prototype.slice.call(list || []);
    showFiles();
    if (chosen.length) { preview(); }
  }

  function formWith(files) {
    var data = new FormData();
    files.forEach(function (f) { data.append("files", f, f.name); });
    return data;
  }

  function preview() {
    var msg = document.getElementById("upload-msg");
    if (!chosen.length) { C.say(msg, "请先选择文件", "warn"); return; }
    var data = formWith(chosen);
    if (form.encoding.value) { data.append("encoding", form.encoding.value); }
    C.say(msg, "正在读取图层…", "busy");
    C.api("POST", "/territories/preview", data).then(function (res) {
      if (!res.ok) { C.say(msg, res.error, "error"); return; }
      ws.preview = res.body;
      renderPreview(res.body);
      var missing = res.body.missing_layers;
      C.say(msg, missing.length ? "缺少必需图层：" + missing.join("、") :
        "已找到 " + res.body.layers.length + " 个图层，请核对字段对应后导入", missing.length ? "error" : "ok");
      document.getElementById("upload-submit").disabled = missing.length > 0;
    }).catch(function () { C.say(msg, "无法连接服务器", "error"); });
  }

  var FIELD_NAMES = {code: "编码", name: "名称", level: "级别", parent_code: "上级编码",
    kind: "类型", "class": "道路等级", households: "户数", population: "人口", floors: "层数",
    height: "高度", use: "用途"};

  function renderPreview(p) {
    var box = document.getElementById("preview");
    C.clear(box);
    box.hidden = false;
    var table = el("table", "preview-layers");
    var head = table.createTHead().insertRow();
    ["图层", "文件", "要素数", "坐标系", "几何类型", "字段"].forEach(function (h) {
      head.appendChild(el("th", "", h));
    });
    var body = table.createTBody();
    p.layers.forEach(function (layer) {
      var tr = body.insertRow();
      tr.dataset.layer = layer.layer;
      [layer.layer, layer.file, String(layer.features),
       layer.crs || "未声明（请填写坐标系）", layer.geometry || "",
       layer.columns.join("、")].forEach(function (v, i) {
        var td = el("td", i === 3 && !layer.crs ? "warn" : "", v);
        tr.appendChild(td);
      });
    });
    box.appendChild(el("h3", "", "找到的图层"));
    box.appendChild(table);
    p.notes.forEach(function (n) { box.appendChild(el("p", "note", n)); });
    if (p.layers.some(function (l) { return l.needs_encoding; })) {
      box.appendChild(el("p", "warn", "有 Shapefile 没有 .cpg 编码文件：请在上方选择字符编码（中文数据多为 GBK），再点“预览图层”核对字段值。"));
    }
    /* The field map: each field of the contract a layer lacks, picked from its columns. */
    var maps = el("div", "field-map");
    maps.appendChild(el("h3", "", "字段对应（数据规范字段 ← 您的字段）"));
    var any = false;
    p.layers.forEach(function (layer) {
      var fields = layer.required.concat(layer.optional).filter(function (f) {
        return layer.columns.indexOf(f) < 0;
      });
      if (!fields.length || !layer.columns.length) { return; }
      any = true;
      var fs = el("fieldset", "");
      fs.appendChild(el("legend", "", layer.layer + "（" + layer.file + "）"));
      fields.forEach(function (f) {
        var id = "fm-" + layer.layer + "-" + f;
        var label = el("label", layer.missing.indexOf(f) >= 0 ? "required" : "");
        label.htmlFor = id;
        label.textContent = f + "（" + (FIELD_NAMES[f] || f) + "）" +
          (layer.missing.indexOf(f) >= 0 ? " 必填" : "");
        var select = el("select", "");
        select.id = id;
        select.dataset.layer = layer.layer;
        select.dataset.field = f;
        select.appendChild(el("option", "", "（不对应）"));
        select.options[0].value = "";
        layer.columns.forEach(function (c) {
          var sample = (layer.samples[c] || []).join(" / ");
          var o = el("option", "", c + (sample ? "：" + sample : ""));
          o.value = c;
          if (layer.suggested[f] === c) { o.selected = true; }
          select.appendChild(o);
        });
        var row = el("div", "fm-row");
        row.appendChild(label);
        row.appendChild(select);
        fs.appendChild(row);
      });
      maps.appendChild(fs);
    });
    if (any) { box.appendChild(maps); }
  }

  function fieldMap() {
    var out = {};
    document.querySelectorAll(".field-map select").forEach(function (s) {
      if (s.value) { out[s.dataset.layer + "." + s.value] = s.dataset.field; }
    });
    return out;
  }

  if (form) {
    var drop = document.getElementById("drop");
    var input = document.getElementById("upload-files");
    input.addEventListener("change", function () { setFiles(input.files); });
    ["dragenter", "dragover"].forEach(function (t) {
      drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      drop.addEventListener(t, function () { drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (e) {
      e.preventDefault();
      setFiles(e.dataTransfer.files);
    });
    document.getElementById("upload-preview").addEventListener("click", preview);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var msg = document.getElementById("upload-msg");
      var data = formWith(chosen);
      var map = fieldMap();
      if (Object.keys(map).length) { data.append("field_map", JSON.stringify(map)); }
      ["name", "encoding", "crs"].forEach(function (k) {
        if (form[k].value.trim()) { data.append(k, form[k].value.trim()); }
      });
      document.getElementById("upload-submit").disabled = true;
      C.say(msg, "正在导入（检查、修复、转换坐标）…", "busy");
      C.api("POST", "/territories", data).then(function (res) {
        document.getElementById("upload-submit").disabled = false;
        if (!res.ok) { C.say(msg, res.error, "error"); return; }
        ws.uploaded = res.body;
        var notes = (res.body.notes || []).join("；");
        C.say(msg, "已导入区域“" + res.body.name + "”（编号 " + res.body.id + "）" +
          (notes ? "。提示：" + notes : "") + "。正在刷新…", "ok");
        window.setTimeout(function () { window.location.reload(); }, notes ? 2500 : 800);
      }).catch(function () {
        document.getElementById("upload-submit").disabled = false;
        C.say(msg, "无法连接服务器", "error");
      });
    });
  }

  /* ---------------------------------------------------------------- jobs */
  function jobBox(section) { return section.querySelector(".job"); }

  function follow(section, job) {
    var box = jobBox(section), bar = box.querySelector(".job-bar");
    var stage = box.querySelector(".job-stage"), msg = box.querySelector(".job-msg");
    var cancel = box.querySelector(".job-cancel");
    box.hidden = false;
    cancel.hidden = false;
    cancel.disabled = false;
    C.say(msg, "");
    ws.jobs[job.id] = job;
    cancel.onclick = function () {
      cancel.disabled = true;
      C.api("DELETE", "/jobs/" + encodeURIComponent(job.id)).then(function (res) {
        if (!res.ok) { C.say(msg, res.error, "error"); cancel.disabled = false; }
      });
    };
    function show(j) {
      ws.jobs[j.id] = j;
      bar.value = j.progress || 0;
      bar.textContent = Math.round((j.progress || 0) * 100) + "%";
      stage.textContent = (STATE_NAMES[j.state] || j.state) + " · " + (j.stage || "") +
        " · " + Math.round((j.progress || 0) * 100) + "%";
    }
    function poll() {
      C.api("GET", "/jobs/" + encodeURIComponent(job.id)).then(function (res) {
        if (!res.ok) { C.say(msg, res.error, "error"); return; }
        var j = res.body;
        show(j);
        if (j.state === "done") {
          cancel.hidden = true;
          C.say(msg, "已生成草稿方案（编号 " + j.plan_id + "）。下方为质量报告；刷新页面可见新方案。", "ok");
          showReport(section, j.plan_id);
        } else if (j.state === "failed" || j.state === "cancelled") {
          cancel.hidden = true;
          C.say(msg, (j.state === "cancelled" ? "任务已取消，未保存任何结果。" : "任务失败：") +
            (j.state === "failed" ? (j.error || "") : ""), j.state === "failed" ? "error" : "warn");
        } else {
          window.setTimeout(poll, POLL_MS);
        }
      }).catch(function () { window.setTimeout(poll, POLL_MS * 4); });
    }
    show(job);
    poll();
  }

  function number(formEl, name) { return Number(formEl[name].value); }

  document.querySelectorAll(".partition-form").forEach(function (f) {
    var section = f.closest("section");
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var msg = jobBox(section).querySelector(".job-msg");
      var body = {min_households: number(f, "min_households"),
        max_households: number(f, "max_households"),
        target_households: number(f, "target_households"), seed: number(f, "seed"),
        service_radius_m: number(f, "service_radius_m"), estimate: f.estimate.value};
      if (f.note.value.trim()) { body.note = f.note.value.trim(); }
      jobBox(section).hidden = false;
      C.api("POST", "/territories/" + f.dataset.territory + "/plans", body).then(function (res) {
        if (!res.ok) { C.say(msg, res.error, "error"); return; }
        follow(section, res.body);
      });
    });
  });

  document.querySelectorAll(".redraw-form").forEach(function (f) {
    var section = f.closest("section");
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var msg = jobBox(section).querySelector(".job-msg");
      var data = formWith(Array.prototype.slice.call(f.files.files));
      data.append("plan_id", f.plan_id.value);
      if (f.note.value.trim()) { data.append("note", f.note.value.trim()); }
      jobBox(section).hidden = false;
      C.say(msg, "正在读取新数据…", "busy");
      C.api("POST", "/territories/" + f.dataset.territory + "/redraw", data).then(function (res) {
        if (!res.ok) { C.say(msg, res.error, "error"); return; }
        follow(section, res.body);
      });
    });
  });

  /* ---------------------------------------------------------------- publish, compare */
  document.querySelectorAll(".publish-form").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var button = f.querySelector("button");
      button.disabled = true;
      var body = f.note.value.trim() ? {note: f.note.value.trim()} : {};
      C.api("POST", "/plans/" + f.dataset.plan + "/publish", body).then(function (res) {
        if (!res.ok) {
          button.disabled = false;
          var out = f.querySelector(".msg") || f.appendChild(el("div", "msg"));
          out.setAttribute("role", "alert");
          C.say(out, res.error, "error");
          return;
        }
        window.location.reload();
      });
    });
  });

  document.querySelectorAll(".compare-form").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      if (f.a.value === f.b.value) { return; }
      window.location.assign("/plans/" + encodeURIComponent(f.a.value) + "/compare/" +
        encodeURIComponent(f.b.value));
    });
  });

  /* ---------------------------------------------------------------- report + map */
  function pct(v) { return v === undefined || v === null ? "—" : (v * 100).toFixed(1) + "%"; }

  var FLAG_NAMES = {below_min: "户数不足", above_max: "户数超标", noncontiguous: "不连通",
    single_building: "单栋建筑", isolated: "孤立", water: "水域", crosses_barrier: "跨越障碍"};

  function showReport(section, planId) {
    var box = section.querySelector(".report");
    var figures = box.querySelector(".report-figures"), mapBox = box.querySelector(".report-map");
    box.hidden = false;
    C.clear(figures);
    figures.appendChild(el("h3", "", "第 " + planId + " 号方案质量报告"));
    C.api("GET", "/plans/" + planId + "/report").then(function (res) {
      if (!res.ok) { figures.appendChild(el("p", "msg msg-error", res.error)); return; }
      var r = res.body, dl = el("dl", "");
      var rows = [["网格数", r.n_grids], ["综合网格 / 专属网格", r.n_comprehensive + " / " + r.n_dedicated],
        ["户数在范围内（常规网格）", pct(r.in_range_share)],
        ["户数在范围内（全部综合网格）", pct(r.in_range_share_all)],
        ["户数 最少 / 平均 / 最多", r.households_min + " / " + r.households_mean + " / " + r.households_max],
        ["紧凑度（平均 / 中位）", r.compactness_mean + " / " + r.compactness_median]];
      Object.keys(r).forEach(function (k) {
        if (/barrier/.test(k) && typeof r[k] === "number") {
          rows.push(["边界沿道路河流比例（" + k + "）", pct(r[k])]);
        }
      });
      rows.forEach(function (row) {
        dl.appendChild(el("dt", "", row[0]));
        dl.appendChild(el("dd", "", row[1]));
      });
      figures.appendChild(dl);
      var flagged = r.flagged || [];
      figures.appendChild(el("h4", "", "需关注的网格（" + flagged.length + "）"));
      var list = el("ul", "flagged");
      flagged.slice(0, 200).forEach(function (g) {
        var names = (g.flags || []).map(function (f) { return FLAG_NAMES[f] || f; }).join("、");
        list.appendChild(el("li", "", g.code + "：" + g.households + " 户 · " + names +
          (g.reason ? " · " + g.reason : "")));
      });
      figures.appendChild(list);
      var links = el("p", "");
      var a = el("a", "", "打开规划地图");
      a.href = "/plans/" + planId + "/map";
      var b = el("a", "", "编辑方案");
      b.href = "/plans/" + planId + "/edit";
      links.appendChild(a);
      links.appendChild(document.createTextNode(" · "));
      links.appendChild(b);
      figures.appendChild(links);
    });
    C.loadLeaflet().then(function (L) {
      if (box.map) { box.map.remove(); }
      var map = box.map = L.map(mapBox, {attributionControl: false});
      return C.api("GET", "/plans/" + planId + "/grids?simplify=5").then(function (res) {
        if (!res.ok) { return; }
        var layer = L.geoJSON(res.body, {style: function (f) {
          var flags = f.properties.flags || [];
          return {color: "#1c3d5a", weight: 1, fillOpacity: 0.35,
                  fillColor: flags.length ? "#e4572e" : "#4f9d69"};
        }, onEachFeature: function (f, l) {
          l.bindTooltip(C.esc((f.properties.name || f.properties.code) + " · " +
            f.properties.households + " 户"));
        }}).addTo(map);
        if (layer.getBounds().isValid()) { map.fitBounds(layer.getBounds()); }
        ws.reportGrids = res.body.features.length;
      });
    });
  }

  document.querySelectorAll(".report-btn").forEach(function (b) {
    b.addEventListener("click", function () { showReport(b.closest("section"), b.dataset.plan); });
  });

  ws.ready = true;
})();
