// Window/level and zoom for the scan views, drawn on canvases; no external code.
(function () {
  "use strict";
  var windowInput = document.getElementById("window");
  var levelInput = document.getElementById("level");
  var zoomInput = document.getElementById("zoom");
  var views = [];

  function draw(view) {
    var width = Number(windowInput.value), level = Number(levelInput.value);
    var low = level - width / 2;
    var out = view.context.createImageData(view.source.width, view.source.height);
    var src = view.source.data, dst = out.data;
    for (var i = 0; i < src.length; i += 4) {
      var g = Math.round(Math.min(Math.max((src[i] - low) / width, 0), 1) * 255);
      dst[i] = dst[i + 1] = dst[i + 2] = g;
      dst[i + 3] = 255;
    }
    view.context.putImageData(out, 0, 0);
    view.canvas.style.height = (70 * Number(zoomInput.value)) + "vh";
  }

  function redraw() { views.forEach(draw); }

  function attach(img) {
    var canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    var context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    var view = { canvas: canvas, context: context, source: context.getImageData(0, 0, canvas.width, canvas.height) };
    img.replaceWith(canvas);
    views.push(view);
    draw(view);
  }

  document.querySelectorAll("img.scan").forEach(function (img) {
    if (img.complete && img.naturalWidth) { attach(img); } else { img.addEventListener("load", function () { attach(img); }); }
  });
  [windowInput, levelInput, zoomInput].forEach(function (input) { input.addEventListener("input", redraw); });
  document.getElementById("reset").addEventListener("click", function () {
    windowInput.value = 255; levelInput.value = 128; zoomInput.value = 1; redraw();
  });

  var grade = document.getElementById("grade");
  document.querySelectorAll("input[name=diagnosis]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      grade.required = radio.value === "amyloidosis" && radio.checked;
    });
  });
})();
