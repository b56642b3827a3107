// Activity: the last hour (per minute) or day (per 15 minutes) from GET /v1/stats/activity: events by
// type, what became of them at the webhook endpoint, how long the POSTs took, accounts by state.
// "#/activity" or "#/activity/24h". An account-bound token sees its own account only (the API says so).

import {api} from "./api.js";
import {errorBox, fill, h} from "./dom.js";
import {link} from "./router.js";
import {PALETTE, formatNumber, horizontalBars, legend, lineChart, stackedBars} from "./charts.js";

const WINDOWS = {"1h": {label: "Last hour", per: "minute"}, "24h": {label: "Last 24 hours", per: "15 minutes"}};
// Deliveries by status, in stacking order, each with a colour that says it (and a legend that names it).
const STATUSES = ["delivered", "pending", "failed", "skipped"];
const STATUS_COLORS = ["#17773a", "#9a6700", "#b42318", "#8792a2"];
const STATE_COLORS = {connected: "#17773a", new: "#9a6700", connecting: "#9a6700", disabled: "#6b7280",
                      disconnected: "#6b7280"};

// Bucket starts as UTC HH:MM (the page says UTC): the same labels whatever the viewer's time zone.
function clock(iso) {
  return new Date(iso).toISOString().slice(11, 16);
}

function plural(count, noun) { return `${count} ${noun}${count === 1 ? "" : "s"}`; }

function sum(values) { return values.reduce((total, value) => total + value, 0); }

function totalsOf(buckets, part) {
  const totals = {};
  for (const bucket of buckets) {
    for (const [key, value] of Object.entries(bucket[part])) totals[key] = (totals[key] || 0) + value;
  }
  return totals;
}

function describe(totals) {
  const parts = Object.entries(totals).map(([key, value]) => `${key} ${value}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

function figure(label, value, id, href) {
  const parts = [h("span", {class: "figure-value"}, value), h("span", {class: "figure-label"}, label)];
  return href ? h("a", {class: "figure", id, href}, parts) : h("div", {class: "figure", id}, parts);
}

function section(title, ...content) {
  return h("section", {class: "card chart-card"}, h("h2", {}, title), content);
}

let refresh = () => {};

function toggle(active) {
  return h("div", {class: "row window-toggle", role: "group", "aria-label": "Time window"},
    Object.entries(WINDOWS).map(([name, spec]) =>
      h("a", {href: link("activity", name), class: `button${name === active ? "" : " quiet"}`,
              "aria-pressed": name === active ? "true" : "false", dataset: {window: name}}, spec.label)),
    h("button", {type: "button", class: "quiet", id: "refresh-activity", onclick: () => refresh()}, "Refresh"));
}

function render(view, activity, window) {
  const spec = WINDOWS[window];
  // The charts are drawn at the width they are shown at: the view's, less a card's padding and border.
  const width = view.clientWidth - 34;
  const buckets = activity.buckets;
  const labels = buckets.map((bucket) => clock(bucket.start));
  const eventTotals = totalsOf(buckets, "events");
  const deliveryTotals = totalsOf(buckets, "deliveries");
  const types = Object.keys(eventTotals).sort();
  const latency = activity.latencyMs;
  const states = Object.entries(activity.accounts).sort((a, b) => b[1] - a[1]);
  const accountsTotal = sum(states.map(([, count]) => count));

  fill(view,
    h("h1", {}, "Activity"),
    toggle(window),
    h("p", {class: "muted"}, `${spec.label}, one bar per ${spec.per}, times in UTC (${clock(activity.since)}–${clock(activity.until)}).`),
    activity.capped ? h("p", {class: "notice", id: "capped"},
      `Busy window: counts are complete from ${clock(activity.coveredSince)} UTC on; older buckets are partial.`) : null,
    (activity.notes || []).filter((note) => !note.startsWith("events:")).map((note) => h("p", {class: "error"}, note)),
    h("div", {class: "figures"},
      figure("events", formatNumber(activity.totalEvents), "total-events"),
      figure("delivered", formatNumber(deliveryTotals.delivered || 0), "total-delivered"),
      figure("failed", formatNumber(deliveryTotals.failed || 0), "total-failed", link("deliveries", "failed")),
      figure("retrying", formatNumber(deliveryTotals.pending || 0), "total-pending", link("deliveries", "pending")),
      figure("p50 ms", formatNumber(latency.p50), "latency-p50"),
      figure("p95 ms", formatNumber(latency.p95), "latency-p95"),
      figure("p99 ms", formatNumber(latency.p99), "latency-p99")),
    section(`Events per ${spec.per}`,
      h("div", {id: "events-chart"}, stackedBars({
        title: `Events per ${spec.per}, ${spec.label.toLowerCase()}: ${plural(activity.totalEvents, "event")}${describe(eventTotals)}`,
        columns: buckets.map((bucket, index) => ({label: labels[index], parts: bucket.events})), keys: types, width})),
      types.length ? legend(types) : h("p", {class: "muted"}, "No events in this window.")),
    section("Webhook deliveries",
      h("div", {id: "deliveries-chart"}, stackedBars({
        title: `Webhook deliveries per ${spec.per} by status${describe(deliveryTotals)}`,
        columns: buckets.map((bucket, index) => ({label: labels[index], parts: bucket.deliveries})),
        keys: STATUSES, colors: STATUS_COLORS, width})),
      legend(STATUSES, STATUS_COLORS),
      h("p", {class: "muted"}, "Each event counts in the bucket it was detected in, with its status now: ",
        h("a", {href: link("deliveries")}, "see the delivery log"), ".")),
    section("Webhook latency",
      h("div", {id: "latency-chart"}, lineChart({
        title: `95th percentile of webhook POST time per ${spec.per}; over the window p50 ${formatNumber(latency.p50)} ms, ` +
               `p95 ${formatNumber(latency.p95)} ms, p99 ${formatNumber(latency.p99)} ms (${latency.samples} POSTs)`,
        points: buckets.map((bucket, index) => ({label: labels[index], value: bucket.latencyP95Ms ?? null})),
        color: PALETTE[0], unit: " ms", width})),
      h("p", {class: "muted"}, `p95 per ${spec.per}, from the last POST of each event (${latency.samples} in the window).`)),
    section("Accounts by state",
      states.length
        ? h("div", {id: "accounts-chart"}, horizontalBars({
            title: `Accounts by state: ${plural(accountsTotal, "account")}${describe(Object.fromEntries(states))}`,
            items: states.map(([state, count]) => ({label: state, value: count, color: STATE_COLORS[state] || "#b42318"})), width}))
        : h("p", {class: "muted"}, "No accounts.")));
}

export default {
  name: "activity",
  title: "Activity",
  nav: true,
  async render(view, args, context = {isCurrent: () => true}) {
    const {isCurrent} = context;
    const window = WINDOWS[args[0]] ? args[0] : "1h";
    refresh = () => this.render(view, args, context);
    fill(view, h("h1", {}, "Activity"), toggle(window), h("p", {class: "muted"}, "Loading…"));
    try {
      const activity = await api("GET", "/v1/stats/activity", {query: {window}});
      if (isCurrent()) render(view, activity, window);
    } catch (error) {
      if (isCurrent()) fill(view, h("h1", {}, "Activity"), toggle(window), errorBox(error));
    }
  },
};
