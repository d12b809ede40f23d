/* District alert banner. Embed with:
     <script src="https://ALERTS-HOST/banner.js" async></script>
   Inserts the most severe active alert at the top of the page, or does nothing when none is
   active. Text goes in with textContent only, so nothing in an alert can become markup. */
(function () {
  "use strict";
  var data = /*ALERT*/null;
  var id = "district-alert-banner";
  if (!data || document.getElementById(id)) {
    return;
  }

  function link(item) {
    var a = document.createElement("a");
    a.href = item.url;
    a.textContent = item.text;
    a.style.color = "#ffffff";
    a.style.textDecoration = "underline";
    a.style.fontWeight = "700";
    if (item.lang) {
      a.lang = item.lang;
      a.dir = item.dir;
    }
    return a;
  }

  function show() {
    if (document.getElementById(id)) {
      return;
    }
    var box = document.createElement("div");
    box.id = id;
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", data.label);
    box.style.background = data.colour;
    box.style.color = "#ffffff";
    box.style.padding = "0.75rem 1rem";
    box.style.fontFamily = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    box.style.fontSize = "1rem";
    box.style.lineHeight = "1.5";
    var label = document.createElement("strong");
    label.textContent = data.label + ": ";
    box.appendChild(label);
    data.links.forEach(function (item, i) {
      if (i > 0) {
        box.appendChild(document.createTextNode(" · "));
      }
      box.appendChild(link(item));
    });
    if (data.more) {
      box.appendChild(document.createTextNode(" · "));
      box.appendChild(link(data.more));
    }
    document.body.insertBefore(box, document.body.firstChild);
  }

  if (document.body) {
    show();
  } else {
    document.addEventListener("DOMContentLoaded", show);
  }
})();
