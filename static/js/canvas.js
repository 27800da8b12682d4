// Mailwright designer: the little the server cannot do. Everything here has a keyboard or
// no-JavaScript alternative in the page (the Place buttons, typing a template, typing a folder).
(function () {
  "use strict";
  const ACTIVITY = "application/x-mailwright-activity";

  // Drag an activity from the palette onto an operation's source or target slot.
  document.addEventListener("dragstart", function (event) {
    const item = event.target.closest && event.target.closest("[data-activity]");
    if (!item) return;
    event.dataTransfer.setData(ACTIVITY, item.dataset.activity);
    event.dataTransfer.setData("text/plain", item.textContent.trim());
    event.dataTransfer.effectAllowed = "copy";
    // The dragged data cannot be read before the drop, so remember which slots may take it.
    document.body.dataset.dragRole = item.dataset.role;
  });
  document.addEventListener("dragend", function () {
    delete document.body.dataset.dragRole;
    document.querySelectorAll(".slot.drop-ok").forEach(function (slot) { slot.classList.remove("drop-ok"); });
  });

  function slotFor(event) {
    const slot = event.target.closest && event.target.closest("[data-drop-role]");
    return slot && slot.dataset.dropRole === document.body.dataset.dragRole ? slot : null;
  }
  document.addEventListener("dragover", function (event) {
    const slot = slotFor(event);
    if (!slot) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    slot.classList.add("drop-ok");
  });
  document.addEventListener("dragleave", function (event) {
    const slot = slotFor(event);
    if (slot && !slot.contains(event.relatedTarget)) slot.classList.remove("drop-ok");
  });
  document.addEventListener("drop", function (event) {
    const slot = slotFor(event);
    if (!slot) return;
    event.preventDefault();
    const values = { version: slot.dataset.version };
    values[slot.dataset.dropRole] = event.dataTransfer.getData(ACTIVITY);
    htmx.ajax("POST", slot.dataset.dropUrl, {
      source: slot, target: slot.dataset.dropTarget, swap: "outerHTML", values: values,
    });
  });

  // Mapping editor: insert "{{ field }}" where the cursor was in the last template field.
  let lastTemplate = null;
  document.addEventListener("focusin", function (event) {
    if (event.target.matches("[data-template-input]")) lastTemplate = event.target;
  });
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-insert]");
    if (!button) return;
    const field = lastTemplate && document.contains(lastTemplate)
      ? lastTemplate : document.querySelector("[data-template-input]");
    if (!field) return;
    const text = button.dataset.insert;
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    field.setRangeText(text, start, end, "end");
    field.focus();
    // Let validation and autosave see the change as if it was typed.
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.dispatchEvent(new Event("change", { bubbles: true }));
  });

  // Read Email wizard: pick a folder from the server's list, and search that list.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-fill]");
    if (!button) return;
    const input = document.querySelector(button.dataset.fill);
    if (!input) return;
    input.value = button.dataset.value;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    input.focus();
  });
  document.addEventListener("input", function (event) {
    const filter = event.target.closest("[data-filter-list]");
    if (!filter) return;
    const words = filter.value.trim().toLowerCase();
    document.querySelectorAll(filter.dataset.filterList + " li").forEach(function (item) {
      item.hidden = words !== "" && !item.textContent.toLowerCase().includes(words);
    });
  });
})();
