// 考生服务平台: small helpers only. Every page works without this script.
"use strict";

(function () {
  // Forms that ask before they act (删除课程, 提交): data-confirm="…".
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  // Inputs that submit their form on change (新旧计划 switches the major lists).
  document.querySelectorAll("[data-autosubmit]").forEach((input) => {
    input.addEventListener("change", () => input.form && input.form.submit());
  });
})();
