// Click a header of a table.sortable to sort its rows by that column (numbers by
// the cell's data-value, else by text); click again to reverse. Empty values last.
document.querySelectorAll("table.sortable").forEach((table) => {
  const headers = Array.from(table.tHead.rows[table.tHead.rows.length - 1].cells);
  headers.forEach((th, col) => th.addEventListener("click", () => {
    const descending = th.getAttribute("aria-sort") === "ascending";
    headers.forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    const key = (row) => {
      const cell = row.cells[col];
      const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent;
      const num = parseFloat(raw);
      return raw === "" || raw === "-" ? null : (isNaN(num) ? raw.toLowerCase() : num);
    };
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach((r) => body.appendChild(r));
  }));
});
