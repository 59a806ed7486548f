/* Display board: the current call per counter (blinking when new), recent calls, waiting counts.
   Everything comes from the live stream; the server computes the state, the board only draws it. */
"use strict";

(function () {
  var h = WK.h, $ = WK.$;
  var state = null, tiles = {}, freshTimers = {}, lastCallSeq = 0;
  var STATES = { called: "Mời đến quầy", serving: "Đang phục vụ" };

  function counterTile(c) {
    var tile = tiles[c.number];
    if (!tile) {
      tile = h("div", { class: "counter-tile", dataset: { counter: String(c.number) } },
        h("div", { class: "cname", text: "Quầy " + c.number }), h("div", { class: "cnum" }), h("div", { class: "cstate" }));
      tiles[c.number] = tile;
    }
    var t = c.ticket;
    tile.querySelector(".cnum").textContent = t ? t.number : "—";
    tile.querySelector(".cstate").textContent = t ? (STATES[t.state] || "") : "Chưa gọi số";
    tile.classList.toggle("idle", !t);
    return tile;
  }

  function draw() {
    if (!state) return;
    var box = $("counters");
    state.counters.forEach(function (c) { var t = counterTile(c); if (t.parentNode !== box) box.appendChild(t); });
    var recent = WK.clear($("recent"));
    state.last_calls.forEach(function (call) {
      recent.appendChild(h("li", { dataset: { seq: String(call.seq) } }, h("span", { text: call.number }),
        h("span", { class: "to", text: "→ Quầy " + call.counter })));
    });
    // Only services with people waiting: twenty lines of zeros would hide the ones that matter.
    var waiting = WK.clear($("waiting")), busy = state.services.filter(function (s) { return s.waiting > 0; });
    busy.forEach(function (s) {
      waiting.appendChild(h("li", { dataset: { service: s.code } }, h("span", { text: s.name }), h("b", { text: String(s.waiting) })));
    });
    WK.show($("nobody"), busy.length === 0);
    if (!$("announce").textContent && state.last_calls.length) $("announce").textContent = state.last_calls[0].announcement || "";
  }

  function flash(counter) {
    var tile = tiles[counter];
    if (!tile) return;
    tile.classList.remove("fresh");
    void tile.offsetWidth; // restart the animation for a recall of the same number
    tile.classList.add("fresh");
    clearTimeout(freshTimers[counter]);
    freshTimers[counter] = setTimeout(function () { tile.classList.remove("fresh"); }, 10000);
  }

  function onCall(envelope) {
    var d = envelope.data;
    if (envelope.seq <= lastCallSeq) return;
    lastCallSeq = envelope.seq;
    if (state) {
      state.counters.forEach(function (c) {
        if (c.number === d.counter) c.ticket = { number: d.number, state: "called" };
      });
      state.last_calls = [{ seq: envelope.seq, number: d.number, counter: d.counter, announcement: envelope.announcement }]
        .concat(state.last_calls.filter(function (c) { return c.seq !== envelope.seq; })).slice(0, state.last_calls.length || 8);
    }
    $("announce").textContent = envelope.announcement || ("Mời công dân có số thứ tự " + d.number + " đến quầy số " + d.counter);
    draw();
    flash(d.counter);
  }

  function onState(s) {
    state = s;
    if (s.last_calls.length && s.last_calls[0].seq > lastCallSeq && lastCallSeq > 0) {
      // Calls we did not see as events (a snapshot after a long outage): show the newest one.
      $("announce").textContent = s.last_calls[0].announcement || "";
    }
    if (s.last_calls.length) lastCallSeq = Math.max(lastCallSeq, s.last_calls[0].seq);
    draw();
  }

  WK.startClock($("clock"), $("date"), true);
  WK.api("GET", "/api/services").then(function (d) { $("office").textContent = d.office.name; }, function () {});
  WK.live({ snapshot: onState, state: onState, "ticket.called": onCall, "ticket.recalled": onCall });
})();
