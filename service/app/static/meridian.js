// The plan list's filter and "older plans" link, answered from the GET /plans JSON listing in place.
// Without script, the same controls work as plain links and forms.
(function () {
  "use strict";
  var body = document.querySelector("#plans tbody"), more = document.getElementById("more-line");
  var select = document.getElementById("status");
  if (!body || !select) return;
  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function num(v, digits) { return v === null || v === undefined ? "-" : Number(v).toFixed(digits); }
  function row(p) {
    var tr = document.createElement("tr");
    tr.dataset.plan = p.plan_id;
    tr.appendChild(cell(p.created_at.slice(0, 19).replace("T", " ")));
    tr.appendChild(cell(p.status, "st st-" + p.status));
    tr.appendChild(cell(num(p.objective, 2), "n"));
    tr.appendChild(cell(p.gap === null ? "-" : (100 * p.gap).toFixed(2) + "%", "n"));
    tr.appendChild(cell(num(p.timing.solve_s, 3), "n"));
    var budget = cell(num(p.timing.time_budget_s, 2), "n");
    if (p.budget_cut) {
      var cut = document.createElement("span");
      cut.className = "cut"; cut.textContent = "cut";
      budget.appendChild(document.createTextNode(" ")); budget.appendChild(cut);
    }
    tr.appendChild(budget);
    tr.appendChild(cell(p.engine || "-"));
    tr.appendChild(cell(p.unplaced === null ? "-" : String(p.unplaced), "n"));
    var td = document.createElement("td"), a = document.createElement("a");
    a.href = "/plans/" + p.plan_id + "/view"; a.textContent = p.plan_id.slice(0, 12);
    td.appendChild(a); tr.appendChild(td);
    return tr;
  }
  function load(before, append) {
    var q = "/plans?limit=50" + (select.value ? "&status=" + encodeURIComponent(select.value) : "") +
            (before ? "&before=" + before : "");
    return fetch(q, {headers: {Accept: "application/json"}, credentials: "same-origin"}).then(function (r) {
      if (!r.ok) throw new Error("GET " + q + ": " + r.status);
      return r.json();
    }).then(function (page) {
      if (!append) body.textContent = "";
      page.plans.forEach(function (p) { body.appendChild(row(p)); });
      if (!append && !page.plans.length) {
        var tr = document.createElement("tr"), td = cell("No plans with this status.");
        td.colSpan = 9; tr.className = "empty"; tr.appendChild(td); body.appendChild(tr);
      }
      more.textContent = "";
      if (page.next_before) {
        var a = document.createElement("a");
        a.id = "older"; a.href = "#"; a.dataset.before = page.next_before; a.textContent = "older plans";
        more.appendChild(a);
      }
      history.replaceState(null, "", select.value ? "/?status=" + encodeURIComponent(select.value) : "/");
    }).catch(function (e) { more.textContent = "Could not load plans: " + e.message; });
  }
  select.addEventListener("change", function () { load(null, false); });
  more.addEventListener("click", function (ev) {
    var a = ev.target.closest("a#older");
    if (!a) return;
    ev.preventDefault();
    load(a.dataset.before, true);
  });
})();
