// Fleet page: refresh the table body every 5 s from /ops/rows (same HTML as the first render).
// A row whose acknowledgement note is being typed is left alone until the note is sent.
(function () {
  "use strict";
  var table = document.querySelector("table[data-testid=fleet-live]");
  if (!table) return;
  var ward = table.getAttribute("data-ward") || "";
  var body = document.getElementById("fleet-body");
  var fresh = document.getElementById("fresh");
  function typing() {
    var el = document.activeElement;
    return el && el.name === "note" && el.value !== "";
  }
  function tick() {
    if (typing()) return;
    fetch("/ops/rows" + (ward ? "?ward=" + encodeURIComponent(ward) : ""), {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (text) {
        if (typing()) return;
        body.innerHTML = text;
        fresh.textContent = new Date().toLocaleTimeString("vi-VN");
      })
      .catch(function () { fresh.textContent = "mất kết nối tới trung tâm"; });
  }
  setInterval(tick, 5000);
})();
