// Inbox: new messages appear at the top by themselves, and older pages load as the list is
// scrolled to its end (the "Older messages" link is what is fetched; without this script it
// stays a link and the page refreshes itself). Rows are the server's own, parsed from the
// same page a click would load.
(function () {
  "use strict";
  const body = document.querySelector("#inbox tbody");
  const page = document.querySelector("[data-refresh]");
  if (!page) return;
  const every = Number(page.dataset.refresh) * 1000;

  async function fetched(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return null;
    return new DOMParser().parseFromString(await response.text(), "text/html");
  }

  if (!body) { // partner counts or an empty list: reload as the plain page would
    setTimeout(() => window.location.reload(), every);
    return;
  }

  async function newer() {
    const url = new URL(window.location.href);
    url.searchParams.delete("before");
    const fresh = await fetched(url);
    const newest = Math.max(0, ...Array.from(body.rows, (row) => Number(row.dataset.id)));
    const rows = fresh ? Array.from(fresh.querySelectorAll("#inbox tbody tr")) : [];
    rows.filter((row) => Number(row.dataset.id) > newest).reverse()
      .forEach((row) => body.prepend(document.importNode(row, true)));
    setTimeout(newer, every);
  }

  async function older(pager) {
    const link = pager.querySelector("#inbox-older");
    const next = link ? await fetched(link.href) : null;
    if (!next) return;
    next.querySelectorAll("#inbox tbody tr")
      .forEach((row) => body.append(document.importNode(row, true)));
    const more = next.querySelector(".pager");
    if (more) pager.replaceWith(document.importNode(more, true)); else pager.remove();
    watch();
  }

  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) { observer.unobserve(entry.target); older(entry.target); }
    }
  });
  function watch() {
    const pager = document.querySelector(".pager");
    if (pager) observer.observe(pager);
  }

  if (!new URL(window.location.href).searchParams.has("before")) setTimeout(newer, every);
  watch();
})();
