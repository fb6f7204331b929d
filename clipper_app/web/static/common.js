// Shared by the pages: calls to the JSON API (with the bearer token when the server has one), problem display,
// the state a person reads and clock text. No cookies: the token lives in sessionStorage and goes only into the
// Authorization header of our own calls. The state rules are the server's (clipper/job/status.py), rendered into
// the page as `data-rules`, so this script holds no list of states of its own.
"use strict";

const clipper = (() => {
  const KEY = "clipper-token";
  const tokenRequired = () => document.body.dataset.tokenRequired === "true";
  let parsed = null;

  // {shown, shownBy, listedAs, initial, reloadOn}: see clipper/job/status.py `state_rules` and pages.py RELOAD_ON.
  function rules() {
    if (parsed === null) parsed = JSON.parse(document.body.dataset.rules || "{}");
    return parsed;
  }

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

  // A length (an ETA): m:ss, h:mm:ss from an hour on; "" for none. The one clock text of the pages' scripts, the
  // same as clipper/clock.py `duration` (rounded half to even, like Python's round; tests/unit/test_page_script.py).
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    let t = Math.round(seconds);
    if (Math.abs(seconds % 1) === 0.5 && t % 2 !== 0) t -= 1;
    t = Math.max(0, t);
    const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  // The state people read (clipper/job/status.py `shown_state`): the first of `shownBy`'s fields that is set
  // decides (a job that failed but waits for a retry is "waiting", a paused one "paused"), else its state.
  function shownState(status) {
    for (const [field, shown] of rules().shownBy || []) if (status[field]) return shown;
    return status.state || rules().initial;
  }

  // The server-side state a shown state is listed under (the jobs list's filter): "waiting" jobs are "failed".
  function listedAs(shown) {
    return (rules().listedAs || {})[shown] || shown;
  }

  // Whether a job page that reaches `shown` has more to show than its live parts (outputs, an error).
  function reloadsOn(shown) {
    return (rules().reloadOn || []).includes(shown);
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

  return { api, showProblem, duration, shownState, listedAs, reloadsOn, rules, setState, every };
})();
