// 学信网扫码授权: poll the authorisation's status, count down to the QR code's expiry, and go
// to the verified degrees once the candidate approved. Without this script the page refreshes
// itself (<noscript><meta http-equiv="refresh">), so everything here is an improvement only.
"use strict";

(function () {
  const card = document.querySelector("[data-qr-status-url]");
  if (!card) return;
  const url = card.dataset.qrStatusUrl;
  const statusLine = document.getElementById("qr-status");
  const countdown = document.getElementById("qr-countdown");
  const timer = document.getElementById("qr-timer");
  const figure = document.getElementById("qr-figure");
  const renew = document.getElementById("qr-renew");
  const title = document.getElementById("qr-title");
  const POLL_MS = 2500;
  const MAX_BACKOFF_MS = 15000;

  let deadline = countdown ? Date.now() + Number(countdown.dataset.seconds || 0) * 1000 : 0;
  let done = card.dataset.status !== "requested";
  let delay = POLL_MS;
  let tick = null;

  function say(text) {
    if (statusLine && statusLine.textContent !== text) statusLine.textContent = text;
  }

  function showCountdown() {
    if (!countdown) return;
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    const minutes = Math.floor(left / 60);
    const seconds = String(left % 60).padStart(2, "0");
    countdown.textContent = minutes + "分" + seconds + "秒";
    countdown.classList.toggle("urgent", left <= 60);
  }

  function finish(status, message) {
    done = true;
    if (tick) window.clearInterval(tick);
    card.dataset.status = status;
    if (statusLine) statusLine.className = "qr-status status-" + status;
    say(message);
    if (status === "expired" || status === "denied" || status === "error") {
      if (figure) figure.hidden = true;
      if (timer) timer.hidden = true;
      if (renew) renew.hidden = false;
      if (title) title.textContent = status === "expired" ? "二维码已过期" : status === "denied" ? "已拒绝授权" : "无法获取授权状态";
    }
  }

  async function poll() {
    if (done) return;
    let response;
    let body;
    try {
      response = await fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      if (response.redirected || !(response.headers.get("content-type") || "").includes("json")) {
        window.location.reload(); // the session ended: the page itself goes to the login
        return;
      }
      body = await response.json();
    } catch (err) {
      say("网络连接异常，正在重试…");
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      window.setTimeout(poll, delay);
      return;
    }
    delay = POLL_MS;
    if (body.status === "approved" && body.next) {
      finish("approved", body.message);
      window.location.assign(body.next);
      return;
    }
    if (body.status === "expired" || body.status === "denied") {
      finish(body.status, body.message);
      return;
    }
    if (body.status === "error") {
      finish("error", body.message); // e.g. the authorisation is not found any more
      return;
    }
    if (body.status === "unavailable") {
      say(body.message); // the service is down for a moment: keep waiting, a bit slower
      delay = Math.min(POLL_MS * 2, MAX_BACKOFF_MS);
    } else {
      say(body.message);
      if (typeof body.seconds_left === "number") deadline = Date.now() + body.seconds_left * 1000;
    }
    window.setTimeout(poll, delay);
  }

  if (done) return;
  showCountdown();
  tick = window.setInterval(showCountdown, 1000); // the server's status has the last word
  window.setTimeout(poll, POLL_MS);
})();
