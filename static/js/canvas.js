// Mailwright designer: the little the server cannot do. Everything here has a keyboard or
// no-JavaScript alternative in the page (the Place buttons, typing a template, typing a folder).
(function () {
  "use strict";
  const ACTIVITY = "application/x-mailwright-activity";
  // What is being dragged, kept here because dragged data cannot be read before the drop:
  // {role, activity} for a placed activity, {role, urls, labels} for a palette chip or a connection,
  // where urls maps a role to the wizard that creates an activity of that role ("any": both).
  let dragged = null;

  document.addEventListener("dragstart", function (event) {
    const item = event.target.closest && event.target.closest("[data-activity], [data-new-source], [data-new-target]");
    if (!item) return;
    const urls = {};
    const labels = {};
    ["source", "target"].forEach(function (role) {
      const key = role.charAt(0).toUpperCase() + role.slice(1);
      if (item.dataset["new" + key]) {
        urls[role] = item.dataset["new" + key];
        labels[role] = item.dataset[role + "Label"];
      }
    });
    dragged = item.dataset.activity
      ? { role: item.dataset.role, activity: item.dataset.activity }
      : { role: item.dataset.role || "any", urls: urls, labels: labels };
    event.dataTransfer.setData(ACTIVITY, item.dataset.activity || "");
    event.dataTransfer.setData("text/plain", item.textContent.trim());
    event.dataTransfer.effectAllowed = "copy";
    document.body.dataset.dragRole = dragged.role;
  });
  document.addEventListener("dragend", function () {
    dragged = null;
    delete document.body.dataset.dragRole;
    document.querySelectorAll(".drop-ok").forEach(function (zone) { zone.classList.remove("drop-ok"); });
  });

  function accepts(role) {
    return dragged && (dragged.role === role || (dragged.role === "any" && dragged.urls[role]));
  }
  // Where a drop lands: a slot; a card (its slot for the dragged role); or the canvas around the
  // cards, where only a new activity can go (as the first activity of a new operation).
  function dropZone(event) {
    if (!dragged || !event.target.closest) return null;
    let slot = event.target.closest("[data-drop-role]");
    const card = event.target.closest(".op-card");
    if (!slot && card) {
      const role = dragged.role === "any" ? "source" : dragged.role;
      slot = card.querySelector('[data-drop-role="' + role + '"]');
    }
    if (slot) return accepts(slot.dataset.dropRole) ? { element: card || slot, slot: slot } : null;
    const canvas = event.target.closest("[data-drop-canvas]");
    return canvas && dragged.urls ? { element: canvas, canvas: canvas } : null;
  }
  document.addEventListener("dragover", function (event) {
    const zone = dropZone(event);
    if (!zone) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone.element.classList.add("drop-ok");
  });
  document.addEventListener("dragleave", function (event) {
    const zone = dropZone(event);
    if (zone && !zone.element.contains(event.relatedTarget)) zone.element.classList.remove("drop-ok");
  });

  // The number of cards above the drop point: where the new operation goes in the list.
  function positionAt(canvas, y) {
    const cards = canvas.querySelectorAll(".op-card");
    let position = 0;
    cards.forEach(function (card) {
      const box = card.getBoundingClientRect();
      if (box.top + box.height / 2 < y) position += 1;
    });
    return position;
  }

  function openWizard(url, label) {
    const dialog = document.getElementById("wizard-dialog");
    if (!dialog) { window.location.href = url; return; }
    dialog.querySelector("[data-dialog-title]").textContent = "New " + label + " activity";
    htmx.ajax("GET", url, { target: "#wizard-dialog-body", swap: "innerHTML" }).then(function () {
      if (!dialog.open) dialog.showModal();
      const first = dialog.querySelector("input:not([type=hidden]), select");
      if (first) first.focus();
    });
  }

  document.addEventListener("drop", function (event) {
    const zone = dropZone(event);
    if (!zone) return;
    event.preventDefault();
    zone.element.classList.remove("drop-ok");
    if (zone.slot && dragged.activity) {
      const values = { version: zone.slot.dataset.version };
      values[zone.slot.dataset.dropRole] = dragged.activity;
      htmx.ajax("POST", zone.slot.dataset.dropUrl, {
        source: zone.slot, target: zone.slot.dataset.dropTarget, swap: "outerHTML", values: values,
      });
      return;
    }
    const role = zone.slot ? zone.slot.dataset.dropRole : (dragged.urls.source ? "source" : "target");
    const url = new URL(dragged.urls[role], window.location.href);
    if (zone.slot) {
      url.searchParams.set("place", zone.slot.dataset.operation);
    } else {
      url.searchParams.set("place", "new");
      if (zone.canvas.dataset.workflow) url.searchParams.set("workflow", zone.canvas.dataset.workflow);
      url.searchParams.set("position", positionAt(zone.canvas, event.clientY));
    }
    openWizard(url.pathname + url.search, dragged.labels[role]);
  });

  // A new connection in a dialog (the palette's and the wizard's "New connection"): the connection
  // form in a frame, so the wizard underneath keeps its step; once created, the wizard's list offers
  // and selects it (when it can serve the activity) and the palette lists it.
  document.addEventListener("click", function (event) {
    const link = event.target.closest("[data-connection-dialog]");
    if (!link) return;
    event.preventDefault();
    let dialog = document.getElementById("connection-dialog");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.id = "connection-dialog";
      dialog.className = "frame-dialog";
      dialog.setAttribute("aria-label", "New connection");
      document.body.appendChild(dialog);
    }
    const frame = document.createElement("iframe");
    const url = new URL(link.href, window.location.href);
    url.searchParams.set("framed", "1");
    frame.src = url.pathname + url.search;
    frame.title = "New connection";
    dialog.replaceChildren(frame);
    dialog.showModal();
  });
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin || !event.data || !event.data.mailwright) return;
    const dialog = document.getElementById("connection-dialog");
    if (dialog && dialog.open) dialog.close();
    if (event.data.event !== "connection-created") return;
    const select = document.querySelector("select[data-kind]");
    if (select) {
      const note = select.parentElement.querySelector(".new-connection-note") || document.createElement("p");
      note.className = "new-connection-note muted";
      note.setAttribute("role", "status");
      if (event.data.serves.indexOf(select.dataset.kind) >= 0) {
        select.add(new Option(event.data.name, event.data.id, true, true));
        select.dispatchEvent(new Event("change", { bubbles: true }));
        note.textContent = event.data.name + " created and chosen.";
      } else {
        note.textContent = event.data.name + " was created, but its settings cannot serve this activity.";
      }
      select.insertAdjacentElement("afterend", note);
    }
    if (document.getElementById("palette")) {
      htmx.ajax("GET", window.location.pathname + "?palette=project", { target: "#palette", swap: "outerHTML" });
    }
  });

  // The dialog closes when its wizard placed the activity, or when the editor cancels.
  document.addEventListener("mailwright:placed", function () {
    const dialog = document.getElementById("wizard-dialog");
    if (dialog && dialog.open) dialog.close();
  });
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-close-dialog]");
    if (!button) return;
    const dialog = button.closest("dialog");
    if (dialog) dialog.close();
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

