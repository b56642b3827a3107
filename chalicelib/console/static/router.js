// The tiny router: the location hash names the page and its arguments, "#/<page>/<arg>/<arg>".
// Arguments are URI-encoded segments (account ids can hold any character the API allows).
// A page is {name, title, nav, admin, render(view, args, {isCurrent})}: nav puts it in the navigation
// bar, admin hides it there from tokens that are not admin; render may be async. The hash never holds a token.

const pages = new Map();
let fallback = null;
let renderCount = 0;

export function register(page) {
  pages.set(page.name, page);
  if (!fallback) fallback = page.name;
}

export function allPages() { return [...pages.values()]; }

export function link(name, ...args) {
  return `#/${[name, ...args].map(encodeURIComponent).join("/")}`;
}

export function go(name, ...args) { location.hash = link(name, ...args); }

export function current() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const name = pages.has(parts[0]) ? parts[0] : fallback;
  return {name, args: pages.has(parts[0]) ? parts.slice(1) : []};
}

// Render the page the hash names into `view`; a newer navigation wins over a slower older one
// (isCurrent() lets a page drop the answers of an abandoned render).
export async function show(view, onShown) {
  const {name, args} = current();
  const page = pages.get(name);
  const ticket = ++renderCount;
  view.replaceChildren();
  view.dataset.page = name;
  view.dataset.render = String(ticket); // how many pages this document has rendered (tests read it)
  document.title = `${page.title} · imapless console`;
  if (onShown) onShown(name);
  await page.render(view, args, {isCurrent: () => ticket === renderCount});
}
