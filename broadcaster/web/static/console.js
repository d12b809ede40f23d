// The staff console's live parts: the compose preview and the delivery progress.
// What comes from the server goes into the page through textContent, never as HTML, but for
// the rendition cards the server draws (renditionCards).
(function () {
  "use strict";

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function setText(node, text) {
    // Unchanged text is left alone, so live regions do not announce it again.
    if (node && node.textContent !== text) node.textContent = text;
  }

  function getJSON(url, options) {
    var settings = Object.assign({ credentials: "same-origin" }, options || {});
    settings.headers = Object.assign({ Accept: "application/json" }, settings.headers || {});
    return fetch(url, settings).then(function (response) { return response.json(); });
  }

  // --- compose: a live preview of every rendition, composed on the server and rolled back ---

  function findingsList(findings) {
    if (!findings.length) return el("p", "No findings.", "no-findings");
    var list = el("ul", null, "findings");
    findings.forEach(function (f) {
      var item = el("li", null, "finding " + f.severity);
      item.appendChild(el("strong", f.severity === "block" ? "Blocks" : "Warning"));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", f.check, "check"));
      item.appendChild(document.createTextNode(" (" + f.where + "): " + f.detail));
      list.appendChild(item);
    });
    return list;
  }

  function renditionCards(html) {
    // The one exception to textContent: the rendition cards are HTML the server drew with the
    // message page's own macros (every value autoescaped, web and e-mail HTML in sandboxed
    // frames). Markup inserted this way runs no script, and the page's policy refuses inline ones.
    var holder = document.createElement("template");
    holder.innerHTML = html;
    return holder.content;
  }

  function setupPreview(form) {
    var status = document.getElementById("preview-status");
    var findingsBox = document.getElementById("preview-findings");
    var renditionsBox = document.getElementById("preview-renditions");
    var planBox = document.getElementById("preview-plan");
    var audienceCount = document.getElementById("audience-count");
    var token = form.querySelector('input[name="csrf_token"]').value;
    var timer = null;
    var latest = 0;
    var drawn = null;

    function markInvalid(target) {
      form.querySelectorAll("[data-live-invalid]").forEach(function (node) {
        node.removeAttribute("aria-invalid");
        node.removeAttribute("data-live-invalid");
      });
      var node = target && document.getElementById(target);
      if (node && !node.hasAttribute("aria-invalid")) {
        node.setAttribute("aria-invalid", "true");
        node.setAttribute("data-live-invalid", "");
      }
    }

    function render(data, typed) {
      if (data.audience) setText(audienceCount, data.audience.text);
      if (!data.ok) {
        // A field is marked wrong only once the user has typed something.
        markInvalid(typed ? data.target : null);
        setText(status, "Not ready: " + (data.error || "the preview failed."));
        findingsBox.replaceChildren();
        planBox.replaceChildren();
        renditionsBox.replaceChildren();
        drawn = null;
        return;
      }
      markInvalid(null);
      setText(status, data.summary +
        (data.send_at_local ? " Sends at " + data.send_at_local + "." : "") +
        (data.valid_until_local ? " Valid until " + data.valid_until_local + "." : ""));
      findingsBox.replaceChildren(el("h3", "Findings"), findingsList(data.findings));
      // Warnings that are not findings (posted nowhere, draft translations): never acknowledged.
      if (data.notices.length) {
        var notes = el("ul", null, "notices");
        data.notices.forEach(function (line) { notes.appendChild(el("li", "Warning: " + line, "notice")); });
        findingsBox.appendChild(notes);
      }
      // How long delivery takes per channel, and when the last one is accepted (plan.py).
      var planList = el("ul", null, "plan");
      data.plan.forEach(function (line) { planList.appendChild(el("li", line)); });
      planBox.replaceChildren(el("h3", "Delivery time"), planList);
      // Unchanged cards are left alone: their frames do not reload nor open "Raw text" close.
      if (data.renditions_html !== drawn) renditionsBox.replaceChildren(renditionCards(data.renditions_html));
      drawn = data.renditions_html;
    }

    function update(typed) {
      var mine = ++latest;
      getJSON(form.dataset.previewUrl, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-CSRFToken": token },
      }).then(function (data) {
        if (mine === latest) render(data, typed);
      }).catch(function () {
        if (mine === latest) setText(status, "The preview could not be updated; check the connection.");
      });
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(update, 300, true);
    }

    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
    update(false);
  }

  // --- message page: delivery progress, polled every second while the message is active ---

  function setupProgress(table) {
    var state = document.getElementById("message-state");
    var summary = document.getElementById("delivery-summary");
    var failures = document.getElementById("delivery-failures");

    function render(data) {
      var total = 0;
      var done = 0;
      data.channels.forEach(function (c) {
        var row = table.querySelector('tr[data-channel="' + CSS.escape(c.channel) + '"]');
        if (!row) return;
        var bar = row.querySelector("progress");
        bar.max = c.total || 1;
        bar.value = c.done;
        setText(bar, c.done + " of " + c.total);
        bar.setAttribute("aria-label", c.channel_name + ": " + c.done + " of " + c.total + " finished");
        setText(row.querySelector('[data-field="done"]'), String(c.done));
        setText(row.querySelector('[data-field="total"]'), String(c.total));
        Object.keys(c.counts).forEach(function (name) {
          setText(row.querySelector('td[data-status="' + name + '"]'), String(c.counts[name]));
        });
        total += c.total;
        done += c.done;
      });
      setText(state, data.state_name);
      var text = done + " of " + total + (total === 1 ? " delivery" : " deliveries") +
        " finished; the message is " + data.state_name + ".";
      if (!data.active) text += " Reload the page for the timeline.";
      setText(summary, text);
      failures.replaceChildren.apply(failures, data.failures.map(function (f) {
        return el("li", f.channel_name + " " + f.target + ": " + f.error);
      }));
    }

    function poll() {
      getJSON(table.dataset.statusUrl).then(function (data) {
        render(data);
        if (data.active) setTimeout(poll, 1000);
      }).catch(function () {
        setTimeout(poll, 5000);
      });
    }

    if (table.dataset.active === "true") setTimeout(poll, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("compose-form");
    if (form && form.dataset.previewUrl) setupPreview(form);
    var progress = document.getElementById("delivery-progress");
    if (progress && progress.dataset.statusUrl) setupProgress(progress);
  });
})();
