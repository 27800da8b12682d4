// The operation page's autosave, seen from the browser: how long ago the last save was, and a
// question before leaving while an edit is not saved yet (typed, or refused as invalid).
(function () {
  "use strict";
  const form = document.getElementById("operation-form");
  if (!form) return;
  let edits = 0;      // edits typed since the page loaded
  let sent = 0;       // edits the save in flight carries
  let saved = 0;      // edits the server has kept

  form.addEventListener("input", function () { edits += 1; });
  form.addEventListener("change", function () { edits += 1; });
  form.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt === form) sent = edits;
  });
  form.addEventListener("htmx:afterRequest", function (event) {
    // 200: every field saved. 400 (a field refused) and 409 (a conflict) leave something unsaved.
    if (event.detail.elt === form && event.detail.xhr.status === 200) saved = sent;
  });
  window.addEventListener("beforeunload", function (event) {
    if (edits > saved) {
      event.preventDefault();
      event.returnValue = "";  // older browsers ask only when this is set
    }
  });
  // A plain submit (Save, Preview without htmx) is a save of its own: no question.
  form.addEventListener("submit", function () { if (!window.htmx) saved = edits; });

  function ago(seconds) {
    if (seconds < 5) return "Saved";
    if (seconds < 60) return "Saved " + seconds + " s ago";
    return "Saved " + Math.floor(seconds / 60) + " min ago";
  }
  window.setInterval(function () {
    const status = document.querySelector("#save-status [data-saved-at]");
    if (!status) return;
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(status.dataset.savedAt)) / 1000));
    status.textContent = ago(seconds);
  }, 1000);
}());
