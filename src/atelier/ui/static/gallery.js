// Gallery: finished outputs as a grid of thumbnails, filtered by workflow and kind.
// Sources are pluggable: "My outputs" reads GET /api/v1/outputs; another section
// (the studio's published items) adds one with Atelier.gallerySources.push({id, label,
// load(filters, cursor) -> {items: [{artifact, job_id, workflow, created_at}], next}}).
"use strict";

(() => {
  const { api, h, media, jobLink, ago, shortId, downloadLink, problemText, showBanner, gallerySources } = Atelier;
  const grid = document.getElementById("gallery");
  const empty = document.getElementById("gallery-empty");
  const more = document.getElementById("gallery-more");
  const workflowFilter = document.getElementById("filter-workflow");
  const kindFilter = document.getElementById("filter-kind");
  const PAGE = 24;

  // Every output of the jobs the caller may see, filtered and paged by the server.
  const mine = {
    id: "mine",
    label: "My outputs",
    async load(filters, cursor) {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (filters.workflow) query.set("workflow", filters.workflow);
      if (filters.kind) query.set("kind", filters.kind);
      if (cursor) query.set("cursor", cursor);
      const page = await api(`/api/v1/outputs?${query}`);
      return {
        items: page.items.map((artifact) => ({
          artifact, job_id: artifact.job_id, workflow: artifact.workflow, created_at: artifact.created_at,
        })),
        next: page.next_cursor,
      };
    },
  };
  gallerySources.unshift(mine);

  let source = mine;
  let cursor = null;
  let loading = false;

  // A source may link its items elsewhere (`href`, `link_text`) and give a smaller
  // `preview` (an image artifact: a poster frame) than the file itself.
  function card(item) {
    const { artifact } = item;
    const href = item.href || jobLink(item.job_id);
    return h("figure", { class: `tile kind-${artifact.kind}`, dataset: { artifactId: artifact.id } },
      h("a", { href, class: "thumb", title: item.href ? "Open" : "Open the job" }, media(item.preview || artifact, { thumbnail: true })),
      h("figcaption", {},
        h("div", { class: "tile-title" },
          h("span", { class: `tag kind-${artifact.kind}` }, artifact.animated && artifact.kind === "image" ? "animated" : artifact.kind),
          h("span", {}, item.workflow || "graph")),
        h("div", { class: "tile-meta muted small" },
          h("a", { href, class: "mono" }, item.link_text || shortId(item.job_id)),
          ` · ${ago(item.created_at)}`),
        downloadLink(artifact)));
  }

  // A filter change starts over; answers to an older request are dropped, so the grid
  // always shows the last filters chosen.
  let generation = 0;
  async function load(reset) {
    if (loading && !reset) return;
    if (reset) {
      generation += 1;
      cursor = null;
    }
    const ticket = generation;
    loading = true;
    try {
      const filters = { workflow: source.workflows === false ? "" : workflowFilter.value, kind: kindFilter.value };
      const page = await source.load(filters, cursor);
      if (ticket !== generation) return;
      if (reset) grid.replaceChildren();
      grid.append(...page.items.map(card));
      cursor = page.next;
      more.hidden = !cursor;
      empty.hidden = grid.children.length > 0;
    } catch (error) {
      showBanner(problemText(error));
    } finally {
      if (ticket === generation) loading = false;
    }
  }

  // A source with `workflows: false` (the studio's, whose items come from pipelines) has
  // no workflow filter to offer.
  function tabs() {
    workflowFilter.closest("label").hidden = source.workflows === false;
    const box = document.getElementById("sources");
    box.replaceChildren(...gallerySources.map((item) => h("button", {
      type: "button", role: "tab", class: `chip${item === source ? " active" : ""}`,
      "aria-selected": String(item === source),
      onclick: () => { source = item; tabs(); load(true); },
    }, item.label)));
  }

  async function workflows() {
    const { items } = await api("/api/v1/workflows");
    workflowFilter.append(...items.map((w) => h("option", { value: w.name }, w.name)));
  }

  workflowFilter.addEventListener("change", () => load(true));
  kindFilter.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  // After the other scripts of the page have run, so their sources are in the list (a
  // timer could fire while the parser still waits for a later script to download).
  function start() {
    tabs();
    workflows().catch((error) => showBanner(problemText(error)));
    load(true);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
