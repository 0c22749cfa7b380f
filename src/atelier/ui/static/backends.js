// Backends: each ComfyUI's health, VRAM, queue and last error, refreshed every few seconds.
"use strict";

(() => {
  const { api, h, badge, bytes, jobLink, shortId, problemText, showBanner } = Atelier;
  const box = document.getElementById("backends");

  function vram(backend) {
    const total = backend.vram_total;
    const free = backend.vram_free;
    if (!total) return h("p", { class: "muted small" }, "VRAM unknown");
    const used = Math.max(0, total - (free ?? 0));
    const meter = h("div", { class: "meter", role: "meter", "aria-valuemin": "0", "aria-valuemax": String(total), "aria-valuenow": String(used), "aria-label": "VRAM in use" }, h("div", { class: "bar" }));
    meter.querySelector(".bar").style.width = `${((used / total) * 100).toFixed(1)}%`;
    return h("div", { class: "vram" },
      h("div", { class: "vram-label" }, h("span", {}, "VRAM"), h("span", { class: "small" }, `${bytes(free)} free of ${bytes(total)}`)),
      meter);
  }

  function render(backend) {
    const jobs = backend.current_jobs || [];
    return h("section", { class: `card backend status-${backend.status}`, dataset: { backend: backend.name } },
      h("div", { class: "backend-head" },
        h("h2", {}, backend.name), badge(backend.status)),
      h("p", { class: "mono small muted" }, backend.url),
      vram(backend),
      h("dl", { class: "kv compact" },
        h("dt", {}, "Queue"), h("dd", {}, `${backend.queue_length} of ${backend.slots} slots`),
        h("dt", {}, "Current"), h("dd", {}, jobs.length
          ? jobs.map((id, i) => [i ? ", " : "", h("a", { href: jobLink(id), class: "mono" }, shortId(id))])
          : "idle"),
        h("dt", {}, "Node classes"), h("dd", {}, backend.node_classes === null ? "—" : String(backend.node_classes)),
        h("dt", {}, "Last error"), h("dd", { class: backend.last_error ? "error-text" : "muted" }, backend.last_error || "none")));
  }

  async function refresh() {
    try {
      const { items } = await api("/api/v1/backends");
      box.replaceChildren(...items.map(render));
      document.getElementById("backends-empty").hidden = items.length > 0;
      document.getElementById("backends-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      showBanner(problemText(error));
    }
  }

  refresh();
  setInterval(refresh, 3000);
})();
