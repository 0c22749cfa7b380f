// Runs: every pipeline run the caller may see, newest first, filtered by status (and by
// project with ?project=ID), kept current by the all-events stream.
"use strict";

(() => {
  const { api, stream, showBanner, problemText } = Atelier;
  const { runRow, nameProjects } = Studio;
  const body = document.querySelector("#runs tbody");
  const empty = document.getElementById("runs-empty");
  const more = document.getElementById("runs-more");
  const filters = document.getElementById("run-filters");
  const live = document.getElementById("live");
  const project = new URLSearchParams(location.search).get("project");
  let status = "";
  let cursor = null;
  let shown = 20;
  let generation = 0;
  let timer = null;

  // A reset reloads as many rows as are shown, so "load more" pages survive live updates.
  async function load(reset) {
    if (reset) generation += 1;
    const ticket = generation;
    const query = new URLSearchParams({ limit: String(reset ? Math.min(shown, 100) : 20) });
    if (status) query.set("status", status);
    if (project) query.set("project", project);
    if (!reset && cursor) query.set("cursor", cursor);
    try {
      const page = await api(`/api/v1/runs?${query}`);
      if (ticket !== generation) return;
      if (reset) body.replaceChildren();
      body.append(...page.items.map((run) => runRow(run)));
      nameProjects(body);
      shown = Math.max(20, body.children.length);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty.hidden = body.children.length > 0;
    } catch (error) {
      showBanner(problemText(error));
    }
  }

  filters.addEventListener("click", (event) => {
    const chip = event.target.closest("button[data-status]");
    if (!chip) return;
    status = chip.dataset.status;
    shown = 20;
    filters.querySelectorAll(".chip").forEach((item) => {
      item.classList.toggle("active", item === chip);
      item.setAttribute("aria-selected", String(item === chip));
    });
    load(true);
  });
  more.addEventListener("click", () => load(false));

  // Runs change on their own events (run.step, run.status); a burst reloads once.
  stream("/api/v1/events?replay=false", (event) => {
    if (!String(event.type).startsWith("run.")) return;
    clearTimeout(timer);
    timer = setTimeout(() => load(true), 200);
  }, {
    onState: (state) => {
      live.textContent = state;
      live.classList.toggle("on", state === "live");
      if (state === "live") load(true);
    },
  });
})();
