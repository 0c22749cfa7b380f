// Shared by the studio's pages (projects, runs): links, run rows, the gate scores,
// turning "key: value" lines into objects and back, and a 422's fields onto a form.
"use strict";

const Studio = (() => {
  const { h, root, badge, progressBar, percent, ago, shortId } = Atelier;

  function projectLink(id) {
    return `${root}/ui/projects/${encodeURIComponent(id)}`;
  }

  function runLink(id) {
    return `${root}/ui/runs/${encodeURIComponent(id)}`;
  }

  // "1 min 5 s" from seconds; null when unknown.
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return null;
    const total = Math.max(0, Math.round(Number(seconds)));
    if (total < 60) return `${total} s`;
    const minutes = Math.floor(total / 60);
    return total % 60 ? `${minutes} min ${total % 60} s` : `${minutes} min`;
  }

  function segmentsText(segments) {
    if (!segments) return "—";
    return `${segments.completed}/${segments.total}${segments.failed ? ` · ${segments.failed} failed` : ""}`;
  }

  // One row of a run table; `columns` picks which cells (the project page drops some).
  function runRow(run, { project = true, segments = true } = {}) {
    return h("tr", { dataset: { runId: run.id, status: run.status } },
      h("td", {}, h("a", { href: runLink(run.id), class: "mono" }, shortId(run.id))),
      h("td", {}, run.pipeline),
      project ? h("td", {}, run.project_id ? h("a", { href: projectLink(run.project_id), dataset: { projectId: run.project_id } }, shortId(run.project_id)) : "—") : null,
      h("td", {}, badge(run.status)),
      h("td", {}, h("div", { class: "progress-cell" }, progressBar(run.progress, run.status), h("span", { class: "percent" }, percent(run.progress)))),
      segments ? h("td", { class: "small" }, segmentsText(run.segments)) : null,
      h("td", { class: "small muted", title: run.created_at }, ago(run.created_at)));
  }

  // The project links of a table show the projects' names (each asked for once).
  const projectNames = new Map();
  async function nameProjects(container) {
    for (const link of container.querySelectorAll("a[data-project-id]")) {
      const id = link.dataset.projectId;
      if (!projectNames.has(id)) {
        projectNames.set(id, Atelier.api(`/api/v1/projects/${encodeURIComponent(id)}`).then((p) => p.name, () => null));
      }
      const name = await projectNames.get(id);
      if (name) link.textContent = name;
    }
  }

  // "hair: silver" lines <-> {hair: "silver"}; a value that reads as JSON (a number, a
  // list, an object) is kept as that, so a world setting made through the API survives.
  function linesToObject(text) {
    const result = {};
    for (const line of text.split(/\r?\n/)) {
      if (!line.trim()) continue;
      const colon = line.indexOf(":");
      if (colon <= 0) throw new Error(`"${line.trim()}" is not "key: value"`);
      const key = line.slice(0, colon).trim();
      const raw = line.slice(colon + 1).trim();
      let value = raw;
      if (/^[[{]|^-?\d+(\.\d+)?$|^(true|false|null)$/.test(raw)) {
        try { value = JSON.parse(raw); } catch (error) { value = raw; }
      }
      result[key] = value;
    }
    return result;
  }

  function objectToLines(object) {
    return Object.entries(object || {})
      .map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`)
      .join("\n");
  }

  // A 422's `errors[].field` marks the matching [data-field] of the form; other problems
  // go to the form's error line.
  function showProblem(form, errorLine, error, prefix) {
    clearProblem(form, errorLine);
    const problem = (error && error.problem) || {};
    for (const item of problem.errors || []) {
      let field = String(item.field || "");
      if (prefix && field.startsWith(prefix)) field = field.slice(prefix.length);
      const box = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
      if (!box) continue;
      box.classList.add("invalid");
      box.append(h("span", { class: "field-error" }, item.reason || item.message || "invalid"));
    }
    errorLine.textContent = Atelier.problemText(error);
    errorLine.hidden = false;
  }

  function clearProblem(form, errorLine) {
    form.querySelectorAll(".field.invalid").forEach((box) => box.classList.remove("invalid"));
    form.querySelectorAll(".field-error").forEach((node) => node.remove());
    errorLine.hidden = true;
  }

  // A number input's value, or undefined when empty.
  function numberOf(input) {
    return input.value === "" ? undefined : Number(input.value);
  }

  return { projectLink, runLink, nameProjects, duration, segmentsText, runRow, linesToObject, objectToLines, showProblem, clearProblem, numberOf };
})();
