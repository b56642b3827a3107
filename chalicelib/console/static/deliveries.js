// Deliveries: the webhook delivery log (GET /v1/webhooks/deliveries, 14 days, newest first) filtered by
// status, account, event type and time; each event's last POSTs with status code, duration and the
// receiver's answer; replay of one event (POST /v1/webhooks/replay/{id}) or of everything the filters
// match in a time range (POST /v1/webhooks/replay). "#/deliveries/<status>" opens it filtered by a status. Failed events are the dead-lettered ones: the row
// is marked. The receiver's answer and error texts are the receiver's words: text nodes only.

import {api} from "./api.js";
import {ago, confirmButton, errorBox, field, fill, formatDate, h} from "./dom.js";

const PAGE_SIZE = 50;
const STATUSES = ["delivered", "pending", "failed", "skipped"];
const EVENTS = ["messageNew", "messageDeleted", "messageUpdated", "mailboxNew", "mailboxDeleted", "mailboxReset",
                "authenticationError", "authenticationSuccess", "connectError", "syncError", "accountInitialized",
                "messageSent", "messageDeliveryError", "messageFailed", "test"];
const TONES = {delivered: "ok", pending: "busy", failed: "bad", skipped: "off"};

// A datetime-local value (the viewer's local time) as ISO 8601 UTC, or undefined when empty.
function isoOf(input) {
  if (!input.value) return undefined;
  const moment = new Date(input.value);
  return Number.isNaN(moment.getTime()) ? undefined : moment.toISOString();
}

function statusPill(delivery) {
  const label = delivery.status === "failed" ? "failed · dead-lettered" : delivery.status;
  return h("span", {class: `pill ${TONES[delivery.status] || "off"}`, "data-status": delivery.status}, label);
}

