// 证书照片: a preview and a hint before uploading (size and resolution); the server (media)
// still decides. No inline script; loaded only on the certificate page.
"use strict";

(function () {
  const input = document.getElementById("photo");
  const hint = document.getElementById("photo-hint");
  const preview = document.getElementById("photo-preview");
  if (!input || !hint || !preview) return;
  const maxBytes = Number(input.dataset.maxBytes);
  const minWidth = Number(input.dataset.minWidth);
  const minHeight = Number(input.dataset.minHeight);
  let url = null;
  input.addEventListener("change", () => {
    hint.textContent = "";
    preview.hidden = true;
    if (url) URL.revokeObjectURL(url);
    const file = input.files && input.files[0];
    if (!file) return;
    if (!/^image\/(jpeg|png)$/.test(file.type)) {
      hint.textContent = "请选择 JPEG 或 PNG 格式的照片";
      return;
    }
    if (file.size >= maxBytes) {
      hint.textContent = `照片文件为 ${(file.size / 1048576).toFixed(1)}M，应小于 3M`;
      return;
    }
    url = URL.createObjectURL(file);
    preview.onload = () => {
      const w = preview.naturalWidth;
      const h = preview.naturalHeight;
      const ok = (w > minWidth && h > minHeight) || (w > minHeight && h > minWidth);
      hint.textContent = ok ? `分辨率 ${w}×${h}，符合要求` : `分辨率 ${w}×${h}，应大于 800×600`;
      preview.hidden = false;
    };
    preview.src = url;
  });
})();
