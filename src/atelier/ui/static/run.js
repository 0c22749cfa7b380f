// Run page: a pipeline run as GET /api/v1/runs/{id} returns it, kept current by the run's
// event stream (run.step, run.status): progress, the segment timeline, every step with its
// job and its gate scores, the final output, and approve / reject / cancel / retry.
"use strict";

(() => {
  const { api, stream, h, badge, setProgress, progressBar, percent, dateTime, time, bytes, media,
    downloadLink, problemText, showBanner, jobLink, shortId } = Atelier;
  const { projectLink, duration } = Studio;
  const runId = document.getElementById("run").dataset.runId;
  const path = `/api/v1/runs/${encodeURIComponent(runId)}`;
  const $ = (id) => document.getElementById(id);
  const ENDS = ["completed", "failed", "cancelled"];
  let run = null;
  let reloadTimer = null;
  let pollTimer = null;
  let events = null;

  // A step's status as the timeline draws it.
  function segmentState(status) {
    if (status === "completed") return "completed";
    if (status === "running") return "processing";
    if (["failed", "cancelled", "rejected"].includes(status)) return "failed";
    return "queued";
  }

  function kv(list, entries) {
    list.replaceChildren();
    for (const [key, value] of entries) {
      if (value === undefined) continue;
      const shown = value === null || value === "" ? "—" : value instanceof Node ? value
        : typeof value === "object" ? JSON.stringify(value) : String(value);
      list.append(h("dt", {}, key), h("dd", { class: typeof value === "object" && !(value instanceof Node) ? "mono small" : "" }, shown));
    }
  }

  function scoreChip(score) {
    const failed = score.details && Array.isArray(score.details.failed) && score.details.failed.length
      ? ` (${score.details.failed.join(", ")})` : "";
    return h("span", {
      class: `score ${score.passed ? "pass" : "fail"}`,
      title: `${score.name}: ${Number(score.value).toFixed(3)}, needs ${Number(score.threshold).toFixed(2)}${failed}`,
    }, `${score.name} ${Number(score.value).toFixed(2)} / ${Number(score.threshold).toFixed(2)} ${score.passed ? "pass" : "fail"}`);
  }

  // The latest evaluation of each target, then any review (who decided, and why).
  function scores(step) {
    if (!step.scores.length) return h("span", { class: "muted" }, "—");
    const evaluations = step.scores.filter((entry) => entry.target !== undefined);
    const last = Math.max(0, ...evaluations.map((entry) => entry.evaluation || 0));
    const reviews = step.scores.filter((entry) => entry.review !== undefined);
    return h("div", { class: "scores" },
      evaluations.filter((entry) => (entry.evaluation || 0) === last).map((entry) => h("div", { class: "score-row" },
        h("span", { class: "muted small" }, entry.target), (entry.scores || []).map(scoreChip))),
      reviews.map((entry) => h("div", { class: "small" },
        h("span", { class: `tag type-${entry.review === "approved" ? "completed" : "failed"}` }, entry.review),
        entry.comment || "")));
  }

  function stepRow(step) {
    const jobCell = step.job_id
      ? h("a", { href: jobLink(step.job_id), class: "mono", title: step.workflow || "" }, shortId(step.job_id))
      : h("span", { class: "muted" }, step.kind === "job" ? "not yet" : step.kind);
    return h("tr", { dataset: { step: step.name, status: step.status } },
      h("td", {}, h("strong", {}, step.name), step.workflow ? h("div", { class: "muted small" }, step.workflow) : null),
      h("td", {}, h("span", { class: "tag" }, step.group || step.kind)),
      h("td", {}, badge(step.status)),
      h("td", {}, h("div", { class: "progress-cell" }, progressBar(step.progress, step.status), h("span", { class: "percent" }, percent(step.progress)))),
      h("td", {}, jobCell),
      h("td", { class: "num" }, String(step.tries)),
      h("td", {}, scores(step)));
  }

  function renderTimeline() {
    const segments = run.steps.filter((step) => step.group === "segment");
    $("timeline-card").hidden = !segments.length;
    if (!segments.length) return;
    $("timeline").replaceChildren(...segments.map((step, index) => {
      const state = segmentState(step.status);
      const bar = h("div", {
        class: `segment seg-${state}`, role: "listitem", dataset: { step: step.name, state },
        title: `${step.name} · ${state}${step.backend ? ` on ${step.backend}` : ""}`,
        "aria-label": `segment ${index + 1}: ${state}`,
      }, h("div", { class: "segment-fill" }), h("span", { class: "segment-label" }, String(index + 1)));
      bar.firstChild.style.width = `${(state === "processing" ? step.progress : state === "queued" ? 0 : 1) * 100}%`;
      return bar;
    }));
    const s = run.segments || { total: segments.length, completed: 0, failed: 0, processing: 0, pending: 0 };
    $("timeline-counts").textContent =
      `${s.completed} of ${s.total} completed · ${s.processing} processing · ${s.pending} queued · ${s.failed} failed`;
    const eta = $("timeline-eta");
    if (ENDS.includes(run.status) || s.completed === s.total) {
      eta.textContent = s.seconds_per_segment ? `${s.seconds_per_segment.toFixed(1)} s a segment` : "";
    } else if (s.eta_seconds !== null && s.eta_seconds !== undefined) {
      eta.textContent = `ETA ${duration(s.eta_seconds)}${s.estimated_completion ? ` (${time(s.estimated_completion)})` : ""}`;
    } else {
      eta.textContent = "ETA after the first segment";
    }
  }

  function renderOutputs() {
    const box = $("run-outputs");
    if (!run.outputs.length) {
      box.replaceChildren(h("p", { class: "muted" }, run.status === "completed" ? "This run made no files." : "None yet."));
      return;
    }
    box.replaceChildren(...run.outputs.map((artifact) => h("figure", { class: `output kind-${artifact.kind}` },
      media(artifact),
      h("figcaption", {},
        h("div", {}, h("strong", {}, artifact.filename)),
        h("div", { class: "muted small" }, [artifact.content_type, artifact.width ? `${artifact.width}×${artifact.height}` : null, bytes(artifact.size)]
          .filter(Boolean).join(" · ")),
        downloadLink(artifact)))));
  }

  function renderReview() {
    const waiting = run.steps.filter((step) => step.status === "awaiting_review");
    $("run-review").hidden = run.status !== "awaiting_review";
    const why = waiting.map((step) => {
      const failing = step.scores.filter((entry) => entry.target !== undefined && !entry.passed);
      return failing.length ? `${step.name}: a score is below its threshold` : `${step.name}: a person decides`;
    });
    $("run-review-why").textContent = why.join("; ");
  }

  function render() {
    $("run-status").replaceWith(Object.assign(badge(run.status), { id: "run-status" }));
    $("run-title").textContent = `${run.pipeline} · ${run.id}`;
    const bar = $("run-progress");
    bar.className = `progress big status-${run.status}`;
    setProgress(bar, run.progress);
    $("run-percent").textContent = percent(run.progress);
    const done = run.steps.filter((step) => step.status === "completed").length;
    $("run-now").textContent = `${done} of ${run.steps.length} steps done`;
    const error = $("run-error");
    error.hidden = !run.error;
    if (run.error) error.textContent = [run.error.type, run.error.message, (run.error.steps || []).join(", ")].filter(Boolean).join(": ");
    $("run-approve").hidden = $("run-reject").hidden = run.status !== "awaiting_review";
    $("run-cancel").hidden = !(run.status === "running" || run.status === "awaiting_review");
    $("run-retry").hidden = !(run.status === "failed" || run.status === "cancelled");
    renderReview();
    renderTimeline();
    renderOutputs();
    document.querySelector("#run-steps tbody").replaceChildren(...run.steps.map(stepRow));
    kv($("run-params"), Object.entries(run.params).filter(([key]) => key !== "project"));
    kv($("run-details"), [
      ["pipeline", run.pipeline],
      ["project", run.project_id ? h("a", { href: projectLink(run.project_id), id: "run-project" }, projectName || run.project_id) : null],
      ["created", dateTime(run.created_at)],
      ["updated", dateTime(run.updated_at)],
      ["finished", dateTime(run.finished_at)],
    ]);
  }

  let projectName = null;

  async function reload() {
    try {
      run = await api(path);
      if (run.project_id && projectName === null) {
        const project = await api(`/api/v1/projects/${encodeURIComponent(run.project_id)}`).catch(() => null);
        projectName = project ? project.name : run.project_id; // deleted since: its id
      }
      render();
    } catch (error) {
      showBanner(error.status === 404 ? `No run ${runId} (or it is not yours).` : problemText(error));
    }
    // The run's events mark its steps' changes; a step's progress inside its job is not
    // one, so a running run is also read again every 2 s.
    clearTimeout(pollTimer);
    if (run && run.status === "running") pollTimer = setTimeout(reload, 2000);
  }

  function later() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(reload, 150);
  }

  // The server ends a run's stream once the run ends; retry starts it again.
  function follow() {
    if (events) events.abort();
    const live = $("live");
    events = stream(`${path}/events`, (event) => {
      later();
      if (event.type === "run.status" && ENDS.includes(event.data.status)) {
        events.abort();
        live.textContent = "ended";
        live.classList.remove("on");
      }
    }, {
      onState: (state) => {
        live.textContent = state;
        live.classList.toggle("on", state === "live");
      },
    });
  }

  async function act(action, body) {
    try {
      run = await api(`${path}/${action}`, { method: "POST", json: body });
      render();
      if (action === "retry") follow();
      later();
    } catch (error) {
      showBanner(problemText(error));
    }
  }

  const comment = () => ({ comment: $("run-comment").value });
  $("run-approve").addEventListener("click", () => act("approve", comment()));
  $("run-reject").addEventListener("click", () => act("reject", comment()));
  $("run-cancel").addEventListener("click", () => act("cancel"));
  $("run-retry").addEventListener("click", () => act("retry"));
  reload().then(() => {
    if (!run) return;
    if (ENDS.includes(run.status)) $("live").textContent = "ended";
    else follow();
  });
})();
