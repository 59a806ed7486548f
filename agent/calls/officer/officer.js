// Officer console: watch the ward's kiosks ringing, accept, see and hear the resident, hang up.
// Signalling (ARCHITECTURE.md "Call signalling") over MQTT over WebSockets with the vendored mqtt.js.
// Query parameters (prefill, for tests and bookmarks): broker, username, wards, loopback=1 (keep only 127.0.0.1/::1 candidates in the answer; Chromium then needs
// --allow-loopback-in-peer-connection). Never the password: a URL ends up in history and logs.
// The officer logs in with a personal broker account; the name shown to the kiosk is that user name.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const session = Math.random().toString(16).slice(2, 14);
  const state = {
    status: "idle", // idle | connected | incall
    callState: null, // connecting | connected | ended
    rings: {}, // call id -> {kiosk, ward, call, message}
    current: null,
    timings: [], // per call: {call, acceptAt, firstFrameAt, setupMs}
    lastError: null,
  };
  window.officerState = state;
  let config = { root: "wards", wards: [], brokerUrl: null, iceServers: [], iceTransportPolicy: "all",
                 heartbeatInterval: 1, heartbeatTimeout: 3.5 };
  let client = null;

  function say(text) { $("message").textContent = text; }
  function setStatus(text) { $("status").textContent = text; }

  function topicParts(topic) {
    const p = topic.split("/");
    if (p.length !== 6 || p[3] !== "rtc") return null;
    return { root: p[0], ward: p[1], kiosk: p[2], call: p[4], side: p[5] };
  }
  function officerTopic(c) { return `${config.root}/${c.ward}/${c.kiosk}/rtc/${c.call}/officer`; }
  function publish(c, message) {
    client.publish(officerTopic(c), JSON.stringify(message), { qos: 1 });
  }

  function renderRings() {
    const list = $("calls");
    list.textContent = "";
    const ids = Object.keys(state.rings);
    $("none").hidden = ids.length > 0;
    for (const id of ids) {
      const r = state.rings[id];
      const li = document.createElement("li");
      const what = [r.message.service, r.message.ticket].filter(Boolean).join(" · ");
      li.textContent = `Ki-ốt ${r.kiosk} (phường ${r.ward}) ${what} `;
      const b = document.createElement("button");
      b.textContent = "Nhận cuộc gọi";
      b.className = "accept";
      b.dataset.call = id;
      b.disabled = state.current !== null;
      b.onclick = () => accept(id);
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  function onMessage(topic, payload) {
    const t = topicParts(topic);
    if (!t || t.side !== "kiosk") return;
    let m;
    try { m = JSON.parse(payload.toString()); } catch (e) { return; }
    const cur = state.current;
    if (m.type === "ring") {
      state.rings[t.call] = { kiosk: t.kiosk, ward: t.ward, call: t.call, message: m };
      renderRings();
      return;
    }
    if (cur && cur.call === t.call) {
      if (m.type === "offer" && m.session === session) { answer(m.sdp, m.iceServers); return; }
      if (m.type === "offer" || (m.type === "taken" && m.session === session)) {
        say("Cán bộ khác đã nhận cuộc gọi này."); endLocal("taken"); return;
      }
      if (m.type === "hangup" || m.type === "cancel") {
        say("Ki-ốt đã kết thúc cuộc gọi."); endLocal(m.reason || m.type); return;
      }
      return;
    }
    if (m.type === "offer" || m.type === "cancel" || m.type === "hangup" || m.type === "taken") {
      if (m.type !== "taken") { delete state.rings[t.call]; renderRings(); }
    }
  }

  function connect(ev) {
    if (ev) ev.preventDefault();
    const url = $("broker").value.trim();
    const wards = $("wards").value.split(",").map((w) => w.trim()).filter(Boolean);
    if (!url || !wards.length || !$("username").value.trim() || !$("password").value) {
      say("Vui lòng điền đủ thông tin."); return;
    }
    config.wards = wards;
    if (client) client.end(true);
    client = mqtt.connect(url, {
      username: $("username").value.trim(), password: $("password").value,
      clean: true, reconnectPeriod: 2000, connectTimeout: 10000, protocolVersion: 4,
    });
    client.on("connect", () => {
      const filters = wards.map((w) => `${config.root}/${w}/+/rtc/+/kiosk`);
      client.subscribe(filters, { qos: 1 }, (err) => {
        if (err) { say("Không đăng ký được: " + err.message); return; }
        state.status = state.current ? "incall" : "connected";
        setStatus("Đã kết nối");
        $("login").hidden = true;
        $("ringing").hidden = false;
        renderRings();
      });
    });
    client.on("error", (err) => { state.lastError = String(err); say("Lỗi kết nối: " + err.message); });
    client.on("offline", () => setStatus("Mất kết nối, đang thử lại…"));
    client.on("message", (topic, payload, packet) => {
      // The kiosk never retains signalling: a retained message is stale (or planted) and must not ring.
      if (packet && packet.retain) return;
      onMessage(topic, payload);
    });
  }

  async function accept(id) {
    const r = state.rings[id];
    if (!r || state.current) return;
    const timing = { call: id, acceptAt: performance.now(), firstFrameAt: null, setupMs: null };
    state.timings.push(timing);
    state.current = { ...r, pc: null, dc: null, timing, lastSeen: 0, timer: null, stream: null };
    state.status = "incall";
    state.callState = "connecting";
    delete state.rings[id];
    renderRings();
    $("peer-kiosk").textContent = r.kiosk;
    $("callstate").textContent = "đang kết nối…";
    $("incall").hidden = false;
    publish(r, { type: "accept", officer: $("username").value.trim(), session });
    try {
      state.current.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      $("local").srcObject = state.current.stream;
    } catch (e) {
      say("Không mở được camera/micrô của máy cán bộ: chỉ xem và nghe.");
    }
  }

  function keepLoopback(sdp) {
    return sdp.split("\r\n").filter((line) => {
      if (!line.startsWith("a=candidate:")) return true;
      const addr = line.split(" ")[4];
      return addr === "127.0.0.1" || addr === "::1";
    }).join("\r\n");
  }

  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
    });
  }

  async function answer(sdp, iceServers) {
    const cur = state.current;
    if (!cur || cur.pc) return;
    // The call's TURN credentials come inside the offer (time-limited, per call), never over HTTP.
    const servers = Array.isArray(iceServers) ? iceServers : config.iceServers;
    const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: config.iceTransportPolicy });
    cur.pc = pc;
    const dc = pc.createDataChannel("heartbeat", { negotiated: true, id: 0 });
    cur.dc = dc;
    dc.onmessage = () => { cur.lastSeen = performance.now(); };
    pc.ontrack = (ev) => {
      const video = $("remote");
      if (!video.srcObject) video.srcObject = new MediaStream();
      video.srcObject.addTrack(ev.track);
      if (ev.track.kind === "video") watchFirstFrame(video, cur.timing);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected" && state.callState !== "connected") {
        state.callState = "connected";
        $("callstate").textContent = "đã kết nối";
        cur.lastSeen = performance.now();
        cur.timer = setInterval(() => heartbeat(cur), config.heartbeatInterval * 1000);
      } else if (pc.connectionState === "failed") {
        hangup("ice_failed");
      }
    };
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      if (cur.stream) {
        for (const track of cur.stream.getTracks()) pc.addTrack(track, cur.stream);
      } else {
        pc.addTransceiver("video", { direction: "recvonly" });
        pc.addTransceiver("audio", { direction: "recvonly" });
      }
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc); // no trickle: the kiosk (aiortc) needs the complete SDP
      let out = pc.localDescription.sdp;
      if (params.get("loopback") === "1") out = keepLoopback(out);
      publish(cur, { type: "answer", sdp: out });
    } catch (e) {
      state.lastError = String(e);
      say("Không thiết lập được cuộc gọi: " + e);
      hangup("connect_failed");
    }
  }

  function watchFirstFrame(video, timing) {
    const mark = () => {
      if (timing.firstFrameAt === null && video.videoWidth > 0) {
        timing.firstFrameAt = performance.now();
        timing.setupMs = timing.firstFrameAt - timing.acceptAt;
      }
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(mark);
    video.addEventListener("loadeddata", mark, { once: true });
  }

  function heartbeat(cur) {
    if (cur.dc && cur.dc.readyState === "open") {
      try { cur.dc.send(JSON.stringify({ type: "ping", at: Date.now() })); } catch (e) { /* closing */ }
    }
    if (performance.now() - cur.lastSeen > config.heartbeatTimeout * 1000) {
      say("Mất liên lạc với ki-ốt.");
      endLocal("peer_lost");
    }
  }

  function hangup(reason) {
    const cur = state.current;
    if (!cur) return;
    publish(cur, { type: "hangup", reason: reason || "hangup" });
    endLocal(reason || "hangup");
  }

  function endLocal(reason) {
    const cur = state.current;
    if (!cur) return;
    if (cur.timer) clearInterval(cur.timer);
    if (cur.pc) cur.pc.close();
    if (cur.stream) cur.stream.getTracks().forEach((t) => t.stop());
    $("remote").srcObject = null;
    $("local").srcObject = null;
    $("incall").hidden = true;
    state.current = null;
    state.callState = "ended";
    state.endReason = reason;
    state.status = "connected";
    renderRings();
  }

  async function loadConfig() {
    try {
      const r = await fetch("/officer/config.json", { cache: "no-store" });
      if (r.ok) config = { ...config, ...(await r.json()) };
    } catch (e) { /* served elsewhere: the form has everything */ }
    $("broker").value = params.get("broker") || config.brokerUrl || "";
    $("wards").value = params.get("wards") || config.wards.join(",");
    $("username").value = params.get("username") || "";
    if (params.get("root")) config.root = params.get("root");
  }

  $("login").addEventListener("submit", connect);
  $("hangup").addEventListener("click", () => hangup("hangup"));
  window.addEventListener("beforeunload", () => hangup("closed"));
  loadConfig();
})();
