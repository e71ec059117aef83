// Every page: forget one-time notices. Create form: live preview of each text's encoding and SMS parts, and the survey
// section shown only for survey campaigns. No framework; served from /console/static.
(function () {
  "use strict";
  // A one-time notice (?done=start, upload counts) is not shown again on reload.
  const url = new URL(window.location.href);
  if (["done", "accepted"].some((key) => url.searchParams.has(key))) {
    window.history.replaceState(null, "", url.pathname);
  }
  const form = document.getElementById("campaign-form");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const texts = Array.from(form.querySelectorAll("textarea.sms-text"));
  const kind = form.querySelector("#kind");
  const survey = document.getElementById("survey-fields");
  let timer = null;

  function showSurvey() {
    survey.hidden = kind.value !== "survey";
  }

  function render(lang, cost) {
    const out = document.getElementById("preview-" + lang);
    out.className = "preview small";
    if (!cost) { out.textContent = ""; return; }
    if (cost.error) { out.classList.add("bad"); out.textContent = cost.error; return; }
    out.classList.add(cost.encoding);
    out.innerHTML = "";
    const enc = document.createElement("span");
    enc.className = "enc";
    enc.textContent = cost.encoding === "gsm7" ? "GSM-7" : "UCS-2";
    out.append(enc, ` · ${cost.segments} SMS part${cost.segments === 1 ? "" : "s"} · ${cost.characters} characters`);
  }

  async function refresh() {
    const body = { texts: {} };
    for (const area of texts) if (area.value.trim()) body.texts[area.dataset.lang] = area.value;
    if (!Object.keys(body.texts).length) { texts.forEach((a) => render(a.dataset.lang, null)); return; }
    const response = await fetch("/console/preview", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (!response.ok) return;
    const costs = await response.json();
    for (const area of texts) render(area.dataset.lang, costs[area.dataset.lang]);
  }

  texts.forEach((area) => area.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }));
  kind.addEventListener("change", showSurvey);
  showSurvey();
  refresh();
})();

// Campaign page: while the campaign may change by itself (#campaign-status has data-refresh),
// fetch the page every few seconds and replace its [data-live] parts; stop once it is done.
// Nothing is replaced while the operator is in a form or a dialog on the page.
(function () {
  "use strict";
  const first = document.getElementById("campaign-status");
  if (!first || !first.dataset.refresh) return;
  const every = Math.max(1000, parseInt(first.dataset.refresh, 10) || 5000);

  function busy() {
    const active = document.activeElement;
    const typing = active && active !== document.body && active.matches("input, select, textarea");
    return typing || document.querySelector("dialog[open]") !== null;
  }

  async function tick() {
    if (document.hidden || busy()) { setTimeout(tick, every); return; }
    let next = null;
    try {
      const response = await fetch(window.location.pathname, { credentials: "same-origin" });
      if (response.ok) next = new DOMParser().parseFromString(await response.text(), "text/html");
    } catch (error) { next = null; }
    if (next && !busy()) {
      for (const old of Array.from(document.querySelectorAll("[data-live]"))) {
        const fresh = next.getElementById(old.id);
        if (!fresh) continue;
        for (const open of old.querySelectorAll("details[open]")) {
          const same = open.id && fresh.querySelector("#" + open.id);
          if (same) same.open = true;
        }
        old.replaceWith(document.adoptNode(fresh));
      }
    }
    const status = document.getElementById("campaign-status");
    if (status && status.dataset.refresh) setTimeout(tick, every);
  }

  setTimeout(tick, every);
})();
