// Reading a job's transcript while listening (the job page; job.js does its status, controls and clicks):
// - the line being spoken is highlighted (class "current", aria-current) and kept in view inside the transcript's
//   own scroll box (never the page), scrolled only when it leaves the box, smoothly unless the reader asked for
//   reduced motion, and not for a few seconds after the reader scrolled the box themselves;
// - find in the transcript: lines holding the words are marked, case and accents ignored ("cafe" finds "Café"),
//   with "n of m"; Enter / Shift+Enter go to the next / previous match, Escape clears;
// - keyboard shortcuts when focus is not in a field: Space play/pause, ←/→ 5 s back/ahead, j/k next/previous line
//   (the audio goes there), / find, ? the list of shortcuts;
// - `?t=<seconds>` in the page's address (a search hit): the player starts at that second, its line highlighted.
"use strict";

(() => {
  const player = document.getElementById("player");
  const box = document.querySelector("#transcript .lines");
  const lines = box ? [...box.querySelectorAll(".line")] : [];
  const starts = lines.map((line) => Number(line.dataset.start));
  const reduced = window.matchMedia("(prefers-reduced-motion: reduce)");
  const SEEK_S = 5;
  const HANDS_OFF_MS = 4000; // after the reader scrolls the transcript, following leaves it alone this long
  let current = null;
  let scrolledAt = -Infinity;

  // The index of the line spoken at `t`: the last one starting at or before it (lines are in time order); -1 before
  // the first.
  function lineAt(t) {
    let lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= t + 0.05) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  // Scroll the transcript's box so `el` is inside it, a third of the way down; nothing if it is already in view.
  function keepInView(el) {
    if (!box || !el) return;
    const outer = box.getBoundingClientRect(), inner = el.getBoundingClientRect();
    if (inner.top >= outer.top && inner.bottom <= outer.bottom) return;
    const top = box.scrollTop + (inner.top - outer.top) - (box.clientHeight - inner.height) / 3;
    box.scrollTo({ top: Math.max(0, top), behavior: reduced.matches ? "auto" : "smooth" });
  }

  function follow() {
    highlight(lineAt(player.currentTime));
  }

  function highlight(i) {
    const line = i >= 0 ? lines[i] : null;
    if (line === current) return;
    if (current) { current.classList.remove("current"); current.removeAttribute("aria-current"); }
    current = line;
    if (!line) return;
    line.classList.add("current");
    line.setAttribute("aria-current", "true");
    if (performance.now() - scrolledAt > HANDS_OFF_MS) keepInView(line);
  }

  if (player && lines.length) {
    for (const name of ["timeupdate", "seeked"]) player.addEventListener(name, follow);
    // `?t=<seconds>` (a search hit's link): the player starts there and the line spoken then is highlighted.
    // The link's second is truncated: the line is the first one starting within that second, else the one spoken.
    const t = Number(new URLSearchParams(location.search).get("t"));
    if (t > 0 && Number.isFinite(t)) {
      const within = starts.findIndex((s) => s >= t && s < t + 1);
      const i = within >= 0 ? within : lineAt(t);
      highlight(i);
      seekTo(within >= 0 ? starts[i] : t);
    }
    for (const name of ["wheel", "touchmove"]) box.addEventListener(name, () => { scrolledAt = performance.now(); }, { passive: true });
  }

  // --- find in the transcript ---
  const find = document.getElementById("find");
  const count = document.getElementById("find-count");
  const texts = lines.map((line) => line.querySelector(".text").textContent);
  let folded = null; // each line's text folded, built at the first search
  let marked = new Set();
  let marks = [];
  let at = -1;

  // `text` folded for matching (lower case, accents dropped), with where each folded character came from.
  function fold(text) {
    let out = "";
    const from = [], to = [];
    for (let i = 0; i < text.length;) {
      const ch = String.fromCodePoint(text.codePointAt(i));
      const f = ch.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
      for (let k = 0; k < f.length; k++) { from.push(i); to.push(i + ch.length); }
      out += f;
      i += ch.length;
    }
    return { out, from, to };
  }

  function say() {
    count.textContent = marks.length ? (at + 1) + " of " + marks.length : (find.value.trim() ? "no match" : "");
  }

  function goTo(k) {
    if (marks[at]) marks[at].classList.remove("match-current");
    at = k;
    const mark = marks[at];
    mark.classList.add("match-current");
    keepInView(mark.closest(".line"));
    say();
  }

  function search() {
    const query = fold(find.value.trim()).out;
    for (const n of marked) {
      lines[n].querySelector(".text").textContent = texts[n];
      lines[n].classList.remove("match-line");
    }
    marked = new Set();
    marks = [];
    at = -1;
    if (query) {
      folded = folded || texts.map(fold);
      lines.forEach((line, n) => {
        const f = folded[n], text = texts[n];
        let i = f.out.indexOf(query);
        if (i < 0) return;
        const parts = [];
        let last = 0;
        while (i >= 0) {
          const s = f.from[i], e = f.to[i + query.length - 1];
          const mark = document.createElement("mark");
          mark.textContent = text.slice(s, e);
          parts.push(text.slice(last, s), mark);
          marks.push(mark);
          last = e;
          i = f.out.indexOf(query, i + query.length);
        }
        parts.push(text.slice(last));
        line.querySelector(".text").replaceChildren(...parts);
        line.classList.add("match-line");
        marked.add(n);
      });
    }
    if (marks.length) goTo(0); else say();
  }

  if (find) {
    find.addEventListener("input", search);
    find.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        if (marks.length) goTo((at + (event.shiftKey ? -1 : 1) + marks.length) % marks.length);
      } else if (event.key === "Escape") {
        event.preventDefault();
        if (find.value) { find.value = ""; search(); } else find.blur();
      }
    });
  }

  // --- keyboard shortcuts ---
  const keys = document.getElementById("keys");
  const FIELD = /^(INPUT|TEXTAREA|SELECT)$/;
  const OWN_SPACE = /^(BUTTON|SUMMARY|A|AUDIO|VIDEO)$/; // elements Space activates by itself
  const OWN_ARROWS = /^(AUDIO|VIDEO)$/; // players seek with the arrows by themselves

  function seekTo(t) {
    if (!player) return;
    const go = () => { player.currentTime = Math.max(0, Math.min(t, Number.isFinite(player.duration) ? player.duration : t)); };
    if (player.readyState >= 1) go(); else { player.addEventListener("loadedmetadata", go, { once: true }); player.load(); }
  }

  function toLine(step) {
    if (!player || !lines.length) return;
    const i = Math.min(lines.length - 1, Math.max(0, lineAt(player.currentTime) + step));
    seekTo(starts[i]);
    if (document.activeElement && document.activeElement.classList.contains("line")) lines[i].focus({ preventScroll: true });
  }

  document.addEventListener("keydown", (event) => {
    const el = event.target;
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (el && (el.isContentEditable || FIELD.test(el.tagName))) return;
    const tag = el ? el.tagName : "";
    let done = true;
    if (event.key === " " && player && !OWN_SPACE.test(tag)) {
      if (player.paused) player.play().catch(() => {}); else player.pause();
    } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && player && !OWN_ARROWS.test(tag)) {
      seekTo(player.currentTime + (event.key === "ArrowLeft" ? -SEEK_S : SEEK_S));
    } else if (event.key === "j" || event.key === "k") {
      toLine(event.key === "j" ? 1 : -1);
    } else if (event.key === "/" && find) {
      find.focus();
      find.select();
    } else if (event.key === "?" && keys) {
      keys.open = !keys.open;
    } else if (event.key === "Escape" && keys && keys.open) {
      keys.open = false;
    } else {
      done = false;
    }
    if (done) event.preventDefault();
  });
})();
