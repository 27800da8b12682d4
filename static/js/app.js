// Behaviour shared by every page. No inline handlers anywhere: the Content-Security-Policy forbids them.
"use strict";

// A button with data-confirm asks first (replaces onclick="return confirm(...)").
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});

// After a form comes back with errors, the first invalid field gets the focus and is scrolled to,
// instead of leaving the reader at the bottom with the errors out of sight.
function focusFirstError(root) {
  const field = root.querySelector(".field.invalid input:not([type=hidden]), .field.invalid select, .field.invalid textarea");
  if (!field) return;
  field.focus({ preventScroll: true });
  field.scrollIntoView({ block: "center" });
}
document.addEventListener("DOMContentLoaded", () => focusFirstError(document));
// A form swapped with its answer (hx-target="this", outerHTML): the target is the old form, so
// the new one is found by its id.
document.addEventListener("htmx:afterSettle", (event) => {
  const target = event.detail.target;
  if (target && target.tagName === "FORM" && target.id) focusFirstError(document.getElementById(target.id) || target);
});
