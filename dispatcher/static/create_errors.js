// Create form: a refused form keeps everything the user gave it, the chosen audience file
// included (a browser never gives a file input back to a page it reloads). The form is sent
// with fetch; a created campaign goes to its page as before; a refused one (400) only has its
// problems put in place — the summary above the form and each field's message — from the
// server's page, while every input stays as it is. Without this script the form posts as
// usual and the page names the file to choose again.
(function () {
  "use strict";
  const form = document.getElementById("campaign-form");
  if (!form || !window.fetch || !window.DOMParser) return;
  const ERRORS = ".field-error, #form-errors";

  // An element's place below `root`: child indexes among elements that are no error message,
  // so the same place is found in the server's page and in this one.
  function path(root, node) {
    const steps = [];
    for (let at = node; at !== root; at = at.parentElement) {
      const siblings = Array.from(at.parentElement.children).filter((e) => !e.matches(ERRORS));
      steps.unshift(siblings.indexOf(at));
    }
    return steps;
  }

  function find(root, steps) {
    let at = root;
    for (const index of steps) {
      const children = Array.from(at.children).filter((e) => !e.matches(ERRORS));
      at = children[index];
      if (!at) return null;
    }
    return at;
  }

  function place(page) {
    document.querySelectorAll(ERRORS).forEach((e) => e.remove());
    const fresh = page.getElementById("campaign-form");
    for (const message of fresh.querySelectorAll(".field-error")) {
      if (message.id === "file-again") continue; // the file is still chosen here
      let before = message.previousElementSibling;
      while (before && before.matches(ERRORS)) before = before.previousElementSibling;
      const parent = find(form, path(fresh, message.parentElement));
      if (!parent) continue;
      const anchor = before ? find(form, path(fresh, before)) : null;
      const copy = document.importNode(message, true);
      if (anchor) anchor.after(copy); else parent.prepend(copy);
    }
    const summary = page.getElementById("form-errors");
    if (summary) {
      const copy = document.importNode(summary, true);
      copy.tabIndex = -1;
      form.before(copy);
      copy.focus();
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
      });
      if (response.redirected) {
        window.location.assign(response.url);
        return;
      }
      const text = await response.text();
      const page = new DOMParser().parseFromString(text, "text/html");
      if (response.status === 400 && page.getElementById("campaign-form")) {
        place(page);
        return;
      }
      document.open();
      document.write(text); // another refusal (an expired session, a busy server): its page
      document.close();
    } catch (error) {
      form.submit(); // the network failed under the script: post as a plain form
    } finally {
      button.disabled = false;
    }
  });
})();
