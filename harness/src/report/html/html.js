"use strict";
// Renders a cell's story when its <details> opens, opens the cell named by
// `#cell=ID` (and every cell with `#open=all`), and filters the cell lists.
// Every value from the data is set as text (textContent), never as markup.
(function () {
  const cells = JSON.parse(document.getElementById("crtest-data").textContent);
  const byId = new Map(cells.map((c, i) => [c.id, i]));

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function href(path) {
    return path.split("/").map(encodeURIComponent).join("/");
  }
  function row(table, cellsText, classes) {
    const tr = el("tr");
    cellsText.forEach((t, i) => tr.append(el("td", classes && classes[i], t)));
    table.append(tr);
    return tr;
  }
  function head(table, names) {
    const tr = el("tr");
    names.forEach((n) => tr.append(el("th", null, n)));
    table.append(tr);
  }
  function secs(s) {
    return typeof s === "number" ? s.toFixed(2) + "s" : "";
  }
  function cellLink(id, status) {
    const a = el("a", null, id + (status ? " (" + status + ")" : ""));
    a.href = "#cell=" + encodeURIComponent(id);
    return a;
  }

  function facts(x, out) {
    const t = el("table", "facts");
    const add = (k, v) => {
      const tr = el("tr");
      tr.append(el("th", null, k));
      const td = el("td");
      if (v instanceof Node) td.append(v); else td.textContent = v;
      tr.append(td);
      t.append(tr);
    };
    add("status", x.status);
    if (x.reason) add("reason", x.reason);
    if (x.known) {
      const k = el("span");
      k.append(el("span", "tag known", "known"), " " + x.known.id + (x.known.title ? ": " + x.known.title : ""));
      x.known.upstream.forEach((u) => k.append(el("br"), "upstream: " + u));
      add("known incompatibility", k);
    }
    if (x.control) {
      const c = el("span");
      c.append(cellLink(x.control, x.control_status));
      add("control", c);
    } else if (x.control_only) {
      add("control", "this cell is a control (the matrix does not name it)");
    }
    if (x.dump_after !== null && x.dump_after !== undefined) add("dumped after step", x.dump_after);
    out.append(t);
  }

  function stages(x, out) {
    if (!x.stages.length) return;
    out.append(el("h4", null, "Stages"));
    const t = el("table", "stages");
    head(t, ["stage", "outcome", "time", "message"]);
    x.stages.forEach((s) => row(t, [s.stage, s.outcome, secs(s.secs), s.message || ""], [null, s.outcome === "ok" ? "ok" : "bad"]));
    out.append(t);
  }

  function chain(x, out) {
    if (!x.chain.length) return;
    out.append(el("h4", null, "Conversion chain"));
    const t = el("table", "chain");
    head(t, ["step", "from", "to", "converter", "result", "check", "time", "message"]);
    const n = x.chain.length;
    x.chain.forEach((s, i) => {
      const result = s.ok ? "ok" : s.broken ? "ERROR" : "FAIL";
      const check = s.checked === undefined || s.checked === null ? "not checked" : s.checked + " images decode with " + s.to + "'s crit";
      const msg = [s.note, s.message].filter((m) => m).join("; ");
      row(t, [i + 1 + "/" + n, s.from, s.to, s.converter, result, check, secs(s.secs), msg], [null, null, null, null, s.ok ? "ok" : "bad"]);
    });
    out.append(t);
  }

  function transcript(x, out) {
    if (!x.transcript) return;
    const d = x.transcript;
    out.append(el("h4", null, "Transcript: first difference (line " + d.line + ")"));
    out.append(el("p", null, d.summary));
    const box = el("div", "diff");
    [["reference (expected)", d.expected], ["restored", d.actual]].forEach(([name, lines]) => {
      const col = el("div");
      col.append(el("b", null, name));
      const pre = el("pre");
      if (!lines.length) pre.append("(no lines here)");
      lines.forEach(([n, text]) => {
        const line = el("span", n === d.line ? "hit" : null);
        line.append(el("span", "n", n), text);
        pre.append(line, "\n");
      });
      col.append(pre);
      box.append(col);
    });
    out.append(box);
  }

  function state(x, out) {
    if (!x.state) return;
    out.append(el("h4", null, "Open fds and mappings: restore vs dump"));
    out.append(el("pre", null, x.state));
  }

  function logs(x, out) {
    x.logs.forEach((t) => {
      if (t.error.length) {
        out.append(el("h4", null, t.name + ": first error"));
        const pre = el("pre");
        t.error.forEach(([n, text]) => {
          const line = el("span", text.includes("Error (") ? "hit" : null);
          line.append(el("span", "n", n), text);
          pre.append(line, "\n");
        });
        out.append(pre);
      }
      out.append(el("h4", null, t.name + (t.cut ? " (last lines)" : "")));
      out.append(el("pre", null, t.lines.join("\n")));
    });
  }

  function links(x, out) {
    if (!x.links.length) return;
    out.append(el("h4", null, "Artifacts"));
    const ul = el("ul", "links");
    x.links.forEach((l) => {
      const li = el("li");
      const a = el("a", null, l.name + (l.dir ? "/" : ""));
      a.href = href(x.dir + "/" + l.name);
      li.append(a);
      ul.append(li);
    });
    out.append(ul);
  }

  function body(i) {
    const x = cells[i].x;
    const out = document.createDocumentFragment();
    [facts, stages, chain, transcript, state, logs, links].forEach((f) => f(x, out));
    return out;
  }

  function fill(d) {
    if (d.dataset.done) return;
    d.dataset.done = "1";
    d.querySelector(".body").append(body(+d.dataset.i));
  }
  // toggle does not bubble: listen in the capture phase, once for all cells.
  document.addEventListener("toggle", (e) => {
    const d = e.target;
    if (d.classList && d.classList.contains("cell") && d.open) fill(d);
  }, true);

  const boxes = Array.from(document.querySelectorAll("#filters input[name=st]"));
  const fw = document.getElementById("f-w");
  const fk = document.getElementById("f-k");
  function visible(c) {
    const st = boxes.filter((b) => b.checked).map((b) => b.value);
    return st.includes(c.st) && (!fw.value || c.w === fw.value) && (!fk.value || c.sk === fk.value || c.dk === fk.value);
  }
  function apply() {
    let shown = 0;
    document.querySelectorAll("details.cell").forEach((d) => {
      const on = visible(cells[+d.dataset.i]);
      d.hidden = !on;
      if (on) shown++;
    });
    document.querySelectorAll("section.group").forEach((s) => {
      s.hidden = !s.querySelector("details.cell:not([hidden])");
    });
    document.querySelectorAll("table.wgrid").forEach((t) => {
      t.hidden = !!fw.value && t.dataset.w !== fw.value;
    });
    document.getElementById("shown").textContent = shown + " of " + cells.length + " cells";
  }
  boxes.forEach((b) => b.addEventListener("change", apply));
  fw.addEventListener("change", apply);
  fk.addEventListener("change", apply);

  function fromHash() {
    const h = location.hash.slice(1);
    if (h === "open=all") {
      document.querySelectorAll("details.cell").forEach((d) => { fill(d); d.open = true; });
      return;
    }
    if (!h.startsWith("cell=")) return;
    const i = byId.get(decodeURIComponent(h.slice(5)));
    if (i === undefined) return;
    const d = document.getElementById("c" + i);
    if (d.hidden) {
      boxes.forEach((b) => { b.checked = true; });
      fw.value = "";
      fk.value = "";
      apply();
    }
    fill(d);
    d.open = true;
    // Scroll only when the cell is out of view, so a link within the page does not jump.
    const top = d.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight - 60) d.scrollIntoView({ block: "start" });
  }
  window.addEventListener("hashchange", fromHash);
  apply();
  fromHash();
})();
