// Projects: the caller's projects a page at a time (newest first), and a form to make one.
"use strict";

(() => {
  const { api, h, badge, ago, showBanner, problemText } = Atelier;
  const { projectLink, showProblem, clearProblem } = Studio;
  const body = document.querySelector("#projects tbody");
  const empty = document.getElementById("projects-empty");
  const more = document.getElementById("projects-more");
  const filters = document.getElementById("project-filters");
  const form = document.getElementById("project-form");
  const formError = document.getElementById("project-error");
  let status = "";
  let cursor = null;
  let generation = 0;

  function row(project) {
    return h("tr", { dataset: { projectId: project.id } },
      h("td", {},
        h("a", { href: projectLink(project.id), class: "strong" }, project.name),
        project.description ? h("div", { class: "muted small clamp" }, project.description) : null),
      h("td", {}, badge(project.status)),
      h("td", { class: "small" }, project.defaults.quality || "default"),
      h("td", { class: "small" }, project.published ? "published" : "private"),
      h("td", { class: "small muted", title: project.updated_at }, ago(project.updated_at)));
  }

  async function load(reset) {
    if (reset) {
      generation += 1;
      cursor = null;
    }
    const ticket = generation;
    const query = new URLSearchParams({ limit: "20" });
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await api(`/api/v1/projects?${query}`);
      if (ticket !== generation) return;
      if (reset) body.replaceChildren();
      body.append(...page.items.map(row));
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
    filters.querySelectorAll(".chip").forEach((item) => {
      item.classList.toggle("active", item === chip);
      item.setAttribute("aria-selected", String(item === chip));
    });
    load(true);
  });
  more.addEventListener("click", () => load(false));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form, formError);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const project = await api("/api/v1/projects", {
        method: "POST",
        json: {
          name: document.getElementById("p-name").value.trim(),
          description: document.getElementById("p-description").value,
          status: document.getElementById("p-status").value,
        },
      });
      location.assign(projectLink(project.id));
    } catch (error) {
      showProblem(form, formError, error, "body.");
      button.disabled = false;
    }
  });

  load(true);
})();
