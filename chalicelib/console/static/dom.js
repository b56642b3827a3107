// DOM building without innerHTML: every text from the API (account names, subjects, a server's
// error text) is attacker-controlled, so it only ever enters the page as textContent or as an
// attribute value set through the DOM. Nothing in the console assigns innerHTML.

// h("a", {href: "#/x", class: "btn", onclick: fn}, "text", childNode, [more, children]) -> Element
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      element.className = value;
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key in element && typeof value !== "string") {
      element[key] = value; // checked, disabled, value as properties
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

// Replace everything inside `element` with `children`.
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

// Text made safe for contexts where only a string fits (a title, an attribute built by hand).
export function escape(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function formatDate(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
}

export function ago(value) {
  if (!value) return "";
  const seconds = Math.round((Date.now() - new Date(value).getTime()) / 1000);
  if (Number.isNaN(seconds)) return "";
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

// A coloured label for an account state (connected, authenticationError, ...).
export function statePill(state) {
  const tone = {connected: "ok", connecting: "busy", new: "busy", disabled: "off", disconnected: "off"}[state] || "bad";
  return h("span", {class: `pill ${tone}`, "data-state": state}, state);
}

// An error from api() (or anything thrown) as a block: the code, then the server's own words.
export function errorBox(error) {
  const code = error && error.code ? error.code : "Error";
  const message = error && error.message ? error.message : String(error);
  return h("div", {class: "error", role: "alert"}, h("strong", {class: "code"}, code), " ", message);
}

// A button that asks again in the page (no window.confirm: dialogs are blocked in some browsers
// and a second click in place is harder to hit by accident than an OK button).
export function confirmButton(label, question, action, attrs = {}) {
  const holder = h("span", {class: "confirm"});
  const ask = () => fill(holder,
    h("span", {class: "question"}, question), " ",
    h("button", {type: "button", class: "danger", onclick: async () => { await action(); }}, `Yes, ${label.toLowerCase()}`), " ",
    h("button", {type: "button", class: "quiet", onclick: idle}, "Cancel"));
  const idle = () => fill(holder, h("button", {type: "button", class: "danger", onclick: ask, ...attrs}, label));
  idle();
  return holder;
}

export function field(label, input, hint) {
  return h("label", {}, h("span", {class: "label"}, label), input, hint ? h("small", {class: "muted"}, hint) : null);
}
