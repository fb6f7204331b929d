// Shared by the pages: calls to the JSON API (with the bearer token when the server has one), problem display.
// No cookies: the token lives in sessionStorage and goes only into the Authorization header of our own calls.
"use strict";

const clipper = (() => {
  const KEY = "clipper-token";
  const tokenRequired = () => document.body.dataset.tokenRequired === "true";

  function askToken(again) {
    const given = window.prompt(again ? "That token was refused. CLIPPER_WEB_TOKEN:" : "This server needs its token (CLIPPER_WEB_TOKEN):");
    if (given) sessionStorage.setItem(KEY, given.trim());
    return Boolean(given);
  }

  // fetch JSON from the API; a refusal throws {status, error, detail} from the problem JSON (RFC 9457).
  async function api(method, path, body, retried) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && tokenRequired() && !sessionStorage.getItem(KEY) && !askToken(false)) {
      throw { status: 401, error: "Unauthorized", detail: "no token given" };
    }
    const token = sessionStorage.getItem(KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit" });
    if (response.status === 401 && !retried && askToken(Boolean(token))) return api(method, path, body, true);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!response.ok) {
      throw { status: response.status, error: (data && data.error) || response.statusText, detail: (data && data.detail) || text };
    }
    return data;
  }

  function showProblem(problem, where) {
    const box = where || document.getElementById("problem");
    const error = problem && problem.error ? problem.error : "Error";
    const detail = problem && problem.detail ? problem.detail : String(problem);
    box.textContent = "";
    const b = document.createElement("b");
    b.textContent = error;
    box.append(b, ": " + detail);
    box.classList.add("problem-inline");
    box.hidden = false;
  }

  function hms(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const t = Math.max(0, Math.round(seconds));
    const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  // The state people read: a job that failed but waits for a retry is "waiting"; a paused one "paused".
  function shownState(status) {
    if (status.waiting_since) return "waiting";
    if (status.paused_since) return "paused";
    return status.state;
  }

  function setState(el, state) {
    el.textContent = state;
    el.className = "state state-" + state;
  }

  // Poll `fn` every `ms` while the page is open; one call at a time, errors shown but the polling goes on.
  function every(ms, fn) {
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try { await fn(); } catch (e) { console.warn("poll failed", e); } finally { busy = false; }
    };
    tick();
    return setInterval(tick, ms);
  }

  return { api, showProblem, hms, shownState, setState, every };
})();
