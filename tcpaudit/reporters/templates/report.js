/* tcpaudit HTML report: sort, filter and search the matrix; download the embedded JSON.
   Plain DOM, no framework. It only reads attributes and writes text (never markup), so nothing from the
   report can become script. */
(function () {
  "use strict";
  var body = document.body;
  var dataNode = document.getElementById("tcpaudit-report");
  var report = null;
  try {
    report = JSON.parse(dataNode ? dataNode.textContent : "null");
  } catch (e) {
    body.setAttribute("data-json-error", String(e && e.message));
  }
  if (report && report.targets) body.setAttribute("data-json-targets", String(report.targets.length));

  var table = document.getElementById("mx");
  var tbody = table ? table.tBodies[0] : null;
  var emptyRow = document.getElementById("mx-empty");
  var rows = tbody ? Array.prototype.slice.call(tbody.querySelectorAll("tr[data-name]")) : [];
  rows.forEach(function (r, i) { r._order = i; });
  var headers = table ? Array.prototype.slice.call(table.tHead.rows[0].cells) : [];
  var byId = {};
  rows.forEach(function (r) { byId[r.id] = r; });

  function $(id) { return document.getElementById(id); }
  function val(el) { return el ? el.value : ""; }

  /* blocks: a host row followed by its namespace rows; they sort and show together */
  function blocks() {
    var out = [], index = {};
    rows.forEach(function (r) {
      var p = r.getAttribute("data-parent");
      if (p && index[p] !== undefined) {
        out[index[p]].children.push(r);
      } else {
        index[r.id] = out.length;
        out.push({ head: r, children: [] });
      }
    });
    return out;
  }

  var NUMERIC = { findings: 1, worst: 1 };
  function sortValue(r, key, col) {
    if (key === "name") return (r.getAttribute("data-name") || "").toLowerCase();
    if (key === "group") return r.getAttribute("data-group") || "";
    if (key === "status") return r.getAttribute("data-status") || "";
    if (key === "findings") return r.getAttribute("data-audited") === "1" ? +r.getAttribute("data-findings") : -1;
    if (key === "worst") return +r.getAttribute("data-worst");
    var cell = r.cells[col];
    if (!cell) return "";
    if (cell.hasAttribute("data-v")) return +cell.getAttribute("data-v");
    return (cell.textContent || "").trim().toLowerCase();
  }

  function sortBy(th) {
    var button = th.querySelector("button");
    var key = button.getAttribute("data-sort");
    var col = headers.indexOf(th);
    var numeric = NUMERIC[key] || key.charAt(0) === "r" && /^r\d+$/.test(key);
    var current = th.getAttribute("aria-sort");
    var dir = current ? (current === "ascending" ? -1 : 1) : (numeric ? -1 : 1);
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    function cmp(a, b) {
      var x = sortValue(a, key, col), y = sortValue(b, key, col);
      if (x < y) return -dir;
      if (x > y) return dir;
      return a._order - b._order;
    }
    var bs = blocks();
    bs.sort(function (a, b) { return cmp(a.head, b.head); });
    bs.forEach(function (b) {
      tbody.insertBefore(b.head, emptyRow);
      b.children.sort(cmp).forEach(function (c) { tbody.insertBefore(c, emptyRow); });
    });
  }

  headers.forEach(function (th) {
    var b = th.querySelector("button[data-sort]");
    if (b) b.addEventListener("click", function () { sortBy(th); });
  });

  function matches(r, f) {
    if (f.q && (r.getAttribute("data-search") || "").indexOf(f.q) < 0) return false;
    if (f.group && r.getAttribute("data-group") !== f.group) return false;
    var audited = r.getAttribute("data-audited") === "1";
    if (f.status === "audited" && !audited) return false;
    if (f.status === "unaudited" && audited) return false;
    if (f.sev === "none") {
      if (!audited || +r.getAttribute("data-findings") > 0) return false;
    } else if (f.sev !== "") {
      if (+r.getAttribute("data-worst") < +f.sev) return false;
    }
    if (f.rule && (" " + r.getAttribute("data-rules") + " ").indexOf(" " + f.rule + " ") < 0) return false;
    return true;
  }

  function ruleColumn(rule) {
    for (var i = 0; i < headers.length; i++) {
      var b = headers[i].querySelector("button");
      if (headers[i].classList.contains("rule") && b && b.textContent === rule) return i;
    }
    return -1;
  }

  function apply() {
    var f = {
      q: val($("f-q")).trim().toLowerCase(),
      group: val($("f-group")),
      sev: val($("f-sev")),
      rule: val($("f-rule")),
      status: val($("f-status"))
    };
    var shown = 0, hl = f.rule ? ruleColumn(f.rule) : -1;
    blocks().forEach(function (b) {
      var childShown = false;
      b.children.forEach(function (c) {
        var m = matches(c, f);
        c.hidden = !m;
        if (m) { shown++; childShown = true; }
      });
      var m = matches(b.head, f);
      if (m) shown++;
      b.head.hidden = !(m || childShown);
      b.head.classList.toggle("ctx", !m && childShown);
    });
    rows.forEach(function (r) {
      for (var i = 0; i < r.cells.length; i++) r.cells[i].classList.toggle("hl", i === hl);
    });
    if (emptyRow) emptyRow.hidden = shown > 0;
    var count = $("f-count");
    if (count) {
      count.textContent = shown === rows.length
        ? rows.length + " shown"
        : "showing " + shown + " of " + rows.length;
    }
  }

  ["f-q", "f-group", "f-sev", "f-rule", "f-status"].forEach(function (id) {
    var el = $(id);
    if (el) el.addEventListener(id === "f-q" ? "input" : "change", apply);
  });
  var reset = $("f-reset");
  if (reset) {
    reset.addEventListener("click", function () {
      ["f-q", "f-group", "f-sev", "f-rule", "f-status"].forEach(function (id) { var el = $(id); if (el) el.value = ""; });
      apply();
    });
  }
  /* a view can be linked: report.html#f:rule=TCP002&sev=2&group=web&q=db&status=unaudited&sort=findings&dir=desc */
  var FILTERS = { q: "f-q", group: "f-group", sev: "f-sev", rule: "f-rule", status: "f-status" };
  function fromHash() {
    if (location.hash.indexOf("#f:") !== 0) return;
    var params = new URLSearchParams(location.hash.slice(3));
    Object.keys(FILTERS).forEach(function (k) {
      var el = $(FILTERS[k]);
      if (el && params.has(k)) el.value = params.get(k);
    });
    var key = params.get("sort");
    if (key) {
      headers.forEach(function (th) {
        var b = th.querySelector("button[data-sort]");
        if (b && b.getAttribute("data-sort") === key) {
          var want = params.get("dir") === "asc" ? "ascending" : params.get("dir") === "desc" ? "descending" : "";
          /* sortBy flips from the current state: start from the opposite of the direction asked for */
          if (want) th.setAttribute("aria-sort", want === "ascending" ? "descending" : "ascending");
          else th.removeAttribute("aria-sort");
          sortBy(th);
        }
      });
    }
  }
  if (rows.length) {
    fromHash();
    apply();
  }

  /* a link to a target opens its details */
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    if (el && el.tagName === "DETAILS") el.open = true;
  }
  window.addEventListener("hashchange", function () {
    openTarget();
    if (rows.length && location.hash.indexOf("#f:") === 0) { fromHash(); apply(); }
  });
  openTarget();

  var dl = $("dl-json");
  if (dl) {
    if (!report) {
      dl.disabled = true;
    } else {
      dl.addEventListener("click", function () {
        var blob = new Blob([JSON.stringify(report, null, 2) + "\n"], { type: "application/json" });
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = "tcpaudit-report.json";
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
      });
    }
  }
  body.setAttribute("data-ready", "1");
})();
