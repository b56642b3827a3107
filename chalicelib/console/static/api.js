// The one way the console talks to the server: the public REST API, with the operator's token as a
// bearer header. The token is kept in sessionStorage (this tab only) and never put in a URL.
// Paths are resolved against this module's own URL (.../admin/api.js -> .../v1/...), so the console
// works behind API Gateway's stage prefix and under `make run` alike.

const TOKEN_KEY = "imapless.token";
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || `HTTP${status}`;
    this.details = (body && body.details) || null;
  }
}

export function getToken() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(token) { sessionStorage.setItem(TOKEN_KEY, token); }
export function clearToken(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  for (const listener of listeners) listener(reason);
}
// listener(reason) runs when the token is cleared: sign-out, or the API refusing it (401, with a reason).
export function onSignedOut(listener) { listeners.add(listener); }

export function apiUrl(path, query) {
  const url = new URL(`../${path.replace(/^\//, "")}`, import.meta.url);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  return url;
}

// api("GET", "/v1/accounts", {query: {pageSize: 100}}) -> parsed JSON; throws ApiError with the
// error shape's code and message (status, code, message, details).
export async function api(method, path, {body, query, token} = {}) {
  const bearer = token || getToken();
  const headers = {"Accept": "application/json"};
  if (bearer) headers["Authorization"] = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(apiUrl(path, query), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
    });
  } catch (error) {
    throw new ApiError(0, {error: `the API did not answer (${error.message})`, code: "NetworkError"});
  }
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = {error: text.slice(0, 300)}; }
  if (!response.ok) {
    if (response.status === 401 && !token) clearToken("The API refused the token (revoked or expired): sign in again.");
    throw new ApiError(response.status, parsed);
  }
  return parsed;
}
