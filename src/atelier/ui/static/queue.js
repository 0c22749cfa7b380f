// Queue: every job the caller may see, kept current by the all-jobs event stream.
"use strict";

(() => {
  const { api, stream, h, badge, progressBar, setProgress, percent, ago, shortId, jobLink, now,
    cancelJob, retryJob, problemText, showBanner } = Atelier;
  const body = document.querySelector("#jobs tbody");
  const empty = document.getElementById("empty");
  const more = document.getElementById("more");
  const live = document.getElementById("live");
  const rows = new Map(); // job id -> {row, job}
  let statusFilter = "";
  let cursor = null;
  let refreshTimer = null;

  function matches(job) {
    return !statusFilter || statusFilter.split(",").includes(job.status);
  }

  function actions(job) {
    const cell = h("td", { class: "row-actions" });
    const act = (label, run) => h("button", {
      type: "button", class: "button small", onclick: async (event) => {
        event.target.disabled = true;
        try {
          update(await run(job.id));
        } catch (error) {
          showBanner(problemText(error));
        }
        event.target.disabled = false;
      },
    }, label);
    if (job.status === "queued" || job.status === "running") {
      if (!job.cancel_requested) cell.append(act("Cancel", cancelJob));
      else cell.append(h("span", { class: "muted small" }, "cancelling…"));
    }
    if (job.status === "failed" || job.status === "cancelled") cell.append(act("Retry", retryJob));
    return cell;
  }

  function render(job) {
    const title = job.workflow ? job.workflow : "graph";
    return h("tr", { dataset: { jobId: job.id, status: job.status } },
      h("td", {}, h("a", { href: jobLink(job.id), class: "mono" }, shortId(job.id)),
        h("div", { class: "muted small" }, title)),
      h("td", {}, badge(job.status)),
      h("td", { class: "wide" }, h("div", { class: "progress-cell" },
        progressBar(job.progress, job.status), h("span", { class: "percent" }, percent(job.progress)))),
      h("td", { class: "now small" }, now(job)),
      h("td", {}, job.backend || "—"),
      h("td", { class: "num" }, job.queue_position === null ? "—" : String(job.queue_position)),
      h("td", { class: "muted small", title: job.created_at }, ago(job.created_at)),
      actions(job),
    );
  }

  function update(job, { append = false } = {}) {
    const existing = rows.get(job.id);
    if (!matches(job)) {
      if (existing) {
        existing.row.remove();
        rows.delete(job.id);
      }
      return;
    }
    const row = render(job);
    if (existing) existing.row.replaceWith(row);
    else if (append) body.append(row);
    else body.prepend(row);
    rows.set(job.id, { row, job });
    empty.hidden = rows.size > 0;
  }

  let generation = 0; // a filter change drops the answers to the previous filter's list
  async function load({ reset = false } = {}) {
    if (reset) {
      generation += 1;
      cursor = null;
      rows.clear();
      body.replaceChildren();
    }
    const ticket = generation;
    const query = new URLSearchParams({ limit: "50" });
    if (statusFilter) query.set("status", statusFilter);
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/api/v1/jobs?${query}`);
    if (ticket !== generation) return;
    for (const job of page.items) update(job, { append: true });
    cursor = page.next_cursor;
    more.hidden = !cursor;
    empty.hidden = rows.size > 0;
  }

  // A job changed in a way a progress event does not carry (status, queue positions):
  // read it again, and the other queued jobs' positions a moment later.
  async function refreshJob(id) {
    try {
      update(await api(`/api/v1/jobs/${encodeURIComponent(id)}`));
    } catch (error) {
      if (error.status === 404) {
        rows.get(id)?.row.remove();
        rows.delete(id);
      }
    }
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshQueued, 400);
  }

  // One request for every queued job's position (a busy queue must not cost a request
  // per row: keys have a rate limit).
  async function refreshQueued() {
    if (![...rows.values()].some(({ job }) => job.status === "queued")) return;
    const page = await api("/api/v1/jobs?status=queued&limit=200");
    for (const job of page.items) if (rows.has(job.id)) update(job);
  }

  function onEvent(event) {
    const entry = rows.get(event.job_id);
    if (event.type === "progress" && entry) {
      const job = Object.assign({}, entry.job, {
        status: "running",
        progress: event.data.progress,
        current_node: event.data.node,
        current_node_type: event.data.node_type,
        step: event.data.step,
        max_steps: event.data.max,
      });
      entry.job = job;
      setProgress(entry.row.querySelector(".progress"), job.progress);
      entry.row.querySelector(".percent").textContent = percent(job.progress);
      entry.row.querySelector(".now").textContent = now(job);
      return;
    }
    if (event.type !== "progress" && event.type !== "output") refreshJob(event.job_id);
  }

  document.querySelectorAll(".filters .chip").forEach((chip) => {
    chip.addEventListener("click", () => {
      document.querySelectorAll(".filters .chip").forEach((c) => c.classList.remove("active"));
      chip.classList.add("active");
      statusFilter = chip.dataset.status;
      load({ reset: true }).catch((error) => showBanner(problemText(error)));
    });
  });
  more.addEventListener("click", () => load().catch((error) => showBanner(problemText(error))));

  // Follow first, then list: the stream starts at the newest event the server had when
  // it answered, so nothing that happens while the list loads is missed.
  let loaded = false;
  function firstLoad() {
    if (loaded) return;
    loaded = true;
    load().catch((error) => showBanner(problemText(error)));
  }
  stream("/api/v1/events?replay=false", onEvent, {
    onState: (state) => {
      live.textContent = state === "live" ? "live" : state;
      live.classList.toggle("on", state === "live");
      if (state === "live") firstLoad();
    },
  });
  setTimeout(firstLoad, 3000); // the list even when the stream cannot open
  setInterval(() => {
    for (const { row, job } of rows.values()) {
      row.children[6].textContent = ago(job.created_at);
    }
  }, 15000);
})();
