/* Counter console: the officer's buttons for one counter. The PIN is sent once, to log in; the
   actions carry the session token the server gave back (kept for this tab only). */
"use strict";

(function () {
  var h = WK.h, $ = WK.$;
  var counter = Number(location.pathname.split("/").pop());
  var key = "wk-counter-" + counter;
  var token = sessionStorage.getItem(key + "-token"), officer = sessionStorage.getItem(key + "-officer") || "";
  var info = null, current = null, live = null, serviceNames = {};

  function headers() {
    var out = { "Authorization": "Bearer " + token };
    if (officer) out["X-Officer"] = encodeURIComponent(officer);
    return out;
  }

  function say(text, good) { var m = $("msg"); m.textContent = text || ""; m.className = "msg " + (good ? "good" : "bad"); }

  function loggedOut(message) {
    token = null;
    sessionStorage.removeItem(key + "-token");
    WK.show($("desk"), false);
    WK.show($("login"), true);
    $("login-msg").textContent = message || "";
    if (live) { live.close(); live = null; }
  }

  function load() {
    return WK.api("GET", "/api/counters/" + counter, undefined, headers()).then(function (data) {
      info = data;
      $("title").textContent = data.name;
      document.title = data.name;
      $("officer").textContent = officer ? "Cán bộ: " + officer : "";
      var select = WK.clear($("transfer-to"));
      data.services.forEach(function (s) { serviceNames[s.code] = s.name; select.appendChild(h("option", { value: s.code, text: s.name })); });
      WK.show($("login"), false);
      WK.show($("desk"), true);
      render(data.ticket, data.waiting, data.held);
      if (!live) live = WK.live({ snapshot: onState, state: onState });
    }, function (err) {
      if (err.status === 401 || err.status === 429 || err.status === 404) loggedOut(err.message);
      else say(err.message, false);
    });
  }

  function onState(s) {
    if (!info) return;
    var mine = null;
    s.counters.forEach(function (c) { if (c.number === counter) mine = c.ticket; });
    render(mine, s.waiting.filter(function (t) { return info.serves.indexOf(t.service) >= 0; }), s.held);
  }

  function render(ticket, waiting, held) {
    current = ticket;
    $("cur-number").textContent = ticket ? ticket.number : "—";
    tickMeta();
    var body = WK.clear($("waiting"));
    $("waiting-count").textContent = String(waiting.length);
    waiting.forEach(function (t) {
      body.appendChild(h("tr", { dataset: { number: t.number } }, h("td", { text: t.number + (t.priority ? " ★" : "") }),
        h("td", { text: serviceNames[t.service] || t.service }), h("td", { text: WK.minutesSince(t.arrived_at) + " phút" }),
        h("td", null, h("button", { type: "button", class: "secondary", onclick: function () { $("call-ticket").value = t.number; $("call-reason").focus(); } }, "Chọn"))));
    });
    var hb = WK.clear($("held"));
    held.forEach(function (t) {
      hb.appendChild(h("tr", null, h("td", { text: t.number }), h("td", { text: serviceNames[t.service] || t.service }),
        h("td", null, h("button", { type: "button", class: "secondary", onclick: function () { act("return", { ticket: t.number }); } }, "Đưa lại hàng chờ"))));
    });
  }

  function tickMeta() {
    var t = current;
    if (!t) { $("cur-meta").textContent = "Chưa gọi số nào."; return; }
    var stateText = t.state === "serving" ? "Đang phục vụ " + WK.duration(t.serving_at) : "Đã gọi " + WK.duration(t.last_called_at || t.called_at) + " trước";
    $("cur-meta").textContent = (serviceNames[t.service] || t.service || "") + " · Đã chờ " + WK.minutesSince(t.arrived_at) +
      " phút · " + stateText + (t.recalls ? " · gọi lại " + t.recalls + " lần" : "");
  }

  function act(action, body) {
    if (action === "transfer") body = { service: $("transfer-to").value };
    if (action === "call") body = { ticket: $("call-ticket").value.trim().toUpperCase(), reason: $("call-reason").value };
    WK.api("POST", "/api/counters/" + counter + "/" + action, body || {}, headers()).then(function (res) {
      var text = res.note || (res.ticket ? "Số " + res.ticket.number + ": " + ({ called: "đã gọi", serving: "đang phục vụ" }[res.ticket.state] || res.ticket.state)
        : res.closed ? "Số " + res.closed.number + " đã xử lý xong." : "Đã thực hiện.");
      say(text, true);
      if (action === "call") { $("call-ticket").value = ""; $("call-reason").value = ""; }
      load();
    }, function (err) {
      if (err.status === 401 || err.status === 429) loggedOut(err.message);
      else say(err.message, false);
    });
  }

  document.querySelectorAll("[data-action]").forEach(function (b) {
    b.addEventListener("click", function () { act(b.dataset.action); });
  });
  // Reprint on the kiosk's printer: the current ticket, or the number typed in the call field.
  $("reprint").addEventListener("click", function () {
    var typed = $("call-ticket").value.trim().toUpperCase();
    WK.api("POST", "/api/printer/counters/" + counter + "/reprint", typed ? { ticket: typed } : {}, headers()).then(function (res) {
      say(res.note, true);
      // The same layout as the paper, so the officer sees what the resident will get.
      $("reprint-preview").src = "/api/tickets/" + encodeURIComponent(res.ticket.id) + "/ticket.png";
      $("reprint-preview").hidden = false;
    }, function (err) {
      if (err.status === 401 || err.status === 429) loggedOut(err.message);
      else say(err.message, false);
    });
  });
  $("logout").addEventListener("click", function () {
    if (token) WK.api("POST", "/api/counters/" + counter + "/logout", {}, headers()).catch(function () {});
    loggedOut("");
  });
  $("login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var pin = $("pin").value;
    officer = $("officer-name").value.trim();
    $("pin").value = "";
    WK.api("POST", "/api/counters/" + counter + "/login", { pin: pin, officer: officer || null }).then(function (res) {
      token = res.token;
      sessionStorage.setItem(key + "-token", token);
      sessionStorage.setItem(key + "-officer", officer);
      load();
    }, function (err) { loggedOut(err.message); });
  });
  $("title").textContent = "Quầy " + counter;
  WK.startClock($("clock"), null, true);
  setInterval(tickMeta, 1000);
  if (token) load(); else loggedOut("");
})();
