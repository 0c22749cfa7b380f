// Submit: pick a workflow, fill the form made from its JSON Schema, run it, follow the job.
"use strict";

(() => {
  const { api, h, jobLink, problemText, showBanner, root } = Atelier;
  const list = document.getElementById("workflows");
  const form = document.getElementById("workflow-form");
  const fieldsBox = document.getElementById("fields");
  const presetSelect = document.getElementById("preset");
  const errorBox = document.getElementById("submit-error");
  let current = null; // {name, detail, fields: [{name, get, set, box}]}

  const pretty = (name) => name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

  function field(name, spec, required, control, help) {
    const box = h("div", { class: "field", dataset: { field: name } },
      h("label", { class: "label", for: `f-${name}` }, pretty(name), required ? h("span", { class: "req", title: "required" }, " *") : null),
      control,
      help ? h("span", { class: "help" }, help) : null,
      h("span", { class: "field-error", role: "alert" }));
    return box;
  }

  function isSeed(name, spec) {
    return /seed/i.test(name) && spec.type === "integer" && spec.minimum === -1;
  }

  function numberField(name, spec) {
    const integer = spec.type === "integer";
    const step = spec["x-step"] ?? (integer ? 1 : "any");
    const input = h("input", {
      type: "number", id: `f-${name}`, name, step,
      min: spec.minimum, max: Number.isSafeInteger(spec.maximum) || !integer ? spec.maximum : null,
    });
    const parts = [input];
    let slider = null;
    const bounded = Number.isFinite(spec.minimum) && Number.isFinite(spec.maximum);
    if (bounded && spec.maximum - spec.minimum <= 100000 && !isSeed(name, spec)) {
      slider = h("input", { type: "range", min: spec.minimum, max: spec.maximum, step, tabindex: "-1", "aria-hidden": "true" });
      slider.addEventListener("input", () => { input.value = slider.value; });
      input.addEventListener("input", () => { slider.value = input.value; });
      parts.unshift(slider);
    }
    let random = null;
    if (isSeed(name, spec)) {
      random = h("input", { type: "checkbox", id: `f-${name}-random` });
      random.addEventListener("change", () => {
        input.disabled = random.checked;
        if (!random.checked && (input.value === "" || input.value === "-1")) {
          input.value = String(Math.floor(Math.random() * 2 ** 32));
        }
      });
      parts.push(h("label", { class: "check", for: `f-${name}-random` }, random, "random"));
    }
    const set = (value) => {
      if (random) {
        random.checked = value === -1 || value === undefined || value === null;
        input.disabled = random.checked;
        input.value = random.checked ? "" : String(value);
        return;
      }
      input.value = value === undefined || value === null ? "" : String(value);
      if (slider) slider.value = input.value;
    };
    const get = () => {
      if (random && random.checked) return -1;
      if (input.value === "") return undefined;
      const value = Number(input.value);
      return Number.isNaN(value) ? input.value : value;
    };
    return { control: h("div", { class: "control-row" }, parts), get, set };
  }

  // An image (or video/audio) input: upload a file, give a URL, or pick an earlier output.
  function mediaField(name, spec) {
    const kind = spec["x-media"];
    let value;
    const preview = h("div", { class: "media-preview" });
    const status = h("span", { class: "muted small" });
    const file = h("input", { type: "file", id: `f-${name}`, accept: `${kind}/*` });
    const url = h("input", { type: "url", placeholder: "https://…", id: `f-${name}-url` });
    const outputs = h("div", { class: "picker" }, h("p", { class: "muted small" }, "Loading…"));
    const panes = {
      upload: h("div", { class: "pane" }, file, status),
      url: h("div", { class: "pane", hidden: true }, url),
      output: h("div", { class: "pane", hidden: true }, outputs),
    };
    let loadedOutputs = false;
    const show = (which) => {
      for (const [key, pane] of Object.entries(panes)) pane.hidden = key !== which;
      tabs.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b.dataset.pane === which));
      if (which === "output" && !loadedOutputs) {
        loadedOutputs = true;
        loadOutputs(kind, outputs, (artifact) => choose(artifact.id, null, null)); // the pick shows it
      }
    };
    const tabs = h("div", { class: "tabs" }, ...[["upload", "Upload"], ["url", "URL"], ["output", "Earlier output"]].map(
      ([key, label]) => h("button", { type: "button", class: "tab", dataset: { pane: key }, onclick: () => show(key) }, label)));
    const choose = (id, src, label) => {
      value = id;
      if (!label) preview.replaceChildren();
      else preview.replaceChildren(src && kind === "image" ? h("img", { src, alt: label }) : h("span", { class: "small" }, label));
    };
    file.addEventListener("change", async () => {
      if (!file.files.length) return;
      status.textContent = "uploading…";
      const body = new FormData();
      body.append("file", file.files[0]);
      try {
        const artifact = await api("/api/v1/uploads", { method: "POST", body });
        status.textContent = `uploaded (${artifact.width || "?"}×${artifact.height || "?"})`;
        choose(artifact.id, artifact.url, artifact.filename);
      } catch (error) {
        status.textContent = problemText(error);
        value = undefined;
      }
    });
    url.addEventListener("input", () => {
      value = url.value.trim() || undefined;
      preview.replaceChildren();
    });
    show("upload");
    return {
      control: h("div", { class: "media-input" }, tabs, ...Object.values(panes), preview),
      get: () => value,
      set: (v) => { value = typeof v === "string" && v ? v : undefined; },
    };
  }

  async function loadOutputs(kind, box, onPick) {
    try {
      const page = await api(`/api/v1/outputs?kind=${encodeURIComponent(kind)}&limit=24`);
      const artifacts = page.items;
      if (!artifacts.length) {
        box.replaceChildren(h("p", { class: "muted small" }, `No earlier ${kind} outputs yet.`));
        return;
      }
      box.replaceChildren(...artifacts.map((artifact) => {
        const button = h("button", { type: "button", class: "pick", title: artifact.filename, dataset: { artifactId: artifact.id } },
          kind === "image" ? h("img", { src: artifact.url, alt: artifact.filename, loading: "lazy" }) : artifact.filename);
        button.addEventListener("click", () => {
          box.querySelectorAll(".pick").forEach((b) => b.classList.remove("active"));
          button.classList.add("active");
          onPick(artifact);
        });
        return button;
      }));
    } catch (error) {
      box.replaceChildren(h("p", { class: "error" }, problemText(error)));
    }
  }

  function makeField(name, spec, required) {
    let made;
    let help = spec.description;
    if (spec["x-media"]) {
      made = mediaField(name, spec);
    } else if (spec.type === "string" && Array.isArray(spec.enum)) {
      const select = h("select", { id: `f-${name}`, name },
        required ? null : h("option", { value: "" }, "(default)"),
        ...spec.enum.map((option) => h("option", { value: option }, option)));
      made = { control: select, get: () => select.value || undefined, set: (v) => { select.value = v ?? ""; } };
    } else if (spec.type === "string") {
      const input = spec["x-multiline"]
        ? h("textarea", { id: `f-${name}`, name, rows: 3 })
        : h("input", { type: "text", id: `f-${name}`, name, maxlength: spec.maxLength });
      made = { control: input, get: () => (input.value === "" ? undefined : input.value), set: (v) => { input.value = v ?? ""; } };
    } else if (spec.type === "integer" || spec.type === "number") {
      made = numberField(name, spec);
    } else if (spec.type === "boolean") {
      const box = h("input", { type: "checkbox", id: `f-${name}`, name });
      made = { control: box, get: () => box.checked, set: (v) => { box.checked = Boolean(v); } };
    } else if (spec.type === "array") {
      const input = h("input", { type: "text", id: `f-${name}`, name, placeholder: "name:strength, name:strength" });
      help = [help, "Comma-separated."].filter(Boolean).join(" ");
      made = {
        control: input,
        get: () => {
          const items = input.value.split(",").map((item) => item.trim()).filter(Boolean);
          return items.length ? items : undefined;
        },
        set: (v) => {
          input.value = Array.isArray(v)
            ? v.map((item) => (typeof item === "string" ? item : `${item.name}:${item.strength ?? 1}`)).join(", ")
            : "";
        },
      };
    } else {
      const input = h("textarea", { id: `f-${name}`, name, rows: 2, class: "mono" });
      help = [help, "JSON."].filter(Boolean).join(" ");
      made = {
        control: input,
        get: () => (input.value.trim() ? JSON.parse(input.value) : undefined),
        set: (v) => { input.value = v === undefined ? "" : JSON.stringify(v); },
      };
    }
    made.name = name;
    made.box = field(name, spec, required, made.control, help);
    made.set(spec.default);
    made.baseline = JSON.stringify(made.get());
    return made;
  }

  async function choose(name) {
    list.querySelectorAll("li").forEach((li) => li.classList.toggle("active", li.dataset.name === name));
    history.replaceState(null, "", `${root}/ui/submit?workflow=${encodeURIComponent(name)}`);
    const detail = await api(`/api/v1/workflows/${encodeURIComponent(name)}`);
    const schema = detail.schema || { properties: {} };
    const required = new Set(schema.required || []);
    const fields = Object.entries(schema.properties || {}).map(([key, spec]) => makeField(key, spec, required.has(key)));
    current = { name, detail, fields };
    document.getElementById("workflow-name").textContent = name;
    document.getElementById("workflow-description").textContent = detail.description || "";
    fieldsBox.replaceChildren(...fields.map((f) => f.box));
    const presets = Object.keys(detail.presets || {});
    document.getElementById("preset-field").hidden = !presets.length;
    presetSelect.replaceChildren(h("option", { value: "" }, "(none)"), ...presets.map((p) => h("option", { value: p }, p)));
    const runnable = (detail.backends || []).filter((b) => b.can_run);
    const warning = document.getElementById("workflow-warning");
    warning.hidden = runnable.length > 0;
    if (!runnable.length) {
      const missing = (detail.backends || []).map((b) =>
        `${b.name}: ${[...b.missing_node_classes, ...b.missing_models].join(", ") || b.status}`);
      warning.textContent = `No backend can run this workflow now${missing.length ? ` (${missing.join("; ")})` : " (no backend is configured)"}. A job would wait in the queue.`;
    }
    errorBox.hidden = true;
    document.getElementById("workflow-hint").hidden = true;
    form.hidden = false;
  }

  presetSelect.addEventListener("change", () => {
    const values = (current.detail.presets || {})[presetSelect.value] || {};
    const schema = current.detail.schema.properties;
    for (const f of current.fields) {
      f.set(f.name in values ? values[f.name] : schema[f.name].default);
      f.baseline = JSON.stringify(f.get());
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    form.querySelectorAll(".field.invalid").forEach((box) => box.classList.remove("invalid"));
    const params = {};
    try {
      for (const f of current.fields) {
        // Only what the person changed: defaults (a model the backends have, a fresh
        // seed) and the preset are the server's to apply.
        const value = f.get();
        if (value !== undefined && JSON.stringify(value) !== f.baseline) params[f.name] = value;
      }
    } catch (error) {
      errorBox.textContent = `A field is not valid JSON: ${error.message}`;
      errorBox.hidden = false;
      return;
    }
    const button = document.getElementById("submit-button");
    button.disabled = true;
    const priority = document.getElementById("priority").value || "0";
    try {
      const query = new URLSearchParams({ priority });
      if (presetSelect.value) query.set("preset", presetSelect.value);
      const job = await api(`/api/v1/workflows/${encodeURIComponent(current.name)}/jobs?${query}`,
        { method: "POST", json: params });
      location.assign(jobLink(job.id));
    } catch (error) {
      button.disabled = false;
      errorBox.textContent = problemText(error);
      errorBox.hidden = false;
      for (const item of (error.problem && error.problem.errors) || []) {
        const box = fieldsBox.querySelector(`[data-field="${CSS.escape(String(item.field).split(".")[0])}"]`);
        if (!box) continue;
        box.classList.add("invalid");
        box.querySelector(".field-error").textContent = item.reason || "";
      }
    }
  });

  async function start() {
    const { items } = await api("/api/v1/workflows");
    list.replaceChildren(...items.map((workflow) => h("li", { dataset: { name: workflow.name } },
      h("button", { type: "button", onclick: () => choose(workflow.name).catch((e) => showBanner(problemText(e))) },
        h("span", { class: "wf-head" }, h("span", { class: "wf-name" }, workflow.name),
          ...(workflow.outputs || []).map((kind) => h("span", { class: `tag kind-${kind}` }, kind))),
        h("span", { class: "wf-desc muted small" }, workflow.description || "")))));
    const wanted = new URLSearchParams(location.search).get("workflow");
    if (wanted && items.some((w) => w.name === wanted)) await choose(wanted);
  }
  start().catch((error) => showBanner(problemText(error)));
})();
