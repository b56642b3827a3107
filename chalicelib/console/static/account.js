// One account: its state and last error, edit / pause / delete, its folders with counters and
// special use, the latest messages of a folder with a message view, and its recent events.
//
// A message's HTML is never put in the console's own document: when the API offers sanitized HTML
// (webSafeHtml=true) it is shown in an <iframe sandbox> without allow-scripts (an opaque origin; the
// frame inherits the console's Content-Security-Policy, so it loads nothing remote either);
// otherwise the plain-text part is shown as text.

import {api} from "./api.js";
import {ago, confirmButton, errorBox, field, fill, formatDate, h, statePill} from "./dom.js";
import {go, link} from "./router.js";
import {shownOnce, testEventButton} from "./webhook-parts.js";

const MESSAGE_PAGE_SIZE = 20;
const STATE_POLL_MS = 2000; // while an account is new or connecting, its header follows the watcher
const TRANSITIONAL = new Set(["new", "connecting"]);
const EVENT_PAGE_SIZE = 20;
let webSafeHtmlSupported = true; // until the API refuses the parameter once

const enc = encodeURIComponent;

function header(account, reload) {
  const actions = h("div", {class: "row"},
    h("button", {type: "button", class: "quiet", id: "edit-account", onclick: () => toggleEdit()}, "Edit"),
    account.imap ? h("button", {type: "button", class: "quiet", id: "pause-account", onclick: pause},
      account.imap.disabled ? "Resume" : "Pause") : null,
    confirmButton("Delete", `Delete ${account.name || account.account}? Its settings are removed; the mailbox is untouched.`,
      remove, {id: "delete-account"}));
  const result = h("div");
  const editHolder = h("div", {hidden: true, id: "edit-holder"});

  async function pause() {
    try {
      await api("PUT", `/v1/account/${enc(account.account)}`, {body: {imap: {disabled: !account.imap.disabled}}});
      reload();
    } catch (error) { fill(result, errorBox(error)); }
  }
  async function remove() {
    try {
      await api("DELETE", `/v1/account/${enc(account.account)}`);
      go("accounts");
    } catch (error) { fill(result, errorBox(error)); }
  }
  function toggleEdit() {
    editHolder.hidden = !editHolder.hidden;
    if (!editHolder.hidden) fill(editHolder, editForm(account, reload));
  }

  const error = account.lastError;
  return h("section", {class: "card", id: "account-header"},
    h("div", {class: "row"}, h("h1", {class: "grow", id: "account-title"}, account.name || account.account), statePill(account.state)),
    h("dl", {class: "facts"},
      h("dt", {}, "Account id"), h("dd", {class: "mono"}, account.account),
      h("dt", {}, "Email"), h("dd", {}, account.email || ""),
      account.imap ? [h("dt", {}, "IMAP"), h("dd", {class: "mono"}, `${account.imap.auth.user} @ ${account.imap.host}:${account.imap.port}`)] : null,
      account.oauth2 ? [h("dt", {}, "OAuth2"), h("dd", {}, account.oauth2.provider)] : null,
      h("dt", {}, "Created"), h("dd", {}, formatDate(account.createdAt)),
      h("dt", {}, "Updated"), h("dd", {}, formatDate(account.updatedAt))),
    error ? h("div", {class: "error", id: "account-error"}, h("strong", {class: "code"}, error.code), " ", error.message,
      error.serverResponse ? h("div", {class: "mono"}, error.serverResponse) : null,
      h("div", {class: "muted"}, `since ${formatDate(error.since)} (${ago(error.since)})`)) : null,
    actions, result, editHolder);
}

function editForm(account, reload) {
  const name = h("input", {name: "name", value: account.name || ""});
  const email = h("input", {name: "email", type: "email", value: account.email || ""});
  const imap = account.imap;
  const host = imap ? h("input", {name: "host", value: imap.host}) : null;
  const port = imap ? h("input", {name: "port", type: "number", value: String(imap.port)}) : null;
  const user = imap ? h("input", {name: "user", value: imap.auth.user}) : null;
  const pass = imap ? h("input", {name: "pass", type: "password", placeholder: "unchanged", autocomplete: "new-password"}) : null;
  const result = h("div");
  async function save(event) {
    event.preventDefault();
    const body = {name: name.value.trim() || null, email: email.value.trim() || null};
    if (imap) {
      body.imap = {host: host.value.trim(), port: Number(port.value), auth: {user: user.value}};
      if (pass.value) body.imap.auth.pass = pass.value;
    }
    try {
      await api("PUT", `/v1/account/${enc(account.account)}`, {body});
      reload();
    } catch (error) { fill(result, errorBox(error)); }
  }
  return h("form", {onsubmit: save, id: "edit-account-form"},
    h("div", {class: "grid2"}, field("Name", name), field("Email", email),
      imap ? [field("IMAP host", host), field("Port", port), field("Login", user), field("New password", pass)] : null),
    h("div", {class: "row"}, h("button", {type: "submit"}, "Save (logins are verified again)")), result);
}

