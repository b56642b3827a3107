// The shell: sign-in and sign-out, the navigation bar, and the list of pages.
// To add a page: write <name>.js (see router.js for its shape), import it here and add it to PAGES.

import {api, clearToken, getToken, onSignedOut, setToken} from "./api.js";
import {fill, h} from "./dom.js";
import {allPages, current, link, register, show} from "./router.js";
import accounts from "./accounts.js";
import account from "./account.js";
import settings from "./settings.js";
import tokens from "./tokens.js";
import activity from "./activity.js";
import deliveries from "./deliveries.js";

const PAGES = [accounts, account, activity, deliveries, settings, tokens];

const $ = (id) => document.getElementById(id);
// Whether the token may use admin-only pages (page.admin): learned once per sign-in from the API
// itself (GET /v1/settings answers 403 to other tokens), kept in memory only.
let isAdmin = null;

async function learnRole() {
  if (isAdmin !== null) return;
  try {
    await api("GET", "/v1/settings");
    isAdmin = true;
  } catch (error) {
    isAdmin = error.status === 403 ? false : null; // anything else: ask again on the next page
  }
}

function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = !text;
}

function renderNav(active) {
  fill($("nav"), allPages().filter((page) => page.nav && (!page.admin || isAdmin !== false)).map((page) =>
    h("a", {href: link(page.name), class: page.name === active ? "active" : null,
            "aria-current": page.name === active ? "page" : null}, page.title)));
}

function signedIn() {
  return Boolean(getToken());
}

async function route() {
  const view = $("view");
  if (!signedIn()) {
    view.replaceChildren();
    $("nav").replaceChildren();
    $("sign-in").hidden = false;
    $("sign-out").hidden = true;
    $("token").focus();
    return;
  }
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  await learnRole();
  await show(view, renderNav);
}

async function signIn(event) {
  event.preventDefault();
  const input = $("token");
  const token = input.value.trim();
  const error = $("sign-in-error");
  error.hidden = true;
  try {
    // Any API token may list accounts (a bound one sees its own): the cheapest check that it works.
    await api("GET", "/v1/accounts", {query: {pageSize: 1}, token});
  } catch (failure) {
    fill(error, h("strong", {class: "code"}, failure.code), " ", failure.message);
    error.hidden = false;
    return;
  }
  input.value = "";
  setToken(token);
  notice("");
  // replaceState, not location.hash: a hashchange would render the page a second time, replacing
  // the first rendering under the operator's (or a test's) first click.
  if (!location.hash) history.replaceState(null, "", link(current().name));
  await route();
}

// The hosted OAuth2 form sends the browser back here with ?account=..&state=new|existing or ?error=..:
// say what happened, then drop the query so a reload does not repeat it.
function oauthReturn() {
  const params = new URLSearchParams(location.search);
  if (!params.has("error") && !params.has("state")) return;
  if (params.has("error")) notice(`Authorization failed: ${params.get("error")}`);
  else notice(`Account ${params.get("account") || ""} authorized (${params.get("state")}).`);
  history.replaceState(null, "", location.pathname + (params.get("account") ? link("account", params.get("account")) : location.hash));
}

for (const page of PAGES) register(page);
$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => { clearToken(); notice("Signed out."); });
onSignedOut((reason) => {
  isAdmin = null;
  if (reason) notice(reason);
  route();
});
window.addEventListener("hashchange", () => { route(); });
oauthReturn();
route();
