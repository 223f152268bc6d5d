// Bollard's page script (the only one besides htmx): live updates from /events.
// Server-sent "registry" and "approval" events become the body events
// "bollard:registry" / "bollard:approval", which the lists listen for (hx-trigger).
(function () {
  "use strict";
  if (!document.querySelector('meta[name="bollard-live"]') || !window.EventSource) return;
  var source = new EventSource("/events");
  source.addEventListener("open", function () { document.body.setAttribute("data-live", "open"); });
  source.addEventListener("error", function () { document.body.setAttribute("data-live", "reconnecting"); });
  ["registry", "approval"].forEach(function (topic) {
    source.addEventListener(topic, function () {
      if (window.htmx) window.htmx.trigger(document.body, "bollard:" + topic);
    });
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
