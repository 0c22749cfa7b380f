// A project's characters: cards with their traits and reference images, a form to add or
// edit one, and three ways to add a reference (upload, URL, an earlier output).
"use strict";

const Characters = (() => {
  const { api, h, problemText, showBanner } = Atelier;
  const { linesToObject, objectToLines, showProblem, clearProblem, numberOf } = Studio;

  function init({ projectId, onChange }) {
    const base = `/api/v1/projects/${encodeURIComponent(projectId)}/characters`;
    const list = document.getElementById("characters");
    const card = document.getElementById("character-card");
    const form = document.getElementById("character-form");
    const formError = document.getElementById("character-error");
    const field = (name) => document.getElementById(`c-${name}`);
    let editing = null; // the character being edited, or null for a new one
    let characters = [];

    function kvList(entries) {
      const shown = entries.filter(([, value]) => value !== null && value !== undefined && value !== "");
      return h("dl", { class: "kv compact" }, shown.flatMap(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]));
    }

    function referenceThumb(character, reference) {
      return h("figure", { class: "ref", dataset: { artifactId: reference.artifact_id } },
        h("img", { src: reference.url, alt: `reference of ${character.name}`, loading: "lazy" }),
        h("button", {
          type: "button", class: "ref-remove", title: "Remove this reference", "aria-label": "Remove reference",
          onclick: () => change(api(`${base}/${encodeURIComponent(character.id)}/references/${encodeURIComponent(reference.artifact_id)}`, { method: "DELETE" })),
        }, "×"));
    }

    // Upload / URL / Earlier output, each ending in POST .../references.
    function referenceAdder(character) {
      const path = `${base}/${encodeURIComponent(character.id)}/references`;
      const status = h("span", { class: "muted small" });
      const add = (body) => change(api(path, { method: "POST", json: body }), status);
      const file = h("input", { type: "file", accept: "image/*", "aria-label": `Upload a reference for ${character.name}` });
      file.addEventListener("change", async () => {
        if (!file.files.length) return;
        status.textContent = "uploading…";
        const form = new FormData();
        form.append("file", file.files[0]);
        try {
          const artifact = await api("/api/v1/uploads", { method: "POST", body: form });
          await add({ artifact: artifact.id });
        } catch (error) {
          status.textContent = problemText(error);
        }
      });
      const url = h("input", { type: "url", placeholder: "https://…/reference.png", "aria-label": `Reference URL for ${character.name}` });
      const urlButton = h("button", { type: "button", class: "button small", onclick: () => url.value.trim() && add({ url: url.value.trim() }) }, "Add");
      const picker = h("div", { class: "picker" });
      const panes = {
        upload: h("div", { class: "pane" }, file),
        url: h("div", { class: "pane" }, url, urlButton),
        output: h("div", { class: "pane" }, picker),
      };
      let loaded = false;
      const tabs = h("div", { class: "tabs" }, ...[["upload", "Upload"], ["url", "URL"], ["output", "Earlier output"]].map(([key, label]) =>
        h("button", { type: "button", class: "tab", dataset: { pane: key }, onclick: () => show(key) }, label)));
      function show(which) {
        for (const [key, pane] of Object.entries(panes)) pane.hidden = key !== which;
        tabs.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b.dataset.pane === which));
        if (which === "output" && !loaded) {
          loaded = true;
          outputs(picker, (artifact) => add({ artifact: artifact.id }));
        }
      }
      show("upload");
      return h("div", { class: "ref-add" }, h("div", { class: "label" }, "Add a reference"), tabs, ...Object.values(panes), status);
    }

    async function outputs(box, onPick) {
      try {
        const page = await api("/api/v1/outputs?kind=image&limit=24");
        if (!page.items.length) {
          box.replaceChildren(h("p", { class: "muted small" }, "No earlier image outputs yet."));
          return;
        }
        box.replaceChildren(...page.items.map((artifact) => h("button", {
          type: "button", class: "pick", title: artifact.filename, dataset: { artifactId: artifact.id },
          onclick: () => onPick(artifact),
        }, h("img", { src: artifact.url, alt: artifact.filename, loading: "lazy" }))));
      } catch (error) {
        box.replaceChildren(h("p", { class: "error" }, problemText(error)));
      }
    }

    function characterCard(character) {
      const traits = Object.entries(character.visual_traits || {}).map(([key, value]) =>
        h("span", { class: "tag" }, `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`));
      return h("article", { class: "character", dataset: { characterId: character.id, name: character.name } },
        h("div", { class: "character-head" },
          h("h3", {}, character.name),
          h("div", { class: "spacer" }),
          h("button", { type: "button", class: "button small", onclick: () => edit(character) }, "Edit"),
          h("button", {
            type: "button", class: "button small", onclick: () => {
              if (confirm(`Delete ${character.name}?`)) change(api(`${base}/${encodeURIComponent(character.id)}`, { method: "DELETE" }));
            },
          }, "Delete")),
        character.description ? h("p", { class: "muted" }, character.description) : null,
        traits.length ? h("div", { class: "traits" }, traits) : null,
        kvList([
          ["prompt", character.prompt_fragment],
          ["LoRA", character.lora],
          ["seed", character.seed === null ? null : String(character.seed)],
        ]),
        h("div", { class: "refs" },
          character.references.length
            ? character.references.map((reference) => referenceThumb(character, reference))
            : h("p", { class: "muted small" }, "No reference images: pipelines then go by the prompt alone.")),
        referenceAdder(character));
    }

    function render() {
      list.replaceChildren(...(characters.length ? characters.map(characterCard) : [h("p", { class: "muted" }, "None yet. Add one: the generate form can then put them in.")]));
    }

    async function load() {
      characters = (await api(base)).items;
      render();
      onChange(characters);
    }

    // Any change (a reference added or removed, a deletion) reloads the list.
    async function change(promise, status) {
      try {
        await promise;
        await load();
      } catch (error) {
        if (status) status.textContent = problemText(error);
        else showBanner(problemText(error));
      }
    }

    function edit(character) {
      editing = character;
      clearProblem(form, formError);
      document.getElementById("character-form-title").textContent = character ? `Edit ${character.name}` : "New character";
      field("name").value = character ? character.name : "";
      field("prompt_fragment").value = character ? character.prompt_fragment : "";
      field("lora").value = character && character.lora ? character.lora : "";
      field("seed").value = character && character.seed !== null ? String(character.seed) : "";
      field("description").value = character ? character.description : "";
      field("visual_traits").value = character ? objectToLines(character.visual_traits) : "";
      card.hidden = false;
      card.scrollIntoView({ block: "nearest" });
      field("name").focus();
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearProblem(form, formError);
      let traits;
      try {
        traits = linesToObject(field("visual_traits").value);
      } catch (error) {
        showProblem(form, formError, new Atelier.ApiError(422, { detail: error.message, errors: [{ field: "visual_traits", reason: error.message }] }));
        return;
      }
      const body = {
        name: field("name").value.trim(),
        prompt_fragment: field("prompt_fragment").value,
        description: field("description").value,
        visual_traits: traits,
        lora: field("lora").value.trim() || null,
        seed: numberOf(field("seed")) ?? null,
      };
      try {
        await (editing
          ? api(`${base}/${encodeURIComponent(editing.id)}`, { method: "PATCH", json: body })
          : api(base, { method: "POST", json: body }));
        card.hidden = true;
        await load();
      } catch (error) {
        showProblem(form, formError, error, "body.");
      }
    });
    document.getElementById("character-new").addEventListener("click", () => edit(null));
    document.getElementById("character-cancel").addEventListener("click", () => { card.hidden = true; });
    return { load };
  }

  return { init };
})();
