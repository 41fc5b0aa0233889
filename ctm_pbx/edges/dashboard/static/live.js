// The call log's live feed: rows for calls that start or end, without a reload.
// Only on the unfiltered first page (a filtered view would need the filter's rules here).
(function () {
  var table = document.querySelector("table.log[data-live] tbody");
  var status = document.getElementById("live-status");
  if (!table || !window.EventSource) return;
  var feed = new EventSource("/calls/live");
  feed.addEventListener("open", function () { if (status) status.textContent = "live"; });
  feed.addEventListener("error", function () { if (status) status.textContent = "reconnecting…"; });
  feed.addEventListener("call", function (event) {
    var call = JSON.parse(event.data);
    var row = table.querySelector('tr[data-call="' + call.id + '"]');
    var fresh = !row;
    if (fresh) {
      row = document.createElement("tr");
      row.setAttribute("data-call", call.id);
      var empty = table.querySelector("td.empty");
      if (empty) empty.parentNode.remove();
    }
    row.textContent = "";
    call.cells.forEach(function (text, i) {
      var cell = document.createElement("td");
      if (i === 0) {
        var link = document.createElement("a");
        link.href = "/calls/" + call.id;
        link.textContent = text;
        cell.appendChild(link);
      } else if (i === 5) {
        var badge = document.createElement("span");
        badge.className = "outcome " + (call.status === "in_progress" ? "in_progress" : text.replace(/ /g, "_"));
        badge.textContent = text;
        cell.appendChild(badge);
      } else {
        cell.textContent = text;
      }
      if (i === 6 || i === 8) cell.className = "num";
      row.appendChild(cell);
    });
    if (fresh) table.insertBefore(row, table.firstChild);
  });
})();
