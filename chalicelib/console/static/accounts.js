// Accounts: every account the token sees, with its state, last error and latest event; a filter by
// state and a search (in the browser while every account fits in one page; beyond that the API's
// own `state` / `query` parameters of GET /v1/accounts, when the server has them);
// adding an account with a password (verified first, same error codes as the API) or through an
// OAuth2 application's hosted authorization form.

import {api} from "./api.js";
import {ago, errorBox, field, fill, formatDate, h, statePill} from "./dom.js";
import {go, link} from "./router.js";

const STATES = ["new", "connecting", "connected", "authenticationError", "connectError", "syncError",
                "disconnected", "disabled"];
const LIST_PAGE_SIZE = 1000;
const EVENT_LOG_SIZE = 200;

let serverFilters = true; // until the API refuses `state` / `query` once (a server without them)

async function loadAccounts(state, text) {
  if (serverFilters && (state || text)) {
    try {
      return await api("GET", "/v1/accounts", {query: {pageSize: LIST_PAGE_SIZE, state, query: text}});
    } catch (error) {
      if (error.status !== 400) throw error;
      serverFilters = false;
    }
  }
  return api("GET", "/v1/accounts", {query: {pageSize: LIST_PAGE_SIZE}});
}

// The newest logged event of each account, from the webhook delivery log (one request for all).
async function latestEvents() {
  try {
    const log = await api("GET", "/v1/webhooks/deliveries", {query: {pageSize: EVENT_LOG_SIZE}});
    const latest = new Map();
    for (const delivery of log.deliveries) {
      if (!latest.has(delivery.account)) latest.set(delivery.account, delivery);
    }
    return latest;
  } catch {
    return new Map(); // the column stays empty; the accounts themselves still show
  }
}

function matches(account, state, text) {
  if (state && account.state !== state) return false;
  if (!text) return true;
  const needle = text.toLowerCase();
  return [account.account, account.name, account.email, account.imap && account.imap.host]
    .some((value) => value && String(value).toLowerCase().includes(needle));
}

function errorCell(lastError) {
  if (!lastError) return "";
  return h("div", {class: "last-error"},
    h("strong", {class: "code"}, lastError.code), " ", lastError.message,
    lastError.serverResponse ? h("div", {class: "muted mono"}, lastError.serverResponse) : null,
    h("div", {class: "muted"}, "since ", formatDate(lastError.since)));
}

function accountRow(account, latest) {
  const event = latest.get(account.account);
  return h("tr", {dataset: {account: account.account}},
    h("td", {"data-label": "Account"},
      h("a", {href: link("account", account.account), class: "account-link"}, account.name || account.account),
      account.name ? h("div", {class: "muted mono"}, account.account) : null),
    h("td", {"data-label": "State"}, statePill(account.state)),
    h("td", {"data-label": "Email"}, account.email || ""),
    h("td", {"data-label": "Last error"}, errorCell(account.lastError)),
    h("td", {"data-label": "Created"}, formatDate(account.createdAt)),
    h("td", {"data-label": "Last event"}, event ? [event.event, " ", h("span", {class: "muted"}, ago(event.date))] : ""));
}

function accountTable(accounts, latest) {
  if (!accounts.length) return h("p", {class: "muted", id: "no-accounts"}, "No account matches.");
  return h("div", {class: "table-wrap"}, h("table", {class: "stack", id: "accounts"},
    h("thead", {}, h("tr", {}, ["Account", "State", "Email", "Last error", "Created", "Last event"].map((t) => h("th", {}, t)))),
    h("tbody", {}, accounts.map((account) => accountRow(account, latest)))));
}