function milliseconds(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value)} ms`;
}

function attemptList(delivery) {
  const attempts = delivery.attemptLog || [];
  if (!attempts.length && delivery.attempts > 0) {
    // Logged before the log kept each POST: only the last one's code and error are known.
    return h("div", {class: "attempt"}, h("strong", {class: "code"}, delivery.lastStatusCode ?? "no answer"),
      delivery.lastError ? h("div", {class: "attempt-error"}, delivery.lastError) : null,
      h("div", {class: "muted"}, "Earlier POSTs were not recorded one by one."));
  }
  if (!attempts.length) return h("p", {class: "muted"}, delivery.reason ? `Not sent: ${delivery.reason}` : "No POST yet.");
  return h("ol", {class: "attempts"}, attempts.map((attempt) =>
    h("li", {class: "attempt"},
      h("div", {class: "row"},
        h("strong", {class: "code"}, attempt.statusCode ?? "no answer"),
        h("span", {}, milliseconds(attempt.durationMs)),
        h("span", {class: "muted"}, formatDate(attempt.at))),
      attempt.error ? h("div", {class: "attempt-error"}, attempt.error) : null,
      attempt.answer ? [h("div", {class: "muted"}, "Receiver's answer:"), h("pre", {class: "answer"}, attempt.answer)] : null)));
}

function replayOne(delivery, status) {
  return h("button", {type: "button", class: "quiet replay-one", onclick: async (event) => {
    event.currentTarget.disabled = true;
    try {
      const result = await api("POST", `/v1/webhooks/replay/${encodeURIComponent(delivery.id)}`);
      fill(status, h("span", {class: "success"}, `Queued again (${result.replayId})`));
    } catch (error) {
      fill(status, errorBox(error));
    }
  }}, "Replay");
}

function deliveryRow(delivery) {
  const status = h("div", {class: "replay-status", role: "status"});
  const dead = delivery.status === "failed";
  return h("tr", {class: `delivery${dead ? " dead" : ""}`, dataset: {id: delivery.id, status: delivery.status}},
    h("td", {"data-label": "Detected"}, formatDate(delivery.date), h("div", {class: "muted"}, ago(delivery.date))),
    h("td", {"data-label": "Account"}, h("span", {class: "mono"}, delivery.account)),
    h("td", {"data-label": "Event"}, delivery.event, delivery.replay ? h("span", {class: "flag"}, "replay") : null),
    h("td", {"data-label": "Status"}, statusPill(delivery),
      delivery.reason ? h("div", {class: "muted"}, delivery.reason) : null,
      delivery.nextAttemptAt ? h("div", {class: "muted"}, "next try ", formatDate(delivery.nextAttemptAt)) : null),
    h("td", {"data-label": "Attempts"},
      h("details", {class: "attempt-details"},
        h("summary", {}, `${delivery.attempts} · ${delivery.lastStatusCode ?? "–"} · ${milliseconds(delivery.lastDurationMs)}`),
        attemptList(delivery))),
    h("td", {"data-label": "Replay", class: "actions"}, replayOne(delivery, status), status));
}

function table(rows) {
  return h("div", {class: "table-wrap"}, h("table", {class: "stack", id: "deliveries"},
    h("thead", {}, h("tr", {}, ["Detected", "Account", "Event", "Status", "Attempts · code · time", ""].map((t) => h("th", {}, t)))),
    rows));
}

function filterForm(onApply, presetStatus) {
  const inputs = {
    status: h("select", {name: "status"}, h("option", {value: ""}, "any"),
      STATUSES.map((s) => h("option", {value: s, selected: s === presetStatus}, s))),
    account: h("input", {name: "account", spellcheck: "false", placeholder: "any"}),
    event: h("select", {name: "event"}, h("option", {value: ""}, "any"), EVENTS.map((e) => h("option", {value: e}, e))),
    since: h("input", {name: "since", type: "datetime-local", step: "1"}),
    until: h("input", {name: "until", type: "datetime-local", step: "1"}),
  };
  const form = h("form", {class: "toolbar", id: "delivery-filters", onsubmit: (event) => { event.preventDefault(); onApply(); }},
    field("Status", inputs.status), field("Account", inputs.account), field("Event", inputs.event),
    field("Since (local time)", inputs.since), field("Until", inputs.until),
    h("button", {type: "submit"}, "Show"));
  const values = () => ({status: inputs.status.value || undefined, account: inputs.account.value.trim() || undefined,
                         event: inputs.event.value || undefined, since: isoOf(inputs.since), until: isoOf(inputs.until)});
  return {form, values};
}

// Replay of everything the filters match: needs a start (a replay of 14 days by accident is too easy).
function rangeReplay(values) {
  const result = h("div", {id: "range-result", role: "status"});
  const run = async (cursor) => {
    const filters = values();
    if (!filters.since) {
      fill(result, h("p", {class: "error"}, "Set “Since” to replay a time range."));
      return;
    }
    try {
      const body = {since: filters.since, until: filters.until, account: filters.account, event: filters.event,
                    status: filters.status, cursor};
      const answer = await api("POST", "/v1/webhooks/replay", {body: JSON.parse(JSON.stringify(body))});
      fill(result, h("p", {class: "success"}, `${answer.replayed} events queued again (${answer.replayId}).`),
        answer.nextCursor ? h("button", {type: "button", onclick: () => run(answer.nextCursor)}, "Continue") : null);
    } catch (error) {
      fill(result, errorBox(error));
    }
  };
  // The button asks once more in place, and is itself again after each run.
  const control = h("div", {class: "row"});
  const ready = () => fill(control, confirmButton("Replay matching events", "Queue them all again?",
    async () => { await run(undefined); ready(); }, {id: "replay-range"}));
  ready();
  return h("section", {class: "card"}, h("h2", {}, "Replay a time range"),
    h("p", {class: "muted"}, "Sends every logged event matching the filters above again, oldest first, with the same ids."),
    control, result);
}

export default {
  name: "deliveries",
  title: "Deliveries",
  nav: true,
  async render(view, args, {isCurrent} = {isCurrent: () => true}) {
    const list = h("div", {id: "delivery-list"});
    const more = h("div", {class: "row"});
    let loading = 0;
    const load = async (cursor) => {
      const ticket = ++loading;
      if (!cursor) fill(list, h("p", {class: "muted"}, "Loading…"));
      fill(more);
      try {
        const page = await api("GET", "/v1/webhooks/deliveries", {query: {...filters.values(), pageSize: PAGE_SIZE, cursor}});
        if (!isCurrent() || ticket !== loading) return;
        const rows = page.deliveries.map(deliveryRow);
        if (!cursor) {
          fill(list, rows.length ? table(h("tbody", {}, rows)) : h("p", {class: "muted", id: "no-deliveries"}, "Nothing logged matches."));
        } else {
          list.querySelector("tbody").append(...rows);
        }
        if (page.nextCursor) fill(more, h("button", {type: "button", class: "quiet", onclick: () => load(page.nextCursor)}, "More"));
      } catch (error) {
        if (isCurrent()) fill(list, errorBox(error));
      }
    };
    // "#/deliveries/failed": the log opened on one status (the Activity page links there).
    const filters = filterForm(() => load(undefined), STATUSES.includes(args[0]) ? args[0] : undefined);
    fill(view, h("h1", {}, "Deliveries"),
      h("p", {class: "muted"}, "Every event of the last 14 days and what its webhook endpoint answered. Failed events were dead-lettered."),
      filters.form, list, more, rangeReplay(filters.values));
    await load(undefined);
  },
};
