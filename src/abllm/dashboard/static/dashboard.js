// abllm dashboard auto-refresh: re-fetch the page and swap <main>, so the scroll position and
// open <details> survive; the checkbox turns it off (remembered in localStorage). A refresh
// waits while the reader is typing a reason into a control. Controls ask for confirmation.
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); }
  });
  var seconds = parseInt(document.body.getAttribute("data-refresh"), 10) || 0;
  var box = document.getElementById("auto-refresh");
  var key = "abllm-auto-refresh";
  if (!box || seconds <= 0) { return; }
  box.checked = window.localStorage.getItem(key) !== "off";
  box.addEventListener("change", function () {
    window.localStorage.setItem(key, box.checked ? "on" : "off");
  });

  function openDetails() {
    var open = [];
    document.querySelectorAll("main details[id]").forEach(function (d) {
      if (d.open) { open.push(d.id); }
    });
    return open;
  }

  function typing() {
    var active = document.activeElement;
    if (active && active.closest && active.closest("main form")) { return true; }
    var filled = false;
    document.querySelectorAll("main form input[type=text]").forEach(function (i) {
      if (i.value) { filled = true; }
    });
    return filled;
  }

  function refresh() {
    if (!box.checked || document.hidden || typing()) { return Promise.resolve(false); }
    return fetch(window.location.href, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) { return false; }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("content");
        var main = document.getElementById("content");
        if (!fresh || !main) { return false; }
        var open = openDetails();
        var x = window.scrollX, y = window.scrollY;
        main.innerHTML = fresh.innerHTML;
        window.scrollTo(x, y);
        open.forEach(function (id) {
          var d = document.getElementById(id);
          if (d) { d.open = true; }
        });
        var foot = doc.querySelector("footer.foot");
        var here = document.querySelector("footer.foot");
        if (foot && here) { here.textContent = foot.textContent; }
        return true;
      })
      .catch(function () { return false; /* server restarting: try again next tick */ });
  }

  window.abllmRefresh = refresh; // one refresh now (resolves true when the figures were swapped)

  window.setInterval(refresh, seconds * 1000);
})();
