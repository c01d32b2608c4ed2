// 打印免考申请信息: the 打印 button opens the browser's print dialog (print.css lays out A4).
"use strict";

(function () {
  const button = document.getElementById("print-button");
  if (!button) return;
  button.addEventListener("click", () => window.print());
})();
