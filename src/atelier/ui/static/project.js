// A project: its bible (view and edit), characters, defaults, its runs, and "generate",
// which starts a run and goes to its page.
"use strict";

(() => {
  const { api, h, badge, showBanner, problemText } = Atelier;
  const { runLink, runRow, linesToObject, objectToLines, showProblem, clearProblem, numberOf } = Studio;
  const projectId = document.getElementById("project").dataset.projectId;
  const base = `/api/v1/projects/${encodeURIComponent(projectId)}`;
  const $ = (id) => document.getElementById(id);
  let project = null;

  function saved(id) {
    $(id).textContent = `saved ${new Date().toLocaleTimeString()}`;
  }

  function renderProject() {
    document.title = `${project.name} · Atelier`;
    $("project-name").textContent = project.name;
    $("project-status").replaceWith(Object.assign(badge(project.status), { id: "project-status" }));
    $("project-description").textContent = project.description;
    $("project-description").hidden = !project.description;
    const d = project.defaults;
    $("d-quality").value = d.quality || "";
    $("d-checkpoint").value = d.checkpoint || "";
    for (const name of ["width", "height", "fps"]) $(`d-${name}`).value = d[name] === null ? "" : String(d[name]);
    $("d-status").value = project.status;
    $("d-published").checked = project.published;
  }

  function palette(colors) {
    $("b-swatches").replaceChildren(...colors.map((color) => {
      const swatch = h("span", { class: "swatch", title: color });
      swatch.style.background = color;
      return swatch;
    }));
  }

  function renderBible(bible) {
    $("b-style_prompt").value = bible.style.style_prompt;
    $("b-negative_prompt").value = bible.style.negative_prompt;
    $("b-palette").value = bible.style.palette.join(", ");
    palette(bible.style.palette);
    $("b-world").value = objectToLines(bible.world);
  }

  async function loadRuns() {
    const page = await api(`/api/v1/runs?project=${encodeURIComponent(projectId)}&limit=10`);
    const body = document.querySelector("#project-runs tbody");
    body.replaceChildren(...page.items.map((run) => runRow(run, { project: false, segments: false })));
    if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No runs yet: generate something.")));
  }

  function characterChoices(characters) {
    const select = $("g-character");
    const chosen = select.value;
    select.replaceChildren(h("option", { value: "" }, "(none)"), ...characters.map((c) => h("option", { value: c.name }, c.name)));
    if (characters.some((c) => c.name === chosen)) select.value = chosen;
  }

  const characters = Characters.init({ projectId, onChange: characterChoices });

  // Bible: PATCH only the style and the world (the API's title and description stay).
  const bibleForm = $("bible-form");
  $("b-palette").addEventListener("input", () => palette(colorsOf($("b-palette").value)));
  function colorsOf(text) {
    return text.split(",").map((item) => item.trim()).filter(Boolean);
  }
  bibleForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(bibleForm, $("bible-error"));
    let world;
    try {
      world = linesToObject($("b-world").value);
    } catch (error) {
      showProblem(bibleForm, $("bible-error"), new Atelier.ApiError(422, { detail: error.message, errors: [{ field: "world", reason: error.message }] }));
      return;
    }
    try {
      const bible = await api(`${base}/bible`, {
        method: "PATCH",
        json: {
          style: {
            style_prompt: $("b-style_prompt").value,
            negative_prompt: $("b-negative_prompt").value,
            palette: colorsOf($("b-palette").value),
          },
          world,
        },
      });
      renderBible(bible);
      saved("bible-saved");
    } catch (error) {
      showProblem(bibleForm, $("bible-error"), error, "body.");
    }
  });

  const defaultsForm = $("defaults-form");
  defaultsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(defaultsForm, $("defaults-error"));
    try {
      project = await api(base, {
        method: "PATCH",
        json: {
          status: $("d-status").value,
          published: $("d-published").checked,
          defaults: {
            quality: $("d-quality").value || null,
            checkpoint: $("d-checkpoint").value.trim() || null,
            width: numberOf($("d-width")) ?? null,
            height: numberOf($("d-height")) ?? null,
            fps: numberOf($("d-fps")) ?? null,
          },
        },
      });
      renderProject();
      saved("defaults-saved");
    } catch (error) {
      showProblem(defaultsForm, $("defaults-error"), error, "body.");
    }
  });

  // Generate: only what is filled in is sent, so the project's defaults and presets apply.
  const generateForm = $("generate-form");
  generateForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(generateForm, $("generate-error"));
    const segments = $("g-segments").value.trim();
    const body = {
      prompt: $("g-prompt").value.trim(),
      duration: numberOf($("g-duration")) ?? 0,
      segments: segments === "" || segments === "auto" ? "auto" : Number(segments),
      review: $("g-review").value,
    };
    for (const name of ["character", "style", "scene_type", "quality"]) {
      if ($(`g-${name}`).value) body[name] = $(`g-${name}`).value;
    }
    for (const name of ["width", "height", "steps", "seed"]) {
      if ($(`g-${name}`).value !== "") body[name] = numberOf($(`g-${name}`));
    }
    const button = generateForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const run = await api(`${base}/generate`, { method: "POST", json: body });
      location.assign(runLink(run.id));
    } catch (error) {
      showProblem(generateForm, $("generate-error"), error, "body.");
      button.disabled = false;
    }
  });

  async function start() {
    try {
      project = await api(base);
    } catch (error) {
      showBanner(error.status === 404 ? `No project ${projectId} (or it is not yours).` : problemText(error));
      return;
    }
    renderProject();
    $("project-runs-link").href = `${Atelier.root}/ui/runs?project=${encodeURIComponent(projectId)}`;
    try {
      renderBible(await api(`${base}/bible`));
      await characters.load();
      await loadRuns();
      document.getElementById("project").dataset.ready = "true"; // the forms hold what is saved
    } catch (error) {
      showBanner(problemText(error));
    }
  }

  start();
})();
