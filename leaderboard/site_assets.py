"""The style sheet and the sorting script of the static leaderboard site."""

STYLE_CSS = """\
:root { --fg: #1d232b; --muted: #5b6673; --line: #d8dee6; --accent: #1f5fbf; --warn: #a3470b;
        --bg-alt: #f4f6f9; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem 3rem; color: var(--fg); }
header p, .note, .muted { color: var(--muted); }
a { color: var(--accent); }
h2 { margin-top: 2.2rem; border-bottom: 2px solid var(--line); padding-bottom: .3rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .92rem; margin: .6rem 0 1.2rem; }
th, td { border-bottom: 1px solid var(--line); padding: .35rem .55rem; text-align: left;
         white-space: nowrap; }
td.text { white-space: normal; overflow-wrap: anywhere; max-width: 16rem; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: var(--bg-alt); position: sticky; top: 0; }
th button { all: unset; cursor: pointer; }
th button:focus-visible { outline: 2px solid var(--accent); }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
tr.flagged td { background: #fff4ec; }
.badge { display: inline-block; border-radius: .6rem; padding: 0 .45rem; font-size: .78rem;
         background: var(--bg-alt); border: 1px solid var(--line); }
.badge.warn { color: var(--warn); border-color: var(--warn); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 1rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .6rem; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: .4rem; }
.pair figure { margin: 0; }
.pair img { width: 100%; height: auto; background: var(--bg-alt); }
.pair figcaption, .card .scores { font-size: .8rem; color: var(--muted); }
.card p { font-size: .85rem; margin: .4rem 0; }
.missing { display: flex; align-items: center; justify-content: center; aspect-ratio: 1;
           background: var(--bg-alt); color: var(--muted); font-size: .8rem; }
"""

SORT_JS = """\
// Click a column header to sort its table; click again to reverse.
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th) {
    var button = th.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      var numeric = th.classList.contains("num");
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var key = function (row) {
        var cell = row.cells[th.cellIndex];
        var v = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent;
        if (!numeric) { return v.toLowerCase(); }
        return v === "" ? (asc ? Infinity : -Infinity) : parseFloat(v);
      };
      var body = table.tBodies[0];
      Array.from(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""
