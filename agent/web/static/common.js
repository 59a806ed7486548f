/* Shared by the kiosk, board and counter screens. Text is always set with textContent (never with
   HTML parsing), so nothing a resident types can become markup on any screen. */
"use strict";

var WK = (function () {
  var TZ = "Asia/Ho_Chi_Minh";
  var clockOffset = 0; // server time minus this device's time, from the live stream

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "class") el.className = value;
        else if (key === "text") el.textContent = value;
        else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), value);
        else if (key === "dataset") Object.keys(value).forEach(function (k) { el.dataset[k] = value[k]; });
        else el.setAttribute(key, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) child.forEach(function (c) { if (c) el.appendChild(c); });
      else el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return el;
  }

  function $(id) { return document.getElementById(id); }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  function show(el, visible) { el.hidden = !visible; }

  function api(method, path, body, headers) {
    var init = { method: method, headers: Object.assign({ "Accept": "application/json" }, headers || {}) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!res.ok) {
          var err = new Error((data && data.error) || "Hệ thống đang bận, xin thử lại sau.");
          err.code = (data && data.code) || "http_" + res.status;
          err.status = res.status;
          throw err;
        }
        return data;
      });
    }, function () {
      var err = new Error("Không kết nối được với hệ thống. Xin thử lại sau ít phút.");
      err.code = "offline";
      err.status = 0;
      throw err;
    });
  }

  function now() { return new Date(Date.now() + clockOffset); }

  function setServerNow(ms) { if (typeof ms === "number") clockOffset = ms - Date.now(); }

  var timeFmt = new Intl.DateTimeFormat("vi-VN", { timeZone: TZ, hour: "2-digit", minute: "2-digit", hour12: false });
  var secFmt = new Intl.DateTimeFormat("vi-VN", { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  var dateFmt = new Intl.DateTimeFormat("vi-VN", { timeZone: TZ, weekday: "long", day: "2-digit", month: "2-digit", year: "numeric" });

  function clockText(seconds) { return (seconds ? secFmt : timeFmt).format(now()); }
  function dateText() { return dateFmt.format(now()); }
  function timeOf(iso) { return iso ? timeFmt.format(new Date(iso)) : ""; }

  function startClock(timeEl, dateEl, seconds) {
    function tick() {
      timeEl.textContent = clockText(seconds);
      if (dateEl) dateEl.textContent = dateText();
    }
    tick();
    setInterval(tick, 1000);
  }

  function minutesSince(iso) {
    if (!iso) return 0;
    return Math.max(0, Math.floor((now().getTime() - new Date(iso).getTime()) / 60000));
  }

  function duration(iso) {
    if (!iso) return "";
    var s = Math.max(0, Math.floor((now().getTime() - new Date(iso).getTime()) / 1000));
    var m = Math.floor(s / 60);
    return m >= 60 ? Math.floor(m / 60) + " giờ " + (m % 60) + " phút" : m + " phút " + (s % 60) + " giây";
  }

  /* The live stream (server-sent events). Resumes from the last seq it saw; if the browser gives
     up on the stream (or it goes silent), it opens a new one with ?after=SEQ. */
  var NAMES = ["snapshot", "state", "ping", "ticket.issued", "ticket.called", "ticket.recalled", "ticket.serving",
    "ticket.transferred", "ticket.done", "ticket.no_show", "ticket.cancelled", "ticket.held", "ticket.returned",
    "checkin.accepted", "checkin.rejected", "call.requested", "call.answered", "call.ended", "call.missed",
    "agent.started"];

  function live(handlers) {
    var last = null, source = null, watchdog = null, retry = null, delay = 1000;
    function status(ok) {
      document.body.classList.toggle("offline", !ok);
      if (handlers.status) handlers.status(ok);
    }
    function arm() {
      clearTimeout(watchdog);
      watchdog = setTimeout(reopen, 40000); // the server pings every 15 s
    }
    function reopen() {
      if (source) source.close();
      status(false);
      clearTimeout(retry);
      // A refused stream (the server's cap, a restart) is retried later and later, up to 30 s.
      retry = setTimeout(open, delay);
      delay = Math.min(delay * 2, 30000);
    }
    function open() {
      source = new EventSource("/api/live" + (last !== null ? "?after=" + last : ""));
      source.onopen = function () { delay = 1000; status(true); arm(); };
      source.onerror = function () {
        status(false);
        if (source.readyState === EventSource.CLOSED) reopen();
      };
      NAMES.forEach(function (name) {
        source.addEventListener(name, function (ev) {
          arm();
          status(true);
          if (name === "ping") return;
          if (ev.lastEventId) last = Number(ev.lastEventId);
          var data = JSON.parse(ev.data);
          if (data && data.now) setServerNow(data.now);
          var fn = handlers[name] || (name.indexOf(".") > 0 ? handlers.event : null);
          if (fn) fn(data, name);
        });
      });
    }
    open();
    return { close: function () { clearTimeout(watchdog); clearTimeout(retry); if (source) source.close(); } };
  }

  return { h: h, $: $, clear: clear, show: show, api: api, live: live, now: now, startClock: startClock,
    timeOf: timeOf, minutesSince: minutesSince, duration: duration, setServerNow: setServerNow };
})();