// INBOX first, then the server's order (Dovecot lists INBOX last).
function inboxFirst(mailboxes) {
  const isInbox = (box) => box.path.toUpperCase() === "INBOX";
  return [...mailboxes.filter(isInbox), ...mailboxes.filter((box) => !isInbox(box))];
}

// The account's own webhook URL (overrides the global one), its secret, and a test event to it.
function webhookCard(account, reload) {
  const url = h("input", {id: "account-webhook-url", type: "url", value: account.webhooks || "",
                          placeholder: "empty: the global webhook", spellcheck: "false"});
  const result = h("div", {id: "account-webhook-result"});
  async function save(event) {
    event.preventDefault();
    try {
      const saved = await api("PUT", `/v1/account/${enc(account.account)}`, {body: {webhooks: url.value.trim() || null}});
      fill(result, saved.webhookSecret ? shownOnce("Generated signing secret", saved.webhookSecret)
        : h("div", {class: "success"}, "Saved."));
    } catch (error) { fill(result, errorBox(error)); }
  }
  async function rotate() {
    try {
      const rotated = await api("POST", `/v1/account/${enc(account.account)}/webhooks/secret/rotate`);
      fill(result, shownOnce("New signing secret", rotated.webhookSecret));
    } catch (error) { fill(result, errorBox(error)); }
  }
  return h("section", {class: "card", id: "account-webhook"}, h("h2", {}, "Webhook"),
    h("p", {class: "muted"}, account.webhooks ? "This account's events go to its own URL."
      : "This account's events go to the global webhook (Settings)."),
    h("form", {onsubmit: save},
      field("This account's own URL", url),
      h("div", {class: "row"}, h("button", {type: "submit", class: "quiet", id: "save-account-webhook"}, "Save URL"),
        account.webhooks ? h("button", {type: "button", class: "quiet", onclick: rotate}, "Rotate its secret") : null)),
    result,
    h("div", {class: "test-event"}, testEventButton(account.account)));
}

function folderList(mailboxes, selected, onSelect) {
  return h("ul", {class: "folders", id: "folders"}, inboxFirst(mailboxes).map((box) => h("li", {},
    h("button", {type: "button", class: box.path === selected ? "active" : null, disabled: box.noSelect,
                 dataset: {path: box.path}, onclick: () => onSelect(box.path)},
      h("span", {}, box.path, box.specialUse ? h("span", {class: "use"}, " ", box.specialUse) : null),
      h("span", {class: "muted counters", title: "unseen / messages"},
        box.messages === null || box.messages === undefined ? "" : `${box.unseen || 0} / ${box.messages}`)))));
}

function sender(address) {
  if (!address) return "";
  return address.name ? `${address.name} <${address.address}>` : address.address;
}

function messageTable(account, messages, onOpen) {
  if (!messages.length) return h("p", {class: "muted"}, "No messages in this folder.");
  return h("div", {class: "table-wrap"}, h("table", {class: "stack", id: "messages"},
    h("thead", {}, h("tr", {}, ["Subject", "From", "Date", "Flags"].map((t) => h("th", {}, t)))),
    h("tbody", {}, messages.map((message) => h("tr", {dataset: {message: message.id}, class: message.unseen ? "unseen" : null},
      h("td", {"data-label": "Subject"}, h("a", {href: "#", class: "subject", onclick: (event) => {
        event.preventDefault(); onOpen(message.id);
      }}, message.subject || "(no subject)")),
      h("td", {"data-label": "From"}, sender(message.from)),
      h("td", {"data-label": "Date"}, formatDate(message.date)),
      h("td", {"data-label": "Flags"}, message.flags.map((flag) => h("span", {class: "flag"}, flag))))))));
}

async function fetchMessage(account, id) {
  const path = `/v1/account/${enc(account)}/message/${enc(id)}`;
  if (webSafeHtmlSupported) {
    try {
      return await api("GET", path, {query: {webSafeHtml: "true"}});
    } catch (error) {
      if (error.status !== 400 || !JSON.stringify(error.details || {}).includes("webSafeHtml")) throw error;
      webSafeHtmlSupported = false;
    }
  }
  return api("GET", path, {query: {textType: "plain"}});
}

function messageView(message) {
  const text = message.text || {};
  let body;
  if (webSafeHtmlSupported && text.html) {
    // sandbox="" : no scripts, no forms, no popups, no top navigation, an opaque origin.
    body = h("iframe", {class: "message-frame", sandbox: "", title: "Message body", referrerpolicy: "no-referrer"});
    body.srcdoc = text.html;
  } else {
    body = h("pre", {class: "message-text"}, text.plain || "(no text part)");
  }
  return h("article", {class: "card", id: "message-view"},
    h("h3", {class: "message-subject"}, message.subject || "(no subject)"),
    h("dl", {class: "facts"},
      h("dt", {}, "From"), h("dd", {}, sender(message.from)),
      h("dt", {}, "To"), h("dd", {}, (message.to || []).map(sender).join(", ")),
      h("dt", {}, "Date"), h("dd", {}, formatDate(message.date)),
      message.attachments && message.attachments.length
        ? [h("dt", {}, "Attachments"), h("dd", {}, message.attachments.map((a) => a.filename || a.contentType).join(", "))] : null),
    body);
}

