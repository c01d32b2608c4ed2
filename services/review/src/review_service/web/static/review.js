// 审核工作台: keyboard shortcuts, clickable queue rows, the photo viewer (zoom, rotate), and
// small form helpers. Every page works without this script; it only saves reviewers time.
"use strict";

(function () {
  const page = document.body.dataset.page;
  const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));

  // --- queue: rows open their case; J/K move, Enter opens, / searches ---------------------
  const rows = Array.from(document.querySelectorAll("#queue-table tbody tr[data-href]"));
  let selected = -1;
  function select(index) {
    if (!rows.length) return;
    selected = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach((row, i) => row.classList.toggle("selected", i === selected));
    rows[selected].querySelector("a").focus({ preventScroll: false });
  }
  rows.forEach((row, i) => {
    row.addEventListener("click", (event) => {
      if (event.target.closest("a, button, input")) return;
      window.location.href = row.dataset.href;
    });
    row.querySelector("a").addEventListener("focus", () => {
      selected = i;
      rows.forEach((r, j) => r.classList.toggle("selected", j === i));
    });
  });

  // --- photo viewer ----------------------------------------------------------------------
  const viewer = document.getElementById("viewer");
  const image = document.getElementById("viewer-image");
  const original = document.getElementById("viewer-original");
  const view = { scale: 1, angle: 0 };
  // The photo first fits the stage; zoom changes its laid-out width (so the stage scrolls to
  // every part of it), rotation is a transform.
  function paint() {
    if (!image || !image.naturalWidth) return;
    const stage = image.parentElement;
    const sideways = view.angle % 180 !== 0;  // a quarter turn swaps the sides to fit
    const across = sideways ? image.naturalHeight : image.naturalWidth;
    const down = sideways ? image.naturalWidth : image.naturalHeight;
    const fit = Math.min(stage.clientWidth / across, stage.clientHeight / down, 1);
    image.style.width = `${Math.round(image.naturalWidth * fit * view.scale)}px`;
    image.style.transform = `rotate(${view.angle}deg)`;
  }
  function zoom(factor) {
    view.scale = Math.min(6, Math.max(0.2, view.scale * factor));
    paint();
  }
  function rotate(degrees) {
    view.angle = (view.angle + degrees + 360) % 360;
    paint();
  }
  function reset() {
    view.scale = 1;
    view.angle = 0;
    paint();
  }
  if (viewer && image && typeof viewer.showModal === "function") {
    image.addEventListener("load", paint);
    document.querySelectorAll("a.photo[data-display]").forEach((link) => {
      link.addEventListener("click", (event) => {
        event.preventDefault();
        image.src = link.dataset.display;
        original.href = link.dataset.original || link.dataset.display;
        reset();
        viewer.showModal();
      });
    });
    viewer.querySelectorAll("[data-zoom]").forEach((b) =>
      b.addEventListener("click", () => zoom(b.dataset.zoom === "in" ? 1.25 : 0.8)));
    viewer.querySelectorAll("[data-rotate]").forEach((b) =>
      b.addEventListener("click", () => rotate(Number(b.dataset.rotate))));
    viewer.querySelector("[data-reset]").addEventListener("click", reset);
    image.addEventListener("wheel", (event) => {
      event.preventDefault();
      zoom(event.deltaY < 0 ? 1.1 : 0.9);
    }, { passive: false });
  }

  // --- decision form helpers ---------------------------------------------------------------
  const grantAll = document.getElementById("grant-all");
  if (grantAll) {
    grantAll.addEventListener("click", () => {
      document.querySelectorAll("#decide-form input.grant").forEach((radio) => { radio.checked = true; });
    });
  }
  const template = document.getElementById("reason_template");
  const reason = document.getElementById("reason");
  if (template && reason) {
    template.addEventListener("change", () => {
      const option = template.selectedOptions[0];
      if (option && option.dataset.text) {
        reason.value = reason.value.trim() ? `${reason.value.trim()}；${option.dataset.text}` : option.dataset.text;
        reason.focus();
      }
    });
  }
  const returnForm = document.getElementById("return-form");
  if (returnForm) {
    returnForm.addEventListener("submit", (event) => {
      if (!window.confirm("确认将整份申请退回考生修改？")) event.preventDefault();
    });
  }

  // --- keyboard shortcuts ----------------------------------------------------------------------
  const help = document.getElementById("help");
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const viewing = viewer && viewer.open;
    const key = event.key;
    if (viewing) {
      if (key === "+" || key === "=") zoom(1.25);
      else if (key === "-") zoom(0.8);
      else if (key === "r") rotate(90);
      else if (key === "R") rotate(-90);
      else if (key === "0") reset();
      else return;
      event.preventDefault();
      return;
    }
    if (key === "?" && help) { help.showModal(); event.preventDefault(); return; }
    if (page === "queue") {
      if (key === "j" || key === "ArrowDown") { select(selected + 1); event.preventDefault(); return; }
      if (key === "k" || key === "ArrowUp") { select(selected - 1); event.preventDefault(); return; }
      if ((key === "Enter" || key === "o") && selected >= 0) { window.location.href = rows[selected].dataset.href; return; }
      if (key === "/") { const s = document.getElementById("search"); if (s) { s.focus(); s.select(); event.preventDefault(); } return; }
    }
    if (page === "case") {
      if (key === "q") { window.location.href = "/queue"; return; }
      const first = document.querySelector("a.photo[data-display]");
      if ((key === "+" || key === "=") && first) { first.click(); event.preventDefault(); return; }
    }
    const button = document.querySelector(`[data-key="${key.toLowerCase()}"]`);
    if (button && (key === "n" || key === "c")) { button.click(); event.preventDefault(); }
  });
})();
