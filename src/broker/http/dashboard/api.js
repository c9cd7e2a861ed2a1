// The admin API as the dashboard uses it: JSON over fetch, the session cookie sent by the
// browser, and the CSRF token of the login session on every action.

/** An API error with the HTTP status and the server's message. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

let csrfToken = "";

/**
 * Sends one request.
 *
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body] sent as JSON
 * @returns {Promise<any>} the parsed JSON answer
 */
export async function call(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { "x-requested-with": "fetch" };
  if (method !== "GET") headers["x-csrf-token"] = csrfToken;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try {
    data = await response.json();
  } catch {
    // Not JSON: the status says enough.
  }
  if (!response.ok) {
    throw new ApiError(response.status, data.error ?? `HTTP ${response.status}`);
  }
  return data;
}

/**
 * Logs in; the server sets the session cookie.
 *
 * @param {string} username
 * @param {string} password
 * @returns {Promise<string>} the user name
 */
export async function login(username, password) {
  const data = await call("POST", "/api/login", { username, password });
  csrfToken = data.csrfToken;
  return data.user;
}

/** @returns {Promise<string | undefined>} the user of the current session, if any */
export async function currentUser() {
  try {
    const data = await call("GET", "/api/session");
    csrfToken = data.csrfToken ?? "";
    return data.user;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return undefined;
    throw error;
  }
}

/** Ends the session. */
export async function logout() {
  await call("POST", "/api/logout", {});
  csrfToken = "";
}