function eventTable(deliveries) {
  if (!deliveries.length) return h("p", {class: "muted"}, "No events logged in the last 14 days.");
  return h("div", {class: "table-wrap"}, h("table", {class: "stack", id: "events"},
    h("thead", {}, h("tr", {}, ["Event", "Date", "Webhook", "Attempts", "Last answer"].map((t) => h("th", {}, t)))),
    h("tbody", {}, deliveries.map((d) => h("tr", {},
      h("td", {"data-label": "Event"}, d.event),
      h("td", {"data-label": "Date"}, formatDate(d.date)),
      h("td", {"data-label": "Webhook"}, d.status),
      h("td", {"data-label": "Attempts"}, String(d.attempts)),
      h("td", {"data-label": "Last answer"}, d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : "", d.lastError ? ` ${d.lastError}` : ""))))));
}

async function render(view, args, {isCurrent}) {
  const id = args[0];
  if (!id) { go("accounts"); return; }
  const reload = () => { if (isCurrent()) render(view, args, {isCurrent}); };
  let account;
  try {
    account = await api("GET", `/v1/account/${enc(id)}`);
  } catch (error) {
    fill(view, h("p", {}, h("a", {href: link("accounts")}, "← Accounts")), errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  let headerCard = header(account, reload);
  const follow = async () => {
    if (!isCurrent() || !TRANSITIONAL.has(account.state)) return;
    try {
      account = await api("GET", `/v1/account/${enc(id)}`);
    } catch { /* the next render shows the error */ }
    if (!isCurrent()) return;
    if (headerCard.querySelector("#edit-holder:not([hidden])")) { setTimeout(follow, STATE_POLL_MS); return; }
    const fresh = header(account, reload);
    headerCard.replaceWith(fresh);
    headerCard = fresh;
    setTimeout(follow, STATE_POLL_MS);
  };
  setTimeout(follow, STATE_POLL_MS);
  const folders = h("div", {}, h("p", {class: "muted"}, "Loading folders…"));
  const messages = h("div", {id: "message-list"});
  const reader = h("div", {id: "reader"});
  const events = h("div", {}, h("p", {class: "muted"}, "Loading events…"));
  fill(view,
    h("p", {}, h("a", {href: link("accounts")}, "← Accounts")),
    headerCard,
    h("section", {class: "split"},
      h("div", {class: "card"}, h("h2", {}, "Folders"), h("p", {class: "muted legend"}, "unseen / messages"), folders),
      h("div", {class: "card"}, h("h2", {id: "folder-title"}, "Messages"), messages, reader)),
    h("section", {class: "card"}, h("h2", {}, "Recent events"), events),
    webhookCard(account, reload));

  let selected = null;
  let mailboxes = [];
  async function openMessage(messageId) {
    fill(reader, h("p", {class: "muted"}, "Loading message…"));
    try {
      fill(reader, messageView(await fetchMessage(id, messageId)));
    } catch (error) { fill(reader, errorBox(error)); }
  }
  async function select(path) {
    selected = path;
    fill(folders, folderList(mailboxes, selected, select));
    fill(view.querySelector("#folder-title"), `Messages in ${path}`);
    fill(messages, h("p", {class: "muted"}, "Loading messages…"));
    reader.replaceChildren();
    try {
      const list = await api("GET", `/v1/account/${enc(id)}/messages`, {query: {path, pageSize: MESSAGE_PAGE_SIZE}});
      if (selected === path) fill(messages, messageTable(id, list.messages, openMessage));
    } catch (error) { fill(messages, errorBox(error)); }
  }

  api("GET", "/v1/webhooks/deliveries", {query: {account: id, pageSize: EVENT_PAGE_SIZE}})
    .then((log) => fill(events, eventTable(log.deliveries)))
    .catch((error) => fill(events, errorBox(error)));
  try {
    mailboxes = (await api("GET", `/v1/account/${enc(id)}/mailboxes`, {query: {counters: "true"}})).mailboxes;
  } catch (error) {
    fill(folders, errorBox(error));
    fill(messages, h("p", {class: "muted"}, "Folders and messages need a working connection to the mail server."));
    return;
  }
  const inbox = mailboxes.find((box) => box.specialUse === "\\Inbox" || box.path.toUpperCase() === "INBOX");
  await select((inbox || mailboxes.find((box) => !box.noSelect) || {path: "INBOX"}).path);
}

export default {name: "account", title: "Account", nav: false, render};
