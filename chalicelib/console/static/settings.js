// Settings: the global webhook (URL, on/off, event filter, notifyText / notifyHeaders), its signing
// secret (set, rotate: a new secret is shown once, here only), and "send a test event" with the
// receiver's answer. Admin tokens only (the API answers 403 to others, shown as such).

import {api} from "./api.js";
import {errorBox, field, fill, formatDate, h} from "./dom.js";
import {shownOnce, testEventButton} from "./webhook-parts.js";

const EVENTS = ["messageNew", "messageDeleted", "messageUpdated", "mailboxNew", "mailboxDeleted", "mailboxReset",
                "authenticationError", "authenticationSuccess", "connectError", "syncError", "accountInitialized",
                "messageSent", "messageDeliveryError", "messageFailed"];

function webhookForm(settings, onSaved) {
  const url = h("input", {id: "webhook-url", type: "url", value: settings.webhooks || "", placeholder: "https://…", spellcheck: "false"});
  const enabled = h("input", {id: "webhooks-enabled", type: "checkbox", checked: settings.webhooksEnabled});
  const all = settings.webhookEvents.includes("*") || !settings.webhookEvents.length;
  const everything = h("input", {type: "checkbox", id: "events-all", checked: all});
  const boxes = EVENTS.map((name) => h("input", {type: "checkbox", value: name, checked: all || settings.webhookEvents.includes(name)}));
  const notifyText = h("input", {id: "notify-text", type: "checkbox", checked: settings.notifyText});
  const notifyTextSize = h("input", {id: "notify-text-size", type: "number", min: "0",
                                     value: settings.notifyTextSize === null || settings.notifyTextSize === undefined ? "" : String(settings.notifyTextSize)});
  const notifyHeaders = h("input", {id: "notify-headers", value: settings.notifyHeaders.join(", "), placeholder: "List-Id, X-Priority"});
  const result = h("div", {id: "settings-result"});
  const sync = () => { for (const box of boxes) box.disabled = everything.checked; };
  everything.addEventListener("change", sync);
  sync();

  async function save(event) {
    event.preventDefault();
    const body = {
      webhooks: url.value.trim() || null,
      webhooksEnabled: enabled.checked,
      webhookEvents: everything.checked ? ["*"] : boxes.filter((b) => b.checked).map((b) => b.value),
      notifyText: notifyText.checked,
      notifyHeaders: notifyHeaders.value.split(",").map((s) => s.trim()).filter(Boolean),
    };
    if (notifyTextSize.value !== "") body.notifyTextSize = Number(notifyTextSize.value);
    try {
      const saved = await api("POST", "/v1/settings", {body});
      onSaved(saved.webhookSecret ? shownOnce("Generated signing secret", saved.webhookSecret) : h("div", {class: "success"}, "Saved."));
    } catch (error) { fill(result, errorBox(error)); }
  }

  return h("form", {id: "webhook-form", onsubmit: save},
    field("Webhook URL", url, "Events are POSTed here, signed (Standard Webhooks)."),
    h("label", {class: "inline"}, enabled, "Deliver webhooks"),
    h("fieldset", {}, h("legend", {}, "Events"),
      h("label", {class: "inline"}, everything, "Every event type"),
      h("div", {class: "grid2"}, boxes.map((box) => h("label", {class: "inline"}, box, box.value)))),
    h("fieldset", {}, h("legend", {}, "messageNew contents"),
      h("label", {class: "inline"}, notifyText, "Include the message text (notifyText)"),
      field("Largest text, bytes (notifyTextSize)", notifyTextSize),
      field("Headers to include (notifyHeaders, comma-separated; * for all)", notifyHeaders)),
    h("div", {class: "row"}, h("button", {type: "submit", id: "save-settings"}, "Save")),
    result);
}

function secretSection(settings, onChanged) {
  const value = h("input", {id: "secret-input", type: "password", placeholder: "whsec_…", autocomplete: "off", spellcheck: "false"});
  const result = h("div", {id: "secret-result"});
  async function set(event) {
    event.preventDefault();
    try {
      await api("POST", "/v1/settings", {body: {webhookSecret: value.value.trim()}});
      value.value = "";
      onChanged(h("div", {class: "success"}, "Secret set."));
    } catch (error) { fill(result, errorBox(error)); }
  }
  async function rotate() {
    try {
      const rotated = await api("POST", "/v1/webhooks/secret/rotate");
      onChanged(shownOnce("New signing secret", rotated.webhookSecret, rotated.previousSecretValidUntil
        ? `The previous secret still signs until ${formatDate(rotated.previousSecretValidUntil)}.` : null));
    } catch (error) { fill(result, errorBox(error)); }
  }
  return h("section", {class: "card"}, h("h2", {}, "Signing secret"),
    h("p", {id: "secret-state"}, settings.webhookSecretSet ? "A secret is set (it is never shown again)." : "No secret is set."),
    h("form", {onsubmit: set, id: "secret-form"},
      field("Set a secret you generated", value),
      h("div", {class: "row"}, h("button", {type: "submit", class: "quiet"}, "Set secret"),
        h("button", {type: "button", id: "rotate-secret", onclick: rotate}, "Rotate (generate a new one)"))),
    result);
}

function testSection() {
  return h("section", {class: "card"}, h("h2", {}, "Test"),
    h("p", {class: "muted"}, "POST a signed test event to the webhook URL and show the receiver's answer."),
    testEventButton(null));
}

function disabledEndpoints(list) {
  if (!list.length) return null;
  return h("section", {class: "card"}, h("h2", {}, "Endpoints switched off after failures"),
    h("ul", {}, list.map((e) => h("li", {}, h("code", {}, e.url), e.account ? ` (account ${e.account})` : "",
      ` — ${e.reason}, ${formatDate(e.disabledAt)}`))),
    h("p", {class: "muted"}, "Saving the URL again switches an endpoint back on."));
}

async function render(view, args, {isCurrent}) {
  const message = h("div", {id: "settings-message"});
  async function load(note) {
    let settings;
    try {
      settings = await api("GET", "/v1/settings");
    } catch (error) {
      fill(view, h("h1", {}, "Settings"), errorBox(error));
      return;
    }
    if (!isCurrent()) return;
    fill(message, note || null);
    fill(view, h("h1", {}, "Settings"), message,
      h("section", {class: "card"}, h("h2", {}, "Webhook"), webhookForm(settings, load)),
      secretSection(settings, load), testSection(), disabledEndpoints(settings.disabledWebhookEndpoints || []));
  }
  await load();
}

export default {name: "settings", title: "Settings", nav: true, admin: true, render};