// The password form: "Verify" asks POST /v1/verifyAccount; "Add" registers (the API verifies again).
function passwordForm(onAdded) {
  const inputs = {
    account: h("input", {name: "account", placeholder: "optional: generated when empty", spellcheck: "false"}),
    name: h("input", {name: "name"}),
    email: h("input", {name: "email", type: "email", required: true}),
    host: h("input", {name: "host", required: true, placeholder: "imap.example.com", spellcheck: "false"}),
    port: h("input", {name: "port", type: "number", value: "993", min: "1", max: "65535", required: true}),
    secure: h("input", {name: "secure", type: "checkbox", checked: true}),
    user: h("input", {name: "user", required: true, autocomplete: "off", spellcheck: "false"}),
    pass: h("input", {name: "pass", type: "password", required: true, autocomplete: "new-password"}),
    smtpHost: h("input", {name: "smtpHost", placeholder: "optional", spellcheck: "false"}),
    smtpPort: h("input", {name: "smtpPort", type: "number", value: "465", min: "1", max: "65535"}),
    smtpSecure: h("input", {name: "smtpSecure", type: "checkbox", checked: true}),
  };
  const result = h("div", {class: "result", "aria-live": "polite"});
  const imap = () => ({host: inputs.host.value.trim(), port: Number(inputs.port.value), secure: inputs.secure.checked,
                       auth: {user: inputs.user.value, pass: inputs.pass.value}});
  const smtp = () => inputs.smtpHost.value.trim()
    ? {host: inputs.smtpHost.value.trim(), port: Number(inputs.smtpPort.value), secure: inputs.smtpSecure.checked,
       auth: {user: inputs.user.value, pass: inputs.pass.value}}
    : undefined;

  async function verify() {
    fill(result, h("p", {class: "muted"}, "Verifying…"));
    try {
      const answer = await api("POST", "/v1/verifyAccount", {body: {imap: imap(), smtp: smtp()}});
      fill(result, ...["imap", "smtp"].filter((k) => answer[k]).map((k) => verdict(k.toUpperCase(), answer[k])));
    } catch (error) {
      fill(result, errorBox(error));
    }
  }

  async function add(event) {
    event.preventDefault();
    fill(result, h("p", {class: "muted"}, "Adding…"));
    const body = {email: inputs.email.value.trim(), imap: imap(), smtp: smtp()};
    if (inputs.account.value.trim()) body.account = inputs.account.value.trim();
    if (inputs.name.value.trim()) body.name = inputs.name.value.trim();
    try {
      const created = await api("POST", "/v1/account", {body});
      onAdded(created.account);
    } catch (error) {
      fill(result, errorBox(error), error.details && error.details.serverResponse
        ? h("div", {class: "muted mono"}, error.details.serverResponse) : null);
    }
  }

  return h("form", {id: "add-account", onsubmit: add},
    h("div", {class: "grid2"},
      field("Account id", inputs.account), field("Name", inputs.name), field("Email", inputs.email)),
    h("fieldset", {}, h("legend", {}, "IMAP"),
      h("div", {class: "grid2"}, field("Host", inputs.host), field("Port", inputs.port),
        field("Login", inputs.user), field("Password", inputs.pass)),
      h("label", {class: "inline"}, inputs.secure, "TLS from the start (port 993); off: STARTTLS")),
    h("fieldset", {}, h("legend", {}, "SMTP (optional, same login)"),
      h("div", {class: "grid2"}, field("Host", inputs.smtpHost), field("Port", inputs.smtpPort)),
      h("label", {class: "inline"}, inputs.smtpSecure, "TLS from the start (port 465)")),
    h("div", {class: "row"},
      h("button", {type: "button", class: "quiet", id: "verify", onclick: verify}, "Verify"),
      h("button", {type: "submit", id: "add"}, "Add account")),
    result);
}

function verdict(label, answer) {
  if (answer.success) return h("div", {class: "success", dataset: {verdict: label}}, `${label}: login works`);
  return h("div", {class: "error", role: "alert", dataset: {verdict: label}},
    `${label}: `, h("strong", {class: "code"}, answer.code || "Failed"), " ", answer.error || "",
    answer.serverResponse ? h("div", {class: "muted mono"}, answer.serverResponse) : null);
}