// Chains: an arrow in the canvas' right margin from an operation's card to the card it runs next,
// labelled "on success" or "on failure". The cards say the same in words, for keyboards and
// screen readers; a chain to another workflow's operation has only the words.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";

  function element(name, attributes) {
    const node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    return node;
  }

  function draw() {
    document.querySelectorAll(".op-cards").forEach(function (list) {
      const old = list.querySelector(":scope > .chain-arrows");
      if (old) old.remove();
      const chains = [];
      list.querySelectorAll(":scope > .op-card").forEach(function (card) {
        ["success", "failure"].forEach(function (outcome) {
          const next = card.dataset["chain" + outcome.charAt(0).toUpperCase() + outcome.slice(1)];
          const target = next && next !== card.id && list.querySelector(":scope > #" + next);
          if (target) chains.push({ from: card, to: target, outcome: outcome });
        });
      });
      list.classList.toggle("chained", chains.length > 0);
      if (!chains.length) return;
      const box = list.getBoundingClientRect();
      const svg = element("svg", { class: "chain-arrows", "aria-hidden": "true" });
      const defs = element("defs", {});
      ["success", "failure"].forEach(function (outcome) {
        const marker = element("marker", { id: "chain-head-" + outcome, viewBox: "0 0 10 10", refX: "9", refY: "5",
          markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
        marker.appendChild(element("path", { d: "M0,0 L10,5 L0,10 z", class: outcome + "-head" }));
        defs.appendChild(marker);
      });
      svg.appendChild(defs);
      chains.forEach(function (chain, index) {
        const a = chain.from.getBoundingClientRect();
        const b = chain.to.getBoundingClientRect();
        const x1 = a.right - box.left, y1 = a.top - box.top + a.height * (chain.outcome === "success" ? 0.4 : 0.6);
        const x2 = b.right - box.left, y2 = b.top - box.top + b.height * 0.5;
        const reach = 14 + 6 * (index % 4);
        const path = element("path", {
          class: chain.outcome, "marker-end": "url(#chain-head-" + chain.outcome + ")",
          d: "M" + x1 + "," + y1 + " C" + (x1 + reach * 2) + "," + y1 + " " + (x2 + reach * 2) + "," + y2 + " " + x2 + "," + y2,
        });
        svg.appendChild(path);
        // Written along the arrow, at its farthest point from the cards, so it fits the margin.
        const lx = Math.max(x1, x2) + reach * 1.5 + 4, ly = (y1 + y2) / 2;
        const label = element("text", { class: chain.outcome, x: lx, y: ly, "text-anchor": "middle",
          transform: "rotate(90 " + lx + " " + ly + ")" });
        label.textContent = "on " + chain.outcome;
        svg.appendChild(label);
      });
      list.appendChild(svg);
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("resize", draw);
})();
