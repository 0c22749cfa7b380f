// Shared by every page: the API key, calls to the JSON API, live events, small DOM helpers.
// Data is always put into the page as text (textContent), never as HTML.
"use strict";

const Atelier = (() => {
  const KEY = "atelier.apiKey";
  const root = document.body.dataset.root || "";

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  function key() {
    return sessionStorage.getItem(KEY);
  }

  function setKey(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    const current = key();
    if (current) headers["Authorization"] = `Bearer ${current}`;
    return headers;
  }

  function toLogin() {
    const here = location.pathname + location.search;
    location.assign(`${root}/ui/login?next=${encodeURIComponent(here)}`);
  }

  // fetch() a JSON API path with the key; a 401 sends the person to the sign-in page.
  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = authHeaders(opts.headers);
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
      delete opts.json;
    }
    const response = await fetch(root + path, opts);
    if (response.status === 401 && !opts.noRedirect) {
      toLogin();
      throw new ApiError(401, { detail: "an API key is required" });
    }
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) throw new ApiError(response.status, typeof body === "object" ? body : { detail: body });
    return body;
  }

  // Server-Sent Events through fetch(), so the Authorization header goes along (EventSource
  // cannot send one) and the key never appears in a URL. Reconnects with Last-Event-ID;
  // a stream the server ends on purpose (a job's, after its last event) is not reopened
  // unless `reconnect` says so.
  function stream(path, onEvent, { reconnect = true, onState = () => {} } = {}) {
    const controller = new AbortController();
    let lastId = null;
    (async () => {
      let delay = 500;
      while (!controller.signal.aborted) {
        try {
          const headers = authHeaders({ Accept: "text/event-stream" });
          if (lastId !== null) headers["Last-Event-ID"] = lastId;
          const response = await fetch(root + path, { headers, signal: controller.signal });
          if (response.status === 401) return toLogin();
          if (!response.ok) throw new ApiError(response.status, null);
          onState("live");
          delay = 500;
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            let end;
            while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
              const frame = buffer.slice(0, end);
              buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
              const event = parseFrame(frame);
              if (event === null) continue;
              if (event.id !== undefined) lastId = event.id;
              onEvent(event);
            }
          }
          if (!reconnect) return onState("ended");
        } catch (error) {
          if (controller.signal.aborted) return;
        }
        onState("reconnecting");
        await sleep(delay);
        delay = Math.min(delay * 2, 10000);
      }
    })();
    return controller;
  }

  function parseFrame(frame) {
    let data = "";
    let id;
    for (const line of frame.split(/\r?\n/)) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") id = value;
    }
    if (!data) return null;
    const event = JSON.parse(data);
    if (id !== undefined) event.id = id;
    return event;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // h("a", {href: "/x", class: "y"}, "text", child...): an element; strings become text.
  function h(tag, attrs, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") element.className = value;
      else if (name === "dataset") Object.assign(element.dataset, value);
      else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else if (value === true) element.setAttribute(name, "");
      else element.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return element;
  }

  function badge(status) {
    return h("span", { class: `badge status-${status}` }, status);
  }

  function setProgress(container, fraction) {
    const value = Math.max(0, Math.min(1, Number(fraction) || 0));
    const bar = container.querySelector(".bar");
    bar.style.width = `${(value * 100).toFixed(1)}%`;
    container.dataset.value = value.toFixed(4);
    container.setAttribute("role", "progressbar");
    container.setAttribute("aria-valuemin", "0");
    container.setAttribute("aria-valuemax", "100");
    container.setAttribute("aria-valuenow", String(Math.round(value * 100)));
  }

  function progressBar(fraction, status) {
    const element = h("div", { class: `progress status-${status || ""}` }, h("div", { class: "bar" }));
    setProgress(element, fraction);
    return element;
  }

  function percent(fraction) {
    return `${Math.round((Number(fraction) || 0) * 100)}%`;
  }

  function ago(iso) {
    if (!iso) return "";
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (seconds < 5) return "just now";
    if (seconds < 60) return `${Math.round(seconds)} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return new Date(iso).toLocaleDateString();
  }

  function time(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : "";
  }

  function dateTime(iso) {
    return iso ? new Date(iso).toLocaleString() : "—";
  }

  function bytes(value) {
    if (value === null || value === undefined) return "—";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let number = Number(value);
    let unit = 0;
    while (number >= 1024 && unit < units.length - 1) {
      number /= 1024;
      unit += 1;
    }
    return `${number.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
  }

  function shortId(id) {
    return String(id).slice(0, 8);
  }

  function jobLink(id) {
    return `${root}/ui/jobs/${encodeURIComponent(id)}`;
  }

  // What the job is doing now: "KSampler #3 · step 12/20", or why it waits.
  function now(job) {
    if (job.status === "queued") {
      return job.queue_position === null || job.queue_position === undefined
        ? "waiting"
        : job.queue_position === 0 ? "next in line" : `${job.queue_position} ahead`;
    }
    if (job.status !== "running") return "";
    const parts = [];
    if (job.current_node_type) parts.push(`${job.current_node_type} #${job.current_node}`);
    if (job.step !== null && job.step !== undefined && job.max_steps) {
      parts.push(`step ${job.step}/${job.max_steps}`);
    }
    return parts.join(" · ") || "starting";
  }

  // One output as what it is: an image (animated ones too), a video or audio player, text.
  function media(artifact, { thumbnail = false } = {}) {
    const label = `${artifact.kind} ${artifact.filename}`;
    if (artifact.kind === "image") {
      return h("img", { src: artifact.url, alt: label, loading: "lazy", class: "media" });
    }
    if (artifact.kind === "video") {
      return h("video", {
        src: artifact.url, class: "media", controls: !thumbnail, muted: true, loop: true,
        playsinline: true, preload: "metadata", "aria-label": label,
      });
    }
    if (artifact.kind === "audio") {
      return h("audio", { src: artifact.url, controls: true, preload: "metadata", "aria-label": label });
    }
    if (artifact.kind === "text") {
      return h("pre", { class: "media text" }, artifact.text || "");
    }
    return h("p", { class: "muted" }, artifact.content_type);
  }

  function downloadLink(artifact) {
    return h("a", { href: artifact.url, download: artifact.filename, class: "button small" }, "Download");
  }

  function problemText(error) {
    if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
    const problem = error.problem;
    const fields = (problem.errors || [])
      .map((item) => [item.field, item.reason || item.message].filter(Boolean).join(": "))
      .filter(Boolean);
    return [problem.detail || problem.title || error.message, ...fields].join(" — ");
  }

  function showBanner(text, kind) {
    const banner = document.getElementById("banner");
    banner.textContent = text;
    banner.className = `banner ${kind || "error"}`;
    banner.hidden = !text;
  }

  async function cancelJob(id) {
    return api(`/api/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  }

  async function retryJob(id) {
    return api(`/api/v1/jobs/${encodeURIComponent(id)}/retry`, { method: "POST" });
  }

  // The header's "who": the key in use (its last characters) and a way out, or the note
  // that this server runs open.
  function renderWho() {
    const who = document.getElementById("who");
    who.replaceChildren();
    if (document.body.dataset.page === "login") return;
    const current = key();
    if (current) {
      who.append(
        h("span", { class: "muted", title: "The API key this tab uses" }, `key …${current.slice(-4)}`),
        h("button", { type: "button", class: "link", onclick: () => { setKey(null); toLogin(); } }, "Sign out"),
      );
    } else {
      who.append(
        h("span", { class: "muted", title: "This server answers without a key (local, no keys yet)" }, "open server"),
        h("a", { href: `${root}/ui/login`, class: "link" }, "Use a key"),
      );
    }
  }

  async function demoNotice() {
    try {
      const response = await fetch(`${root}/`, { headers: { Accept: "application/json" } });
      const info = await response.json();
      if (info.notice) showBanner(info.notice, "info");
    } catch (error) {
      /* the summary is a nicety; the page works without it */
    }
  }

  renderWho();
  if (document.body.dataset.page !== "login") demoNotice();

  return {
    ApiError, api, stream, h, badge, progressBar, setProgress, percent, ago, time, dateTime,
    bytes, shortId, jobLink, now, media, downloadLink, problemText, showBanner, cancelJob,
    retryJob, key, setKey, root, sleep, gallerySources: [],
  };
})();
