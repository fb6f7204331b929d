// The follows page: follow a source, pause/resume/remove a follow, through the JSON API (/api/follows); the page
// is rendered by the server and read again after each change.
"use strict";

(() => {
  const out = document.getElementById("follow-result");

  document.getElementById("follow-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const body = { source: form.elements.source.value.trim(), every_s: Number(form.elements.every_s.value),
                   new_only: form.elements.new_only.checked };
    try {
      const r = await clipper.api("POST", "/api/follows", body);
      out.textContent = (r.existing ? "Already followed: " : "Following: ") + r.follow_id;
      window.location.reload();
    } catch (problem) { clipper.showProblem(problem, out); }
  });

  document.getElementById("follows").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = encodeURIComponent(button.closest("tr").dataset.follow);
    const action = button.dataset.action;
    if (action === "remove" && !window.confirm("Stop following? The jobs it started go on.")) return;
    try {
      if (action === "remove") await clipper.api("DELETE", "/api/follows/" + id);
      else await clipper.api("POST", "/api/follows/" + id + "/" + action);
      window.location.reload();
    } catch (problem) { clipper.showProblem(problem); }
  });
})();
