// A job's page: status and per-stage progress every second from GET /api/jobs/{id}; the controls (each refusal
// shows the problem's error and detail, the CLI's message); seeking the full audio from chapters and transcript
// lines; copying a quote; naming speakers. New outputs re-render the page (unless something is playing).
"use strict";

(() => {
  const article = document.getElementById("job");
  const job = article.dataset.job;
  const base = "/api/jobs/" + encodeURIComponent(job);
  const result = document.getElementById("control-result");
  const player = document.getElementById("player");
  let artifacts = Number(article.dataset.artifacts);
  let state = article.dataset.state;

  // Only the controls the job takes in its state (pages.py CONTROLS); a control the table does not name stays.
  function showControls(shown) {
    const table = clipper.rules().controls || {};
    for (const el of document.querySelectorAll("#controls [data-control], #controls [data-controls]")) {
      const name = el.dataset.controls || el.dataset.control;
      if (table[name]) el.hidden = !table[name].includes(shown);
    }
  }

  function playing() {
    return [...document.querySelectorAll("audio, video")].some((m) => !m.paused && !m.ended);
  }

  async function refresh() {
    const s = await clipper.api("GET", base);
    const shown = clipper.shownState(s);
    clipper.setState(document.getElementById("state"), shown);
    article.dataset.state = shown;
    showControls(shown);
    const pct = Math.round(s.progress * 100);
    document.getElementById("progress").value = pct;
    document.getElementById("pct").textContent = pct + " %";
    document.getElementById("eta").textContent = s.eta_s ? "about " + clipper.duration(s.eta_s) + " left" : "";
    document.getElementById("priority").textContent = s.priority;
    document.getElementById("waiting").textContent = s.waiting || "";  // e.g. a provider's open circuit breaker
    if (s.title) document.getElementById("title").textContent = s.title;
    for (const stage of s.stages) {
      const tr = document.querySelector('#stages tr[data-stage="' + CSS.escape(stage.name) + '"]');
      if (!tr) continue;
      clipper.setState(tr.querySelector(".sstate span"), stage.state);
      tr.querySelector(".attempt").textContent = stage.attempt || "";
      tr.querySelector("progress").value = Math.round(stage.progress * 100);
    }
    const count = Object.keys(s.artifacts || {}).length;
    // Done, failed or waiting (the server's RELOAD_ON): outputs or the error to show that the live parts do not.
    const ended = clipper.reloadsOn(shown) && shown !== state;
    if ((count > artifacts || ended) && !playing()) window.location.reload();
    if (count > artifacts) artifacts = count;
    state = shown;
  }

  async function control(name) {
    const calls = {
      pause: ["POST", base + "/pause", { now: false }],
      pause_now: ["POST", base + "/pause", { now: true }],
      resume: ["POST", base + "/resume"],
      cancel: ["POST", base + "/cancel"],
      abandon: ["POST", base + "/abandon"],
      priority: ["PUT", base + "/priority", { priority: Number(document.getElementById("priority-select").value) }],
    };
    if ((name === "cancel" || name === "abandon") && !window.confirm(name === "cancel" ? "Cancel this job?" : "Abandon the failed stage and finish without it?")) return;
    result.className = "muted";
    result.textContent = "…";
    try {
      const [method, path, body] = calls[name];
      const r = await clipper.api(method, path, body);
      result.textContent = name === "priority" ? "priority " + r.priority : (r.control || name).replace("_", " ") + " sent";
      refresh();
    } catch (problem) { clipper.showProblem(problem, result); }
  }

  // Delete the ended job and everything it left (DELETE /api/jobs/{id}); a job not ended is refused (409).
  async function remove() {
    if (!window.confirm("Delete this job and everything it left (files, versions, history)? This cannot be undone.")) return;
    result.className = "muted";
    result.textContent = "deleting… (a job that has just ended takes the server about 30 s)";
    try {
      await clipper.api("DELETE", base);
      window.location.href = "/";
    } catch (problem) { clipper.showProblem(problem, result); }
  }

  document.getElementById("controls").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-control]");
    if (button) (button.dataset.control === "delete" ? remove() : control(button.dataset.control));
  });

  document.getElementById("retry-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const options = {};
    for (const field of event.target.elements) if (field.name && field.value.trim()) options[field.name] = field.value.trim();
    try {
      await clipper.api("POST", base + "/retry", { options });
      result.className = "muted";
      result.textContent = "retry sent";
    } catch (problem) { clipper.showProblem(problem, result); }
  });

  // Click a chapter, a quote's time or a transcript line: the full audio plays from there.
  function seek(start) {
    if (!player) return;
    const go = () => { player.currentTime = start; player.play().catch(() => {}); };
    if (player.readyState >= 1) go(); else { player.addEventListener("loadedmetadata", go, { once: true }); player.load(); }
  }
  document.addEventListener("click", (event) => {
    const target = event.target.closest(".seek, .line");
    if (target && target.dataset.start !== undefined) seek(Number(target.dataset.start));
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.classList && event.target.classList.contains("line")) seek(Number(event.target.dataset.start));
  });

  // Copy a quote: the async clipboard when allowed, else a hidden textarea and execCommand (older or plain-HTTP pages).
  async function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return true; } catch (e) { /* fall back */ }
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok;
  }
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const cite = button.dataset.cite ? " — " + button.dataset.cite : "";
      const ok = await copy("“" + button.dataset.text + "”" + cite);
      button.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }

  const speakers = document.getElementById("speakers-form");
  if (speakers) {
    speakers.addEventListener("submit", async (event) => {
      event.preventDefault();
      const names = {};
      for (const field of speakers.querySelectorAll("input[name]")) if (field.value.trim() !== field.defaultValue.trim()) names[field.name] = field.value.trim();
      const out = document.getElementById("speakers-result");
      if (!Object.keys(names).length) { out.textContent = "nothing changed"; return; }
      out.className = "muted";
      out.textContent = "saving… (the transcript and report are written again)";
      try {
        await clipper.api("POST", base + "/speakers", names);
        window.location.reload();
      } catch (problem) { clipper.showProblem(problem, out); }
    });
  }

  clipper.every(1000, refresh);
})();
