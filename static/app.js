/* PEC Shop: focus, announcements and waiting feedback around htmx. No inline scripts (CSP). */
(function () {
  "use strict";

  var announcer = function () { return document.getElementById("announcer"); };
  var pending = [];
  var focusedId = null;

  /* Say something through the polite live region (cleared first, so a repeat is heard). */
  function announce(text) {
    var region = announcer();
    if (!region || !text) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 60);
  }

  function collect(elt) {
    if (!elt || !elt.querySelectorAll) return;
    if (elt.hasAttribute("data-announce")) pending.push(elt.getAttribute("data-announce"));
    elt.querySelectorAll("[data-announce]").forEach(function (e) {
      pending.push(e.getAttribute("data-announce"));
    });
  }

  function flush() {
    var seen = {};
    var text = pending.filter(function (t) { return t && !seen[t] && (seen[t] = true); }).join(" ");
    pending = [];
    announce(text);
  }

  function focusable(el) {
    return el.querySelector("[data-focus], a[href], button:not([disabled]), select:not([disabled]), input:not([type=hidden]):not([disabled])");
  }

  function focusHeading() {
    var h1 = document.querySelector("main h1") || document.getElementById("main");
    if (!h1) return;
    if (!h1.hasAttribute("tabindex")) h1.setAttribute("tabindex", "-1");
    h1.focus({ preventScroll: true });
  }

  /* An outerHTML swap replaces its target: find the new element by the same id. */
  function resolve(el) {
    if (!el) return null;
    if (el.isConnected) return el;
    return el.id ? document.getElementById(el.id) : null;
  }

  function lostFocus() {
    var active = document.activeElement;
    return !active || active === document.body || !active.isConnected;
  }

  /* Waiting: disable the form's buttons and show its "Attendere…" indicator. */
  function wait(form, on) {
    if (!form || !form.hasAttribute("data-wait")) return;
    form.classList.toggle("is-waiting", on);
    form.setAttribute("aria-busy", on ? "true" : "false");
    form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (b) {
      b.disabled = on;
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-wait")) return;
    if (form.classList.contains("is-waiting")) {
      if (!event.defaultPrevented) event.preventDefault(); // a second click: one request is enough
      return;
    }
    // After the browser (or htmx) has read the form: a disabled button would not be sent.
    window.setTimeout(function () { wait(form, true); }, 0);
  });

  // Back from the bank through the browser's cache: the page must not stay "waiting".
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form.is-waiting").forEach(function (f) { wait(f, false); });
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var active = document.activeElement;
    focusedId = active && active !== document.body ? active.id || null : null;
    var detail = event.detail;
    // A boosted navigation shows the shop's error page (404, 403...) instead of doing nothing.
    if (detail.boosted && detail.xhr && detail.xhr.status >= 400) {
      detail.shouldSwap = true;
      detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.isConnected && elt.tagName === "FORM") wait(elt, false);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    collect(resolve(event.detail.target) || event.target);
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    collect(resolve(event.detail.target) || event.target);
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var detail = event.detail;
    if (detail.boosted) {
      pending = [];
      focusHeading();
      return;
    }
    flush();
    if (!lostFocus()) return;
    // The swap removed the focused control: give focus back to its new copy, or to the news.
    var again = focusedId && document.getElementById(focusedId);
    var target = resolve(detail.target);
    var next = again || (target && focusable(target));
    if (next) {
      next.focus();
    } else if (target) {
      if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
      target.focus();
    }
  });

  /* Phones show a table's rows as cards: each cell says its column (data-label), unless the
     template already did. */
  function labelTables(root) {
    if (!root || !root.querySelectorAll) return;
    var tables = root.matches && root.matches("table.table") ? [root] : root.querySelectorAll("table.table");
    tables.forEach(function (table) {
      var heads = table.querySelectorAll("thead th");
      if (!heads.length) return;
      table.querySelectorAll("tbody tr").forEach(function (row) {
        var column = 0;
        Array.prototype.forEach.call(row.cells, function (cell) {
          var head = heads[column];
          column += cell.colSpan || 1;
          if (head && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", head.textContent.trim());
        });
      });
    });
  }
  labelTables(document);
  document.addEventListener("htmx:afterSettle", function (event) {
    labelTables(resolve(event.detail.target) || document);
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    labelTables(resolve(event.detail.target) || document);
  });

  document.addEventListener("htmx:historyRestore", focusHeading);
})();
