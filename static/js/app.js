// Behaviour shared by every page. No inline handlers anywhere: the Content-Security-Policy forbids them.
"use strict";

// A button with data-confirm asks first (replaces onclick="return confirm(...)").
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});
