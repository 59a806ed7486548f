/* Kiosk touch screen: take a ticket, rate the service, send feedback, call an officer. */
"use strict";

(function () {
  var h = WK.h, $ = WK.$;
  var config = null, group = null, service = null, entry = "", rateTicket = null, kind = "phan-anh";
  var idleTimer = null, checkinTimer = null, suggested = null;
  var session = null;  // the ID-card session this screen claimed: only a ticket carrying it is linked
  var SCREENS = ["s-start", "s-services", "s-priority", "s-ticket", "s-rate-number", "s-rate-score", "s-feedback", "s-thanks"];

  function go(id) {
    SCREENS.forEach(function (s) { WK.show($(s), s === id); });
    document.body.dataset.screen = id;
    window.scrollTo(0, 0);
  }

  function endSession() {
    // Idle reset, "Không phải tôi": the agent drops the link, so the next ticket is anonymous.
    if (session) WK.api("DELETE", "/api/checkin/session/" + encodeURIComponent(session)).catch(function () {});
    session = suggested = null;
    WK.show($("identity"), false);
  }

  function reset() {
    endSession();
    group = service = rateTicket = suggested = null;
    entry = "";
    $("entry").textContent = "";
    $("fb-text").value = "";
    $("fb-phone").value = "";
    hideModal();
    go("s-start");
    loadServices();
  }

  function touched() {
    clearTimeout(idleTimer);
    var seconds = config ? config.idle_reset_seconds : 60;
    idleTimer = setTimeout(function () {
      if (document.body.dataset.screen !== "s-start" || !$("modal").hidden || session) reset();
      else touched();
    }, seconds * 1000);
  }

  function modal(text) { $("modal-text").textContent = text; WK.show($("modal"), true); }
  function hideModal() { WK.show($("modal"), false); }

  function waitText(minutes) {
    if (!minutes) return "Không phải chờ";
    if (minutes < 60) return "khoảng " + minutes + " phút";
    return "khoảng " + Math.floor(minutes / 60) + " giờ " + (minutes % 60) + " phút";
  }

  function loadServices() {
    return WK.api("GET", "/api/services").then(function (data) {
      config = data;
      $("office").textContent = data.office.name;
      renderGroups();
      renderKeypad();
      renderKinds();
    }, function (err) { modal(err.message); });
  }

  function renderGroups() {
    var box = WK.clear($("groups"));
    config.groups.forEach(function (g) {
      var waiting = g.services.reduce(function (n, s) { return n + s.waiting; }, 0);
      box.appendChild(h("button", { type: "button", class: "tile", dataset: { group: g.code },
        onclick: function () { openGroup(g); } }, g.name, h("small", { text: waiting + " người đang chờ" })));
    });
  }

  function openGroup(g) {
    group = g;
    $("group-title").textContent = g.name;
    var box = WK.clear($("services"));
    g.services.forEach(function (s) {
      var closed = config.enforce_hours && !s.open;
      var detail = closed ? "Ngoài giờ làm việc (hôm nay: " + s.hours_today + ")"
        : s.waiting + " người đang chờ · chờ " + waitText(s.estimated_wait_minutes);
      box.appendChild(h("button", { type: "button", class: "tile" + (closed ? " closed" : ""), dataset: { service: s.code },
        onclick: function () { openPriority(s); } }, s.name, h("small", { text: detail })));
    });
    go("s-services");
  }

  function openPriority(s) {
    service = s;
    $("priority-service").textContent = "Thủ tục: " + s.name;
    var box = WK.clear($("priorities"));
    box.appendChild(h("button", { type: "button", class: "tile ok", dataset: { priority: "" },
      onclick: function () { take(null); } }, "Không — lấy số thường"));
    // An ID card just shown to the camera may make the resident eligible (người cao tuổi):
    // offer that class first, in the green of the default choice.
    var classes = config.priority_classes.slice().sort(function (a, b) {
      return (b.code === suggested) - (a.code === suggested);
    });
    classes.forEach(function (p) {
      var isSuggested = p.code === suggested;
      box.insertBefore(h("button", { type: "button", class: "tile " + (isSuggested ? "ok" : "secondary"),
        dataset: { priority: p.code, suggested: String(isSuggested) }, onclick: function () { take(p); } },
        isSuggested ? "Đề xuất: " + p.name : p.name), isSuggested ? box.firstChild : null);
    });
    go("s-priority");
  }

  // The rating API takes the ticket's id (unguessable), not its number: this screen remembers the ids
  // of the tickets it issued, so a resident can still rate by typing the number printed on the ticket.
  var ISSUED_KEY = "wk-issued", ISSUED_MAX = 3000;

  function rememberIssued(t) {
    var issued = [];
    try { issued = JSON.parse(localStorage.getItem(ISSUED_KEY) || "[]"); } catch (e) { issued = []; }
    issued.push([t.number, t.id, Date.now()]);
    localStorage.setItem(ISSUED_KEY, JSON.stringify(issued.slice(-ISSUED_MAX)));
  }

  function issuedId(number) {
    var issued = [], dayAgo = Date.now() - 20 * 3600 * 1000;
    try { issued = JSON.parse(localStorage.getItem(ISSUED_KEY) || "[]"); } catch (e) { issued = []; }
    for (var i = issued.length - 1; i >= 0; i--) {
      if (issued[i][0] === number && issued[i][2] > dayAgo) return issued[i][1];
    }
    return null;
  }

  function take(priority) {
    var body = { service: service.code, priority: priority ? priority.code : null, checkin_session: session };
    session = suggested = null;  // the ticket ends the ID-card session, linked or not
    WK.show($("identity"), false);
    WK.api("POST", "/api/tickets", body).then(function (t) {
      rememberIssued(t);
      $("t-number").textContent = t.number;
      $("t-service").textContent = t.service_name;
      $("t-ahead").textContent = String(t.ahead);
      $("t-wait").textContent = waitText(t.estimated_wait_minutes);
      WK.clear($("t-priority"));
      if (priority) $("t-priority").appendChild(h("span", { class: "priority", text: "Ưu tiên: " + priority.name }));
      $("t-qr").src = t.qr;
      go("s-ticket");
      printNotice(t.id);
    }, function (err) { modal(err.message); });
  }

  // The paper ticket: when the printer cannot print it (out of paper, offline), say so plainly and
  // show the QR large, so the resident can photograph it or show the screen; the number stands.
  function printNotice(ticketId) {
    var box = $("t-print");
    box.hidden = true;
    $("t-qr").classList.remove("large");
    WK.api("GET", "/api/printer/tickets/" + encodeURIComponent(ticketId) + "?wait=4").then(function (p) {
      if (!p || !p.message || p.state === "printed" || $("s-ticket").hidden) return;
      box.textContent = p.message;
      box.hidden = false;
      $("t-qr").classList.add("large");
    }, function () { /* no printer answer: the ticket on screen is all there is, as before */ });
  }

  function renderKeypad() {
    var letters = [];
    config.groups.forEach(function (g) { g.services.forEach(function (s) {
      s.prefix.split("").forEach(function (c) { if (letters.indexOf(c) < 0) letters.push(c); });
    }); });
    letters.sort();
    function key(k, cls) {
      return h("button", { type: "button", class: cls, dataset: { key: k },
        onclick: function () { if (entry.length < 8) { entry += k; $("entry").textContent = entry; } } }, k);
    }
    var box = WK.clear($("keypad"));
    letters.forEach(function (k) { box.appendChild(key(k, "secondary")); });
    var digits = WK.clear($("digits"));
    ["1", "2", "3", "4", "5", "6", "7", "8", "9"].forEach(function (k) { digits.appendChild(key(k, "")); });
    digits.appendChild(h("button", { type: "button", class: "danger", dataset: { key: "del" },
      onclick: function () { entry = entry.slice(0, -1); $("entry").textContent = entry; } }, "Xóa"));
    digits.appendChild(key("0", ""));
  }

  function openScale() {
    if (!/^[A-Z]{1,2}\d{1,4}$/.test(entry)) { modal("Xin nhập số thứ tự gồm chữ cái và chữ số, ví dụ A012."); return; }
    var digits = entry.replace(/^[A-Z]+/, "");
    rateTicket = entry.replace(/\d+$/, "") + ("000" + digits).slice(-Math.max(3, digits.length));
    if (!issuedId(rateTicket)) { modal("Không tìm thấy số " + rateTicket + " được lấy tại máy này hôm nay."); return; }
    $("rate-for").textContent = "Số thứ tự " + rateTicket;
    var levels = config.rating.levels, box = WK.clear($("scale"));
    box.style.setProperty("--levels", String(levels));
    config.rating.labels.forEach(function (label, i) {
      var score = i + 1, tone = levels === 5 ? score : Math.round(1 + (i * 4) / (levels - 1));
      box.appendChild(h("button", { type: "button", class: "s" + tone, dataset: { score: String(score) },
        onclick: function () { rate(score, label); } }, h("b", { text: String(score) }), label));
    });
    go("s-rate-score");
  }

  function rate(score, label) {
    WK.api("POST", "/api/tickets/" + encodeURIComponent(issuedId(rateTicket) || "") + "/rating", { score: score }).then(function () {
      thanks("Xin cảm ơn quý vị!", "Đánh giá «" + label + "» cho số " + rateTicket + " đã được ghi nhận.", null);
    }, function (err) { modal(err.message); });
  }

  function renderKinds() {
    var box = WK.clear($("kinds"));
    Object.keys(config.feedback_kinds).forEach(function (code) {
      box.appendChild(h("button", { type: "button", class: code === kind ? "" : "secondary", dataset: { kind: code },
        "aria-pressed": String(code === kind), onclick: function () { kind = code; renderKinds(); } },
        config.feedback_kinds[code]));
    });
  }

  function sendFeedback() {
    var body = { kind: kind, text: $("fb-text").value, phone: $("fb-phone").value || null };
    WK.api("POST", "/api/feedback", body).then(function (fb) {
      thanks("Xin cảm ơn quý vị!", fb.kind_name + " của quý vị đã được gửi tới Ủy ban. " +
        (fb.has_phone ? "Cán bộ sẽ liên hệ lại theo số điện thoại quý vị để lại." : ""), fb.text);
    }, function (err) { modal(err.message); });
  }

  function thanks(title, text, echo) {
    $("thanks-title").textContent = title;
    $("thanks-text").textContent = text;
    $("thanks-echo").textContent = echo || "";
    WK.show($("thanks-echo"), !!echo);
    go("s-thanks");
  }

  function callOfficer() {
    WK.api("POST", "/api/calls", {}).then(function () {
      thanks("Đang gọi cán bộ…", "Xin quý vị vui lòng chờ trong giây lát.", null);
    }, function (err) {
      modal(err.code === "calls_unavailable" ? err.message : "Chưa gọi được cán bộ. " + err.message);
    });
  }

  function showCheckin(data, accepted) {
    var box = $("checkin");
    box.className = "notice checkin " + (accepted ? "good" : "bad");
    $("checkin-title").textContent = accepted ? "Đã nhận mã QR" : "Chưa nhận được mã QR";
    $("checkin-text").textContent = (data.data && data.data.message) ||
      (accepted ? "Mời quý vị chờ gọi số." : "Xin quý vị hỏi cán bộ hướng dẫn.");
    WK.show(box, true);
    clearTimeout(checkinTimer);
    checkinTimer = setTimeout(function () { WK.show(box, false); }, 12000);
    touched();
  }

  function identified() {
    // The camera read an ID card: claim the session (masked greeting, suggested priority); the ticket
    // taken next on this screen carries it and is linked to the card's keyed hash on the agent. A new
    // card replaces the previous resident's session there, so forget ours first.
    session = suggested = null;
    WK.api("POST", "/api/checkin/session").then(function (id) {
      session = id.session;
      suggested = id.suggested_priority || null;
      $("identity-greet").textContent = "Xin chào " + (id.name_masked || "ông/bà") + "!";
      $("identity-text").textContent = "Thẻ số " + id.id_masked + ". Mời ông/bà chọn dịch vụ trên màn hình.";
      WK.show($("identity"), true);
      WK.show($("checkin"), false);
      if (document.body.dataset.screen === "s-thanks") go("s-start");  // the start screen lists the groups
      touched();
    }, function () { WK.show($("identity"), false); });
  }

  function fresh(envelope) { // a replayed check-in from minutes ago is no news to the person in front
    return !envelope.at || WK.now().getTime() - new Date(envelope.at).getTime() < 60000;
  }

  document.querySelectorAll("[data-back]").forEach(function (b) {
    b.addEventListener("click", function () { go(b.dataset.back); });
  });
  $("go-rate").addEventListener("click", function () { entry = ""; $("entry").textContent = ""; go("s-rate-number"); });
  $("go-feedback").addEventListener("click", function () { go("s-feedback"); });
  $("call-officer").addEventListener("click", callOfficer);
  $("rate-next").addEventListener("click", openScale);
  $("fb-send").addEventListener("click", sendFeedback);
  $("ticket-done").addEventListener("click", reset);
  $("not-me").addEventListener("click", function () { endSession(); go("s-start"); touched(); });
  $("thanks-done").addEventListener("click", reset);
  $("modal-ok").addEventListener("click", hideModal);
  ["pointerdown", "keydown", "input"].forEach(function (t) { document.addEventListener(t, touched, { passive: true }); });

  WK.startClock($("clock"), $("date"), false);
  WK.live({
    "checkin.accepted": function (e) {
      if (!fresh(e)) return;
      if (e.data && e.data.kind === "id_card") identified(); else showCheckin(e, true);
    },
    "checkin.rejected": function (e) { if (fresh(e)) showCheckin(e, false); },
    state: function () { if (document.body.dataset.screen === "s-start" && config) loadServices(); }
  });
  reset();
  touched();
})();
