// The status light in the header: app health, the LLM behind it and whether it answers.
// Reads GET /api/health, GET /api/status and GET /v1/models; polls while the page is visible.

import { getJSON } from "./api.js";
import { dismissable } from "./widgets.js";

const POLL_MS = 15000;
const BACKEND_NAMES = { vllm: "vLLM", openai: "OpenAI" };

/** Drives the `#status` <details>; `onHealth(summary)` runs after each check (see `summarise`). */
export class StatusLight {
  constructor(root, { onHealth }) {
    this.root = root;
    this.onHealth = onHealth;
    this.label = root.querySelector(".status-label");
    this.details = root.querySelector(".status-details");
    this.timer = null;
    this.running = false;
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.running) this.refresh();
    });
    dismissable(root);
  }

  /** Check now, then keep checking every few seconds until `stop()`. */
  async refresh() {
    clearTimeout(this.timer);
    this.running = true;
    const [health, status, models] = await Promise.all([
      settle(getJSON("/api/health")),
      settle(getJSON("/api/status?window=0")),
      settle(getJSON("/v1/models")),
    ]);
    if (!this.running) return;
    const summary = summarise(health, status);
    this.render(summary, health, status, models);
    this.onHealth(summary);
    this.timer = setTimeout(() => {
      if (!document.hidden) this.refresh();
    }, POLL_MS);
  }

  /** Stop polling (nobody is signed in). */
  stop() {
    this.running = false;
    clearTimeout(this.timer);
  }

  render(summary, health, status, models) {
    const rows = [];
    if (!summary.appUp) {
      rows.push(["Problem", health.error.message]);
    } else {
      rows.push(["LLM", `${summary.model} on ${BACKEND_NAMES[summary.backend] || summary.backend}`]);
      rows.push(["Answering", reachableText(summary)]);
      rows.push(["Documents", String(health.value.documents)]);
    }
    const vllm = status.ok ? status.value.vllm : null;
    if (vllm) {
      rows.push(["Requests", `${formatNumber(vllm.requests_running)} running, ${formatNumber(vllm.requests_waiting)} waiting`]);
      rows.push(["KV cache", percent(vllm.kv_cache_usage)]);
      rows.push(["Prefix-cache hits", percent(vllm.prefix_cache_hit_rate)]);
    }
    if (models.ok && Array.isArray(models.value.data)) {
      rows.push(["API models", models.value.data.map((m) => m.id).join(", ") || "none"]);
    }
    if (summary.appUp) rows.push(["ragchat", `version ${health.value.version}`]);

    const label = !summary.appUp
      ? "ragchat is not answering"
      : summary.reachable === false
        ? `${summary.model}: not answering`
        : summary.model;
    this.root.dataset.state = !summary.appUp ? "down" : summary.reachable === false ? "warn" : summary.reachable ? "ok" : "unknown";
    this.label.textContent = label;
    this.root.querySelector("summary").setAttribute("aria-label", `Status: ${label}. Show details`);
    this.details.replaceChildren(
      ...rows.flatMap(([term, value]) => {
        const dt = document.createElement("dt");
        dt.textContent = term;
        const dd = document.createElement("dd");
        dd.textContent = value;
        return [dt, dd];
      }),
    );
  }
}

/**
 * One view of health from /api/health and /api/status: `{appUp, backend, model, reachable, error}`;
 * `reachable` is null when nothing says (e.g. an OpenAI backend, which ragchat does not probe).
 */
function summarise(health, status) {
  if (!health.ok) return { appUp: false, backend: "", model: "", reachable: null, error: health.error.message };
  const llm = health.value.llm || {};
  const glance = status.ok ? status.value : {};
  const served = glance.vllm?.models || [];
  const reachable = typeof glance.reachable === "boolean" ? glance.reachable : (llm.reachable ?? null);
  return {
    appUp: true,
    backend: llm.backend || glance.backend || "LLM",
    model: llm.model || served[0] || llm.backend || "LLM",
    reachable,
    error: glance.error || "",
  };
}

function reachableText(summary) {
  if (summary.reachable === true) return "yes";
  if (summary.reachable === false) return `no: ${summary.error || "the server does not answer"}`;
  return "not checked";
}

function formatNumber(value) {
  return typeof value === "number" ? value.toLocaleString(undefined, { maximumFractionDigits: 1 }) : "?";
}

function percent(fraction) {
  return typeof fraction === "number" ? `${(fraction * 100).toFixed(0)}%` : "n/a";
}

async function settle(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}
