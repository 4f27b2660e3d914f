// Calls to ragchat's HTTP API (docs/architecture.md). Every failure becomes an ApiError whose
// message can be shown as is: the server's own message when it sent the JSON error shape.
// This module is the one place that sends the CSRF token (on every state-changing request) and that
// notices an ended session (a 401 anywhere but the sign-in calls).

/** An error from the API: `status` 0 means the request never got an answer. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = "", type = "", retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.type = type;
    /** Seconds to wait before trying again (from Retry-After), or null. */
    this.retryAfter = retryAfter;
  }
}

const session = { csrfToken: null, onSignedOut: () => {} };

/** The token that state-changing requests carry in `X-CSRF-Token` (null: none, e.g. with auth off). */
export function setCsrfToken(token) {
  session.csrfToken = token || null;
}

/** `handler(error)` runs when a request answers 401: the session ended (expired, signed out elsewhere). */
export function onSignedOut(handler) {
  session.onSignedOut = handler;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Headers every request of `method` needs on top of its own. */
function sessionHeaders(method) {
  return !SAFE_METHODS.has(method.toUpperCase()) && session.csrfToken ? { "X-CSRF-Token": session.csrfToken } : {};
}

function signedOut(error, path) {
  if (error.status === 401 && !path.startsWith("/api/auth/")) session.onSignedOut(error);
  return error;
}

const NO_ANSWER = "ragchat did not answer. Check that the server is still running, then try again.";

function fromErrorBody(body, status, fallback, retryAfter = null) {
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error.message === "string") {
    return new ApiError(error.message, { status, code: error.code || "", type: error.type || "", retryAfter });
  }
  return new ApiError(fallback, { status, retryAfter });
}

/** Retry-After in seconds (the header may also be an HTTP date), or null. */
function retryAfterSeconds(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

async function errorFromResponse(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall back to the status line
  }
  const retryAfter = retryAfterSeconds(response.headers.get("Retry-After"));
  return fromErrorBody(body, response.status, `${response.status} ${response.statusText}`.trim(), retryAfter);
}

async function request(path, init = {}) {
  const method = init.method || "GET";
  let response;
  try {
    response = await fetch(path, { ...init, headers: { ...init.headers, ...sessionHeaders(method) } });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(NO_ANSWER);
  }
  if (!response.ok) throw signedOut(await errorFromResponse(response), path);
  return response;
}

/** GET a JSON document. */
export async function getJSON(path) {
  const response = await request(path, { headers: { Accept: "application/json" } });
  return response.json();
}

/** Send `body` as JSON with `method`; resolves to the JSON answer, or null when there is none (204). */
export async function sendJSON(method, path, body = undefined) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await request(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.status === 204 ? null : response.json();
}

/** DELETE /api/documents/{id}. */
export async function deleteDocument(id) {
  await request(`/api/documents/${encodeURIComponent(id)}`, { method: "DELETE" });
}

/**
 * POST /api/documents with XMLHttpRequest, the one browser API that reports upload progress.
 * `onProgress(fraction)` gets 0..1 while bytes go up, then `null` while the server stores them.
 * Resolves to the ingestion job the server queued (202: see `followJob`); rejects with an ApiError.
 */
export function uploadFiles(files, collection, onProgress) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  form.append("collection", collection);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/documents");
    xhr.responseType = "json";
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(sessionHeaders("POST"))) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.upload.addEventListener("load", () => onProgress(null));
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300 && body && Array.isArray(body.results)) {
        resolve(body);
      } else {
        const retryAfter = retryAfterSeconds(xhr.getResponseHeader("Retry-After"));
        const error = fromErrorBody(body, xhr.status, `Upload failed (HTTP ${xhr.status}).`, retryAfter);
        reject(signedOut(error, "/api/documents"));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(NO_ANSWER)));
    xhr.send(form);
  });
}

/**
 * Follow an ingestion job until it is done: `onJob(job)` gets each state read from GET /api/jobs/{id}
 * (files settle one by one). Resolves to the finished job; a 429 waits as long as Retry-After says.
 */
export async function followJob(job, onJob, intervalMs = 1000) {
  onJob(job);
  while (job.status !== "done") {
    let wait = intervalMs;
    try {
      job = await getJSON(`/api/jobs/${encodeURIComponent(job.id)}`);
      onJob(job);
    } catch (error) {
      if (error.status !== 429) throw error;
      wait = Math.max(intervalMs, (error.retryAfter || 1) * 1000);
    }
    if (job.status !== "done") await new Promise((resolve) => setTimeout(resolve, wait));
  }
  return job;
}

/**
 * POST /v1/chat/completions with `stream: true` and yield each SSE `data:` payload, parsed.
 * Stops at `[DONE]`. An HTTP error (e.g. 503 when the LLM is down) is thrown as an ApiError;
 * an error event inside the stream is yielded as `{error: {...}}` for the caller to show.
 */
export async function* streamChat(body, signal) {
  const response = await request("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const events = buffer.split(/\r?\n\r?\n/);
      buffer = events.pop();
      for (const event of events) {
        const data = sseData(event);
        if (data === null) continue;
        if (data === "[DONE]") finished = true;
        else if (!finished) yield JSON.parse(data);
      }
    }
  } catch (error) {
    if (error.name === "AbortError") throw error;
    if (error instanceof SyntaxError) throw new ApiError("The answer stream was garbled; try again.");
    throw new ApiError("The connection to ragchat broke off while the answer was streaming; try again.");
  } finally {
    // Stopped early (the person pressed Stop, or an error): close the request so the LLM stops too.
    if (!finished) reader.cancel().catch(() => {});
  }
  if (!finished) throw new ApiError("The answer stream ended before it was complete; try again.");
}

/** The `data:` payload of one SSE event (lines joined by newlines), or null for comments and pings. */
function sseData(event) {
  const lines = [];
  for (const line of event.split(/\r?\n/)) {
    if (line.startsWith("data:")) lines.push(line.slice(line.startsWith("data: ") ? 6 : 5));
  }
  return lines.length ? lines.join("\n") : null;
}
