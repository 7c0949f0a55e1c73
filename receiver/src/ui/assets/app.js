// alertgate dashboard. Everything that came from an alert is written with textContent, never
// parsed as markup: alert text stays text.
"use strict";
(function () {
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var rows = {}; // message id -> row element
  var source = null;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function api(path, options) {
    options = options || {};
    options.credentials = "same-origin";
    options.headers = options.headers || {};
    if (options.method === "POST") {
      options.headers["x-csrf-token"] = csrf;
      options.headers["content-type"] = "application/json";
      if (options.body === undefined) options.body = "{}";
    }
    return fetch(path, options).then(function (r) {
      if (r.status === 401) { location.reload(); throw new Error("signed out"); }
      return r.json().then(function (body) { return { status: r.status, body: body }; });
    });
  }
  function orderText(o) {
    var t = o.side + " " + o.quantity + " " + o.symbol + " " + o.order_type;
    if (o.limit_price) t += " @ " + o.limit_price;
    return t;
  }
  function fillText(o) {
    var t = o.status;
    if (o.filled_quantity && o.filled_quantity !== "0") {
      t += " " + o.filled_quantity + (o.average_price ? " @ " + o.average_price : "");
    }
    return t;
  }

  // Tabs.
  function show(tab) {
    document.getElementById("detail").hidden = true;
    ["timeline", "positions", "controls"].forEach(function (t) {
      document.getElementById("tab-" + t).hidden = t !== tab;
    });
    document.querySelectorAll("nav button").forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-tab") === tab);
    });
    if (tab === "positions") loadPositions();
    if (tab === "controls") loadControls();
  }
  document.querySelectorAll("nav button").forEach(function (b) {
    b.addEventListener("click", function () { show(b.getAttribute("data-tab")); });
  });

  // Timeline over server-sent events.
  function renderRow(m) {
    var tr = rows[m.id];
    if (!tr) {
      tr = el("tr");
      tr.setAttribute("data-id", m.id);
      tr.tabIndex = 0;
      tr.addEventListener("click", function () { openDetail(m.id); });
      rows[m.id] = tr;
    }
    tr.setAttribute("data-recorded", m.recorded_at || "");
    tr.setAttribute("data-outcome", m.outcome);
    tr.textContent = "";
    var when = el("td", (m.recorded_at || "").replace("T", " ").replace("Z", ""), "time");
    var alert = el("td");
    alert.appendChild(el("div", [m.action, (m.symbols || [])[0]].filter(Boolean).join(" "), "what"));
    var meta = [m.account, m.strategy].filter(Boolean).join(" · ");
    if (meta) alert.appendChild(el("div", meta, "muted"));
    if (m.comment) alert.appendChild(el("div", m.comment, "comment"));
    var outcome = el("td");
    outcome.appendChild(el("span", m.outcome, "badge " + m.outcome));
    if (m.reason) outcome.appendChild(el("div", m.reason, "muted reason"));
    var orders = el("td");
    (m.orders || []).forEach(function (o) {
      orders.appendChild(el("div", orderText(o) + " → " + fillText(o), "order"));
    });
    [when, alert, outcome, orders].forEach(function (c) { tr.appendChild(c); });
    return tr;
  }
  function placeRow(tr) {
    var body = document.querySelector("#timeline tbody");
    var key = tr.getAttribute("data-recorded");
    var before = null;
    for (var i = 0; i < body.children.length; i++) {
      var other = body.children[i];
      if (other !== tr && other.getAttribute("data-recorded") <= key) { before = other; break; }
    }
    if (before !== tr.nextSibling || tr.parentNode !== body) body.insertBefore(tr, before);
    document.getElementById("timeline-empty").hidden = body.children.length > 0;
  }
  function connect() {
    if (source) source.close();
    rows = {};
    document.querySelector("#timeline tbody").textContent = "";
    var params = new URLSearchParams(new FormData(document.getElementById("filters")));
    source = new EventSource("/ui/api/events?" + params.toString());
    var live = document.getElementById("live");
    source.onopen = function () { live.textContent = "live"; live.className = "live on"; };
    source.onerror = function () { live.textContent = "reconnecting"; live.className = "live off"; };
    source.addEventListener("message", function (e) { placeRow(renderRow(JSON.parse(e.data))); });
    source.addEventListener("signed_out", function () { source.close(); location.reload(); });
  }
  document.getElementById("filters").addEventListener("submit", function (e) {
    e.preventDefault();
    connect();
  });

  // Detail.
  function fact(dl, name, value) {
    dl.appendChild(el("dt", name));
    dl.appendChild(el("dd", value === null || value === undefined ? "—" : value));
  }
  function openDetail(id) {
    api("/ui/api/messages/" + encodeURIComponent(id)).then(function (r) {
      if (r.status !== 200) return;
      var d = r.body, m = d.row;
      ["timeline", "positions", "controls"].forEach(function (t) {
        document.getElementById("tab-" + t).hidden = true;
      });
      document.getElementById("detail").hidden = false;
      document.getElementById("detail-id").textContent = m.id;
      var dl = document.getElementById("detail-facts");
      dl.textContent = "";
      fact(dl, "Account", m.account);
      fact(dl, "Strategy", m.strategy);
      fact(dl, "Symbols", (m.symbols || []).join(", "));
      fact(dl, "Comment", m.comment);
      fact(dl, "Received by the relay", d.received_at);
      fact(dl, "Journaled", m.recorded_at);
      fact(dl, "Last change", m.updated_at);
      fact(dl, "Idempotency key", d.idempotency_key);
      fact(dl, "Source IP", d.source_ip);
      var risk = document.getElementById("detail-risk");
      risk.textContent = "";
      risk.appendChild(el("span", d.risk.outcome, "badge " + d.risk.outcome));
      risk.appendChild(el("span", " " + d.risk.decision + (d.risk.reason ? ": " + d.risk.reason : "")));
      var body = document.querySelector("#detail-orders tbody");
      body.textContent = "";
      d.orders.forEach(function (o) {
        var tr = el("tr");
        [o.client_order_id, orderText(o) + " " + o.tif, o.status,
          o.filled_quantity + (o.average_price ? " @ " + o.average_price : ""),
          o.venue + (o.venue_order_id ? " " + o.venue_order_id : ""), o.error || ""
        ].forEach(function (v) { tr.appendChild(el("td", v)); });
        body.appendChild(tr);
      });
      if (!d.orders.length) body.appendChild(el("tr")).appendChild(el("td", "No orders."));
      document.getElementById("detail-venue-note").textContent = d.venue_note;
      document.getElementById("detail-legs").textContent = JSON.stringify(d.normalized, null, 2);
      document.getElementById("detail-alert").textContent = JSON.stringify(d.alert, null, 2);
    });
  }
  document.getElementById("detail-close").addEventListener("click", function () { show("timeline"); });

  // Positions.
  function loadPositions() {
    api("/ui/api/positions").then(function (r) {
      var body = document.querySelector("#positions tbody");
      body.textContent = "";
      (r.body.positions || []).forEach(function (p) {
        var tr = el("tr");
        if (p.drift && p.drift !== "0") tr.className = "drift";
        [p.account, p.venue, p.symbol, p.position, p.venue_position, p.drift, p.reconciled_at]
          .forEach(function (v) { tr.appendChild(el("td", v === null ? "—" : v)); });
        body.appendChild(tr);
      });
      document.getElementById("positions-empty").hidden = body.children.length > 0;
    });
  }

  // Controls.
  function showKill(k) {
    var state = document.getElementById("kill-state");
    var button = document.getElementById("kill-toggle");
    var message = document.getElementById("kill-message");
    if (!k.configured) {
      state.textContent = "not configured";
      button.disabled = true;
      button.textContent = "unavailable";
      message.textContent = "Set [risk] kill_switch_file in the receiver's config to use it.";
      return;
    }
    state.textContent = k.on ? "ON: every order is rejected" : "off";
    state.className = k.on ? "on" : "off";
    button.disabled = false;
    button.setAttribute("data-on", k.on ? "true" : "false");
    button.textContent = k.on ? "Turn the kill switch off" : "Turn the kill switch on";
    message.textContent = "";
  }
  document.getElementById("kill-toggle").addEventListener("click", function () {
    var button = this;
    var on = button.getAttribute("data-on") !== "true";
    if (on === false || confirmStop()) {
      button.disabled = true;
      api("/ui/api/kill-switch", { method: "POST", body: JSON.stringify({ on: on }) }).then(function (r) {
        if (r.status === 200) showKill(r.body);
        else document.getElementById("kill-message").textContent = r.body.message || r.body.error;
      });
    }
  });
  function confirmStop() { return true; }
  function loadControls() {
    api("/ui/api/kill-switch").then(function (r) { if (r.status === 200) showKill(r.body); });
    api("/ui/api/strategies").then(function (r) {
      var message = document.getElementById("strategies-message");
      var body = document.querySelector("#strategies tbody");
      body.textContent = "";
      if (r.status === 404) { message.textContent = "Strategy switches are not available on this receiver."; return; }
      var list = r.body.strategies || [];
      message.textContent = list.length ? "" : "No strategy seen yet.";
      list.forEach(function (s) {
        var tr = el("tr");
        tr.appendChild(el("td", s.name));
        tr.appendChild(el("td", s.enabled ? "on" : "off", s.enabled ? "on" : "off"));
        var td = el("td");
        var b = el("button", s.enabled ? "Disable" : "Enable");
        b.type = "button";
        b.addEventListener("click", function () {
          var verb = s.enabled ? "disable" : "enable";
          api("/ui/api/strategies/" + encodeURIComponent(s.name) + "/" + verb, { method: "POST" }).then(function (r2) {
            if (r2.status === 404) message.textContent = "Strategy switches are not available on this receiver.";
            else loadControls();
          });
        });
        td.appendChild(b);
        tr.appendChild(td);
        body.appendChild(tr);
      });
    });
  }

  connect();
})();
