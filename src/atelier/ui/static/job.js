// Job page: the job as GET returns it, kept current by its own event stream.
"use strict";

(() => {
  const { api, stream, h, badge, setProgress, percent, dateTime, time, bytes, now, media,
    downloadLink, cancelJob, retryJob, problemText, showBanner, jobLink } = Atelier;
  const jobId = document.getElementById("job").dataset.jobId;
  const path = `/api/v1/jobs/${encodeURIComponent(jobId)}`;
  const eventsBody = document.querySelector("#job-events tbody");
  let job = null;
  let reloadTimer = null;
  let progressRow = null;

  function kv(list, entries) {
    list.replaceChildren();
    for (const [key, value] of entries) {
      if (value === undefined) continue;
      const shown = value === null || value === "" ? "—"
        : typeof value === "object" ? JSON.stringify(value) : String(value);
      list.append(h("dt", {}, key), h("dd", { class: typeof value === "object" ? "mono small" : "" }, shown));
    }
  }

  function seconds(value) {
    return value === null || value === undefined ? null : `${Number(value).toFixed(2)} s`;
  }

  function renderProgress() {
    const container = document.getElementById("job-progress");
    container.className = `progress big status-${job.status}`;
    setProgress(container, job.progress);
    document.getElementById("job-percent").textContent = percent(job.progress);
    document.getElementById("job-now").textContent = now(job);
  }

  function renderOutputs() {
    const box = document.getElementById("job-outputs");
    if (!job.outputs.length) {
      box.replaceChildren(h("p", { class: "muted" }, job.status === "completed" ? "This job made no files." : "None yet."));
      return;
    }
    box.replaceChildren(...job.outputs.map((artifact) => h("figure", { class: `output kind-${artifact.kind}` },
      media(artifact),
      h("figcaption", {},
        h("div", {}, h("strong", {}, artifact.filename)),
        h("div", { class: "muted small" }, [
          artifact.animated ? "animated " + artifact.content_type : artifact.content_type,
          artifact.width ? `${artifact.width}×${artifact.height}` : null,
          bytes(artifact.size),
        ].filter(Boolean).join(" · ")),
        downloadLink(artifact)))));
  }

  function render() {
    document.getElementById("job-status").replaceWith(Object.assign(badge(job.status), { id: "job-status" }));
    document.getElementById("job-title").textContent = job.workflow ? `${job.workflow} · ${job.id}` : job.id;
    renderProgress();
    const error = document.getElementById("job-error");
    error.hidden = !job.error;
    if (job.error) {
      error.textContent = [job.error.type, job.error.message, job.error.node_type && `(${job.error.node_type} #${job.error.node_id})`]
        .filter(Boolean).join(": ");
    }
    const active = job.status === "queued" || job.status === "running";
    document.getElementById("job-cancel").hidden = !active || job.cancel_requested;
    document.getElementById("job-retry").hidden = !(job.status === "failed" || job.status === "cancelled");
    renderOutputs();
    if (job.params) kv(document.getElementById("job-params"), Object.entries(job.params));
    else kv(document.getElementById("job-params"), [["graph", "a raw ComfyUI graph (no template)"]]);
    kv(document.getElementById("job-details"), [
      ["workflow", job.workflow ? `${job.workflow} v${job.workflow_version}` : null],
      ["priority", job.priority],
      ["backend", job.backend],
      ["attempt", job.attempt],
      ["created", dateTime(job.created_at)],
      ["started", dateTime(job.started_at)],
      ["finished", dateTime(job.finished_at)],
      ["waited", seconds(job.queue_seconds)],
      ["ran", seconds(job.execution_seconds)],
      ["labels", Object.keys(job.labels).length ? job.labels : null],
      ["metadata", Object.keys(job.metadata).length ? job.metadata : null],
    ]);
    const attempts = document.querySelector("#job-attempts tbody");
    attempts.replaceChildren(...job.attempts.map((attempt) => h("tr", {},
      h("td", {}, String(attempt.number)), h("td", {}, attempt.backend), h("td", {}, badge(attempt.status)),
      h("td", {}, dateTime(attempt.started_at)), h("td", {}, dateTime(attempt.finished_at)),
      h("td", { class: "mono small" }, attempt.prompt_id),
      h("td", { class: "small" }, attempt.error ? `${attempt.error.type}: ${attempt.error.message}` : ""))));
    if (!job.attempts.length) attempts.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "Not started yet.")));
  }

  async function reload() {
    try {
      job = await api(path);
      render();
    } catch (error) {
      showBanner(error.status === 404 ? `No job ${jobId} (or it is not yours).` : problemText(error));
    }
  }

  function later() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(reload, 150);
  }

  function describe(event) {
    const data = event.data || {};
    switch (event.type) {
      case "progress":
        return `${percent(data.progress)}${data.node_type ? ` · ${data.node_type} #${data.node}` : ""}${data.max ? ` · step ${data.step}/${data.max}` : ""}`;
      case "running":
        return `on ${data.backend}, attempt ${data.attempt}`;
      case "output":
        return `${data.kind} ${data.filename}`;
      case "queued":
        return `priority ${data.priority ?? 0}`;
      case "completed":
        return `${data.outputs ?? 0} output${data.outputs === 1 ? "" : "s"}`;
      case "cancelled":
        return "cancelled";
      case "requeued":
        return data.reason || "back in the queue";
      default:
        return data.error ? `${data.error.type}: ${data.error.message}` : Object.keys(data).length ? JSON.stringify(data) : "";
    }
  }

  // Progress ticks update one row (the latest), so the list stays readable.
  function onEvent(event) {
    const row = h("tr", { dataset: { type: event.type } },
      h("td", { class: "num" }, String(event.id)), h("td", { class: "small" }, time(event.created_at)),
      h("td", {}, h("span", { class: `tag type-${event.type}` }, event.type)), h("td", { class: "small" }, describe(event)));
    if (event.type === "progress" && progressRow) progressRow.replaceWith(row);
    else eventsBody.append(row);
    progressRow = event.type === "progress" ? row : null;
    if (job && event.type === "progress") {
      Object.assign(job, {
        status: "running", progress: event.data.progress, current_node: event.data.node,
        current_node_type: event.data.node_type, step: event.data.step, max_steps: event.data.max,
      });
      renderProgress();
    } else {
      later();
    }
  }

  async function act(run) {
    try {
      job = await run(jobId);
      render();
      if (job.status === "queued") location.assign(jobLink(job.id)); // a retry: follow it anew
    } catch (error) {
      showBanner(problemText(error));
    }
  }

  document.getElementById("job-cancel").addEventListener("click", () => act(cancelJob));
  document.getElementById("job-retry").addEventListener("click", () => act(retryJob));
  // The server ends a job's stream after its last event; a dropped one is reopened
  // (Last-Event-ID) until that last event has arrived.
  let events = null;
  reload().then(() => {
    if (!job) return;
    events = stream(`${path}/events`, (event) => {
      onEvent(event);
      if (["completed", "failed", "cancelled"].includes(event.type)) events.abort();
    });
  });
})();
