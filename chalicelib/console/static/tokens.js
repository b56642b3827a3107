// Tokens: the API tokens (never the tokens themselves, only their ids), issuing one (shown once,
// here only) and revoking one. Admin tokens only.

import {api} from "./api.js";
import {confirmButton, errorBox, field, fill, formatDate, h} from "./dom.js";

function tokenTable(tokens, reload, report) {
  if (!tokens.length) return h("p", {class: "muted"}, "No tokens.");
  return h("div", {class: "table-wrap"}, h("table", {class: "stack", id: "tokens"},
    h("thead", {}, h("tr", {}, ["Description", "Id", "Scopes", "Account", "Created", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, tokens.map((token) => h("tr", {dataset: {token: token.id}},
      h("td", {"data-label": "Description"}, token.description),
      h("td", {"data-label": "Id", class: "mono"}, token.id),
      h("td", {"data-label": "Scopes"}, token.scopes.join(", ")),
      h("td", {"data-label": "Account"}, token.account || "all accounts"),
      h("td", {"data-label": "Created"}, formatDate(token.createdAt)),
      h("td", {class: "actions"}, confirmButton("Revoke", "Revoke this token?", async () => {
        try {
          await api("DELETE", `/v1/tokens/${encodeURIComponent(token.id)}`);
          reload();
        } catch (error) { report(errorBox(error)); }
      })))))));
}

function createForm(onCreated) {
  const description = h("input", {id: "token-description", required: true, maxlength: "256"});
  const scope = h("select", {id: "token-scope"},
    h("option", {value: "api"}, "api: the mail and account API"),
    h("option", {value: "*"}, "*: everything, tokens and settings included"));
  const account = h("input", {id: "token-account", placeholder: "optional: bind to one account", spellcheck: "false"});
  const result = h("div");
  async function create(event) {
    event.preventDefault();
    const body = {description: description.value.trim(), scopes: [scope.value]};
    if (account.value.trim()) body.account = account.value.trim();
    try {
      const created = await api("POST", "/v1/tokens", {body});
      description.value = "";
      account.value = "";
      onCreated(created);
    } catch (error) { fill(result, errorBox(error)); }
  }
  return h("form", {id: "create-token", onsubmit: create},
    h("div", {class: "grid2"}, field("Description", description), field("Scope", scope), field("Account", account)),
    h("div", {class: "row"}, h("button", {type: "submit"}, "Create token")), result);
}

async function render(view, args, {isCurrent}) {
  const once = h("div", {id: "token-once"});
  const listHolder = h("div", {}, h("p", {class: "muted"}, "Loading…"));
  async function load() {
    try {
      const list = await api("GET", "/v1/tokens");
      if (isCurrent()) fill(listHolder, tokenTable(list.tokens, load, (node) => fill(once, node)));
    } catch (error) { fill(listHolder, errorBox(error)); }
  }
  fill(view, h("h1", {}, "API tokens"),
    h("section", {class: "card"}, h("h2", {}, "Create a token"), createForm((created) => {
      fill(once, h("div", {class: "secret"}, h("div", {}, h("strong", {}, "New token"), " (shown once: copy it now)"),
        h("code", {class: "secret-value"}, created.token), h("div", {class: "muted"}, `id ${created.id}`)));
      load();
    }), once),
    listHolder);
  await load();
}

export default {name: "tokens", title: "Tokens", nav: true, admin: true, render};
