// A page shown in a dialog of the designer (a new connection): it tells the page that opened it when
// it is done, and that page closes the dialog. Messages go to this origin only.
(function () {
  "use strict";
  function tell(data) {
    if (window.parent !== window) window.parent.postMessage(Object.assign({ mailwright: true }, data), window.location.origin);
  }
  // The form is saved through htmx, so "created" arrives as a swap as often as a page load.
  function announce() {
    const created = document.querySelector("[data-connection-created]:not([data-told])");
    if (!created) return;
    created.dataset.told = "1";
    tell({ event: "connection-created", id: created.dataset.connectionCreated, name: created.dataset.connectionName,
           serves: created.dataset.serves.split(" ") });
  }
  document.addEventListener("DOMContentLoaded", announce);
  document.addEventListener("htmx:afterSettle", announce);
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-frame-cancel]")) tell({ event: "cancel" });
  });
})();
