// The jobs page: the list refreshed every second from GET /api/jobs (plus each open job's status for its title,
// ETA and paused/waiting state), the state filter, and the submit and batch forms (POST to the JSON API).
"use strict";

(() => {
  const tbody = document.querySelector("#jobs tbody");
  const filter = document.getElementById("state-filter");
  const titles = new Map(); // job id -> title, read once for closed jobs
  const DETAIL_MAX = 20; // open jobs whose status is read per refresh

  // A cell; `label` names it where the table is shown without its head (phones: app.css).
  function cell(text, label) {
    const td = document.createElement("td");
    if (text !== undefined) td.textContent = text;
    if (label) td.dataset.label = label;
    return td;
  }

  function row(job, status) {
    const tr = document.createElement("tr");
    // Without a status read: the search attribute's state; for a job no worker has picked up yet, the initial one.
    const state = status ? clipper.shownState(status) : (job.status === "running" ? (job.state || clipper.rules().initial) : (job.state || job.status));
    tr.dataset.job = job.job_id;
    tr.dataset.state = state;
    const progress = status ? Math.round(status.progress * 100) : (job.progress || 0);
    tr.dataset.progress = String(progress);
    const title = cell();
    const a = document.createElement("a");
    a.href = "/jobs/" + encodeURIComponent(job.job_id);
    a.textContent = (status && status.title) || titles.get(job.job_id) || job.job_id;
    title.className = "title";
    title.append(a);
    const st = cell(undefined, "state");
    const badge = document.createElement("span");
    clipper.setState(badge, state);
    st.append(badge);
    const pr = cell(undefined, "progress");
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.setAttribute("aria-label", "progress");
    bar.value = progress;
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = " " + progress + " %";
    pr.append(bar, pct);
    const started = cell(job.started_at ? new Date(job.started_at).toLocaleString() : "", "started");
    const eta = status && status.eta_s ? clipper.duration(status.eta_s) : "";
    tr.append(title, cell(job.source || "", "from"), st, cell((status && status.current_stage) || job.stage || "", "stage"), pr,
      cell(eta, "ETA"), cell(String((status && status.priority) || job.priority || ""), "priority"), started);
    return tr;
  }

  async function refresh() {
    const wanted = filter.value;
    // A shown state is asked for as the server's state it is listed under ("waiting" jobs are "failed" and open);
    // the rows are then kept by their shown state.
    const query = wanted ? "?state=" + encodeURIComponent(clipper.listedAs(wanted)) : "";
    const jobs = await clipper.api("GET", "/api/jobs" + query);
    const open = jobs.filter((j) => j.status === "running").slice(0, DETAIL_MAX);
    const statuses = new Map();
    await Promise.all(open.map(async (j) => {
      try { statuses.set(j.job_id, await clipper.api("GET", "/api/jobs/" + encodeURIComponent(j.job_id))); } catch (e) { /* gone meanwhile */ }
    }));
    for (const [id, s] of statuses) if (s.title) titles.set(id, s.title);
    const closed = jobs.filter((j) => j.status !== "running" && !titles.has(j.job_id)).slice(0, 10);
    await Promise.all(closed.map(async (j) => {
      try { titles.set(j.job_id, (await clipper.api("GET", "/api/jobs/" + encodeURIComponent(j.job_id))).title || ""); } catch (e) { titles.set(j.job_id, ""); }
    }));
    const rows = jobs.map((j) => row(j, statuses.get(j.job_id)))
      .filter((tr) => !wanted || tr.dataset.state === wanted);
    tbody.replaceChildren(...rows);
    document.getElementById("empty").hidden = rows.length > 0;
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  function options(form) {
    const out = {};
    for (const name of ["asr_model", "language", "text_engine"]) {
      const field = form.elements[name];
      if (field && field.value.trim()) out[name] = field.value.trim();
    }
    return out;
  }

  function said(el, text, href) {
    el.textContent = text;
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = " open";
      el.append(a);
    }
  }

  document.getElementById("submit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const out = document.getElementById("submit-result");
    try {
      const r = await clipper.api("POST", "/api/jobs", { url: form.elements.url.value.trim(), priority: Number(form.elements.priority.value), options: options(form) });
      said(out, (r.existing ? "Already submitted: " : "Submitted: ") + r.job_id, "/jobs/" + encodeURIComponent(r.job_id));
      out.dataset.job = r.job_id;
      refresh();
    } catch (problem) { clipper.showProblem(problem, out); }
  });

  document.getElementById("batch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const out = document.getElementById("batch-result");
    const urls = form.elements.urls.value.split("\n").map((u) => u.trim()).filter(Boolean);
    const source = form.elements.source.value.trim();
    const body = { priority: Number(form.elements.priority.value) };
    if (source) body.source = source;
    if (urls.length) body.urls = urls;
    try {
      const r = await clipper.api("POST", "/api/batches", body);
      said(out, (r.existing ? "Already submitted: batch " : "Submitted: batch ") + r.batch_id);
      refresh();
    } catch (problem) { clipper.showProblem(problem, out); }
  });

  filter.addEventListener("change", () => {
    const url = new URL(window.location.href);
    if (filter.value) url.searchParams.set("state", filter.value); else url.searchParams.delete("state");
    history.replaceState(null, "", url);
    refresh();
  });

  clipper.every(1000, refresh);
})();
