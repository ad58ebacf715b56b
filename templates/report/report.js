/* madengine report: filter and paginate the runs table. Plain ES5, no libraries, no network. */
(function () {
  "use strict";
  var PAGE = 100;
  var table = document.getElementById("runs");
  var filter = document.getElementById("filter");
  var pager = document.getElementById("pager");
  if (!table || !filter || !pager) { return; }
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
  var matched = rows;
  var page = 0;

  function button(label, target, disabled) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.disabled = disabled;
    b.addEventListener("click", function () { page = target; show(); });
    return b;
  }

  function show() {
    var pages = Math.max(1, Math.ceil(matched.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    var start = page * PAGE, end = start + PAGE;
    rows.forEach(function (row) { row.hidden = true; });
    matched.slice(start, end).forEach(function (row) { row.hidden = false; });
    pager.textContent = "";
    if (matched.length > PAGE) {
      pager.appendChild(button("‹ prev", page - 1, page === 0));
      pager.appendChild(document.createTextNode(" page " + (page + 1) + " of " + pages + " "));
      pager.appendChild(button("next ›", page + 1, page >= pages - 1));
    }
    pager.appendChild(document.createTextNode(" " + matched.length + " of " + rows.length + " rows"));
  }

  filter.addEventListener("input", function () {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    matched = rows.filter(function (row, i) {
      return words.every(function (w) { return texts[i].indexOf(w) !== -1; });
    });
    page = 0;
    show();
  });
  show();
  document.documentElement.setAttribute("data-report-ready", "1");
}());