// OAuth2: one button per enabled application; the API answers the provider's consent URL, the
// browser goes there and comes back to this page (main.js reads ?account=..&state=..).
async function oauthSection() {
  let apps;
  try {
    apps = (await api("GET", "/v1/oauth2", {query: {pageSize: 100}})).apps.filter((app) => app.enabled);
  } catch {
    return null; // a bound token cannot list applications: the password form is enough
  }
  if (!apps.length) return null;
  const account = h("input", {name: "oauthAccount", required: true, spellcheck: "false"});
  const email = h("input", {name: "oauthEmail", type: "email", required: true});
  const name = h("input", {name: "oauthName"});
  const app = h("select", {name: "oauthApp"}, apps.map((a) => h("option", {value: a.id}, `${a.name} (${a.provider})`)));
  const result = h("div");
  async function start(event) {
    event.preventDefault();
    try {
      const body = {account: account.value.trim(), email: email.value.trim(), type: app.value,
                    redirectUrl: location.origin + location.pathname};
      if (name.value.trim()) body.name = name.value.trim();
      const form = await api("POST", "/v1/authentication/form", {body});
      location.assign(form.url);
    } catch (error) {
      fill(result, errorBox(error));
    }
  }
  return h("form", {id: "oauth-account", onsubmit: start},
    h("h3", {}, "Or connect through OAuth2"),
    h("div", {class: "grid2"}, field("Application", app), field("Account id", account), field("Email", email), field("Name", name)),
    h("div", {class: "row"}, h("button", {type: "submit"}, "Continue at the provider")),
    result);
}

async function render(view, args, {isCurrent}) {
  const stateSelect = h("select", {id: "state-filter"}, h("option", {value: ""}, "All states"),
    STATES.map((state) => h("option", {value: state}, state)));
  const search = h("input", {id: "search", type: "search", placeholder: "id, name, email or host"});
  const listHolder = h("div", {id: "account-list"}, h("p", {class: "muted"}, "Loading…"));
  const addHolder = h("section", {class: "card", hidden: true, id: "add-section"});
  const toggle = h("button", {type: "button", id: "show-add"}, "Add account");
  fill(view,
    h("div", {class: "row"}, h("h1", {class: "grow"}, "Accounts"), toggle),
    addHolder,
    h("div", {class: "toolbar"}, field("State", stateSelect), field("Search", search)),
    listHolder);

  toggle.addEventListener("click", async () => {
    addHolder.hidden = !addHolder.hidden;
    if (!addHolder.hidden && !addHolder.firstChild) {
      fill(addHolder, h("h2", {}, "Add an account"), passwordForm((id) => go("account", id)));
      const oauth = await oauthSection();
      if (oauth) addHolder.appendChild(oauth);
    }
  });

  let list;
  let latest;
  try {
    [list, latest] = await Promise.all([loadAccounts("", ""), latestEvents()]);
  } catch (error) {
    fill(listHolder, errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  const everything = list.total <= list.accounts.length;
  let shown = list;
  let asked = 0;
  // The browser filters what it was sent in every case: right whether the server filtered it or,
  // lacking `state` / `query` (it answers 400 to them), sent its first page unfiltered.
  const draw = () => fill(listHolder,
    shown.total > shown.accounts.length
      ? h("p", {class: "muted"}, `Showing ${shown.accounts.length} of ${shown.total} accounts.`) : null,
    accountTable(shown.accounts.filter((a) => matches(a, stateSelect.value, search.value.trim())), latest));
  const redraw = async () => {
    if (!everything) {
      const ticket = ++asked;
      try {
        const answer = await loadAccounts(stateSelect.value, search.value.trim());
        if (ticket !== asked || !isCurrent()) return;
        shown = answer;
      } catch (error) { fill(listHolder, errorBox(error)); return; }
    }
    draw();
  };
  stateSelect.addEventListener("change", redraw);
  search.addEventListener("input", redraw);
  draw();
}

export default {name: "accounts", title: "Accounts", nav: true, render};
