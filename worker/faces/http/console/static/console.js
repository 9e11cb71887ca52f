// The operator console works without this script; with it, times show the reader's local
// time on hover, and a page that asks for it refreshes itself while nobody is typing.
"use strict";
document.querySelectorAll("time[datetime]").forEach(function (el) {
  var when = new Date(el.getAttribute("datetime"));
  if (!isNaN(when)) {
    el.title = "local time: " + when.toLocaleString() + "\n" + el.textContent.trim() + " (UTC)";
  }
});
var seconds = Number(document.body.dataset.refresh || 0);
if (seconds > 0) {
  window.setInterval(function () {
    var active = document.activeElement;
    var busy = active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
    if (!busy && !document.hidden) {
      window.location.reload();
    }
  }, seconds * 1000);
}
