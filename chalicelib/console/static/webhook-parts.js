// Pieces the Settings page and an account's page share: a secret shown once, and the answer of
// "send a test event" (POST /v1/webhooks/test), built as DOM from the API's words.

import {api} from "./api.js";
import {errorBox, fill, h} from "./dom.js";

export function shownOnce(label, secret, extra) {
  return h("div", {class: "secret", id: "secret-once"},
    h("div", {}, h("strong", {}, label), " (shown once: copy it now)"),
    h("code", {class: "secret-value"}, secret), extra ? h("div", {class: "muted"}, extra) : null);
}

// A "Send a test event" button and where its answer goes; account: null for the global webhook.
export function testEventButton(account) {
  const result = h("div", {id: "test-result"});
  async function send() {
    fill(result, h("p", {class: "muted"}, "Sending…"));
    try {
      const answer = await api("POST", "/v1/webhooks/test", {body: account ? {account} : {}});
      fill(result, h("div", {class: answer.success ? "success" : "error"},
        h("strong", {}, answer.success ? "Delivered" : "Not delivered"),
        ` to ${answer.url}`, answer.statusCode ? ` — HTTP ${answer.statusCode}` : "",
        ` in ${Math.round(answer.durationMs)} ms`,
        answer.code ? h("div", {}, h("strong", {class: "code"}, answer.code), " ", answer.error || "") : null,
        answer.response ? h("pre", {class: "receiver-answer"}, answer.response) : null));
    } catch (error) { fill(result, errorBox(error)); }
  }
  return [h("button", {type: "button", id: "send-test", onclick: send}, "Send a test event"), result];
}
