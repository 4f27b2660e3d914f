// The API keys dialog: the signed-in person's own keys (GET /api/keys), a form to create one (shown once,
// with a copy button) and a two-click Revoke per key.

import { getJSON, sendJSON } from "./api.js";
import { closableDialog, confirmButton, element, formatTime } from "./widgets.js";

/** Drives `#keys-dialog`; `open()` shows it with a fresh list. */
export class KeysDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.form = dialog.querySelector("#key-form");
    this.name = dialog.querySelector("#key-name");
    this.scope = dialog.querySelector("#key-scope");
    this.expiry = dialog.querySelector("#key-expiry");
    this.newKey = dialog.querySelector("#new-key");
    this.newKeyValue = dialog.querySelector("#new-key-value");
    this.copyStatus = dialog.querySelector("#copy-status");
    this.error = dialog.querySelector("#keys-error");
    this.rows = dialog.querySelector("#keys-table tbody");
    this.status = dialog.querySelector("#keys-status");
    dialog.querySelector(".api-base").textContent = `${window.location.origin}/v1`;
    // The new key leaves the page as soon as the dialog closes: it is shown once.
    closableDialog(dialog, () => this.forgetNewKey());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    dialog.querySelector("#copy-key").addEventListener("click", () => this.copy());
  }

  open() {
    this.error.textContent = "";
    this.forgetNewKey();
    this.dialog.showModal();
    this.name.focus();
    this.load();
  }

  async load() {
    this.rows.parentElement.setAttribute("aria-busy", "true");
    try {
      const { keys } = await getJSON("/api/keys");
      this.render(keys || []);
    } catch (error) {
      this.status.textContent = `Could not list your keys: ${error.message}`;
    } finally {
      this.rows.parentElement.setAttribute("aria-busy", "false");
    }
  }

  render(keys) {
    this.rows.replaceChildren(...keys.map((key) => this.row(key)));
    this.status.textContent = keys.length ? "" : "You have no keys yet.";
  }

  row(key) {
    const label = key.name || key.id;
    const expired = !key.revoked && key.expires_at && new Date(key.expires_at) <= new Date();
    const state = key.revoked ? "revoked" : expired ? "expired" : "active";
    const tr = element("tr", `key ${state}`);
    tr.dataset.keyId = key.id;
    const cells = [
      label,
      key.scope,
      formatTime(key.created_at, "?"),
      formatTime(key.expires_at, "never"),
      formatTime(key.last_used_at, "never"),
    ];
    for (const text of cells) tr.append(element("td", "", text));
    const stateCell = element("td");
    stateCell.append(element("span", `key-state ${state}`, state));
    tr.append(stateCell);
    const actions = element("td");
    if (state !== "revoked") {
      actions.append(
        confirmButton(
          { idle: "Revoke", armed: "Confirm", idleName: `Revoke ${label}`, armedName: `Confirm: revoke ${label}` },
          () => this.revoke(key, label),
        ),
      );
    }
    tr.append(actions);
    return tr;
  }

  async create() {
    const body = { scope: this.scope.value };
    const name = this.name.value.trim();
    if (name) body.name = name;
    if (this.expiry.value) {
      const days = Number(this.expiry.value);
      if (!Number.isInteger(days) || days < 1) {
        this.error.textContent = "Expiry is a whole number of days, 1 or more (or leave it empty: never).";
        this.expiry.focus();
        return;
      }
      body.expires_days = days;
    }
    this.error.textContent = "";
    const submit = this.form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const created = await sendJSON("POST", "/api/keys", body);
      this.form.reset();
      this.newKeyValue.value = created.key;
      this.copyStatus.textContent = "";
      this.newKey.hidden = false;
      this.newKeyValue.focus();
      this.newKeyValue.select();
      await this.load();
    } catch (error) {
      this.error.textContent = `Could not create the key: ${error.message}`;
    } finally {
      submit.disabled = false;
    }
  }

  async copy() {
    try {
      await navigator.clipboard.writeText(this.newKeyValue.value);
      this.copyStatus.textContent = "Copied.";
    } catch {
      // No clipboard access (e.g. plain HTTP on another host): leave it selected for Ctrl+C.
      this.newKeyValue.focus();
      this.newKeyValue.select();
      this.copyStatus.textContent = "The browser does not allow copying here: the key is selected, press Ctrl+C.";
    }
  }

  async revoke(key, label) {
    this.error.textContent = "";
    try {
      await sendJSON("DELETE", `/api/keys/${encodeURIComponent(key.id)}`);
      await this.load();
      this.status.textContent = `Revoked ${label}.`;
    } catch (error) {
      this.error.textContent = `Could not revoke ${label}: ${error.message}`;
    }
  }

  forgetNewKey() {
    this.newKeyValue.value = "";
    this.newKey.hidden = true;
    this.copyStatus.textContent = "";
  }
}
