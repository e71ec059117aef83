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

  function render(lang, cost, prefix = "") {
    const out = document.getElementById("preview-" + lang);
    out.className = "preview small";
    if (!cost) { out.textContent = ""; return; }
    if (cost.error) { out.classList.add("bad"); out.textContent = cost.error; return; }
    out.classList.add(cost.encoding);
    out.innerHTML = "";
    const enc = document.createElement("span");
    enc.className = "enc";
    enc.textContent = cost.encoding === "gsm7" ? "GSM-7" : "UCS-2";
    out.append(prefix, enc, ` · ${cost.segments} SMS part${cost.segments === 1 ? "" : "s"} · ${cost.characters} characters`);
  }

  // Every message as sent (a survey: intro + question 1, the follow-ups, the thank-you), a
  // row each, a column per language; then the warnings (past the part limit, placeholders).
  function renderMessages(costs) {
    const box = document.getElementById("preview-messages");
    const list = document.getElementById("preview-warnings");
    if (!box || !list) return;
    box.textContent = "";
    list.textContent = "";
    const messages = (costs && costs.messages) || [];
    if (messages.length) {
      const langs = [...new Set(messages.flatMap((m) => Object.keys(m.costs)))];
      const table = document.createElement("table");
      table.className = "table compact preview-table";
      const head = table.createTHead().insertRow();
      for (const title of ["Message", ...langs]) {
        const th = document.createElement("th");
        th.textContent = title;
        head.append(th);
      }
      const tbody = table.createTBody();
      for (const message of messages) {
        const row = tbody.insertRow();
        row.dataset.key = message.key;
        row.insertCell().textContent = message.label;
        for (const lang of langs) {
          const cell = row.insertCell();
          const cost = message.costs[lang];
          cell.dataset.lang = lang;
          if (!cost) continue;
          if (cost.error) { cell.className = "over"; cell.textContent = cost.error; continue; }
          if (cost.segments > costs.limit) cell.className = "over";
          const enc = cost.encoding === "gsm7" ? "GSM-7" : "UCS-2";
          cell.textContent = `${enc} · ${cost.segments} part${cost.segments === 1 ? "" : "s"}`;
        }
      }
      box.append(table);
    }
    for (const warning of (costs && costs.warnings) || []) {
      const item = document.createElement("li");
      item.textContent = warning;
      if (warning.includes("SMS parts")) item.className = "over";
      list.append(item);
    }
  }

  function scriptFields(prefix) {
    const values = {};
    for (const field of form.querySelectorAll(`[name^="${prefix}_"]`)) {
      if (field.value.trim()) values[field.name.slice(prefix.length + 1)] = field.value;
    }
    return values;
  }

  async function refresh() {
    const body = { texts: {}, kind: kind.value };
    for (const area of texts) if (area.value.trim()) body.texts[area.dataset.lang] = area.value;
    if (kind.value === "survey") {
      body.survey = scriptFields("survey");
      body.thanks = scriptFields("thanks");
    }
    if (!Object.keys(body.texts).length && !Object.keys(body.survey || {}).length) {
      texts.forEach((a) => render(a.dataset.lang, null));
      renderMessages(null);
      return;
    }
    const response = await fetch("/console/preview", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (!response.ok) return;
    const costs = await response.json();
    const first = costs.kind === "survey" && costs.messages.length ? "First message: " : "";
    for (const area of texts) render(area.dataset.lang, costs[area.dataset.lang], first);
    renderMessages(costs);
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  texts.forEach((area) => area.addEventListener("input", later));
  survey.querySelectorAll("textarea, input").forEach((field) => field.addEventListener("input", later));
  kind.addEventListener("change", () => { showSurvey(); later(); });
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
