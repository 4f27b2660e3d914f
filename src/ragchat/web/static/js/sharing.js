// The sharing dialog of a collection (its owner and admins only): who may read or write it
// (GET /api/collections/{name}/grants), add a user or group (PUT), remove a grant (DELETE).

import { getJSON, sendJSON } from "./api.js";
import { closableDialog, confirmButton, element } from "./widgets.js";

/** Drives `#share-dialog`; `open(collection)` shows the grants of that collection. */
export class SharingDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.collection = "";
    this.list = dialog.querySelector("#grants");
    this.status = dialog.querySelector("#grants-status");
    this.form = dialog.querySelector("#grant-form");
    this.kind = dialog.querySelector("#grant-kind");
    this.name = dialog.querySelector("#grant-name");
    this.permission = dialog.querySelector("#grant-permission");
    this.names = dialog.querySelector("#principal-names");
    this.error = dialog.querySelector("#share-error");
    this.suggestions = { user: [], group: [] };
    closableDialog(dialog, () => {
      this.error.textContent = "";
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.grant();
    });
    this.kind.addEventListener("change", () => this.renderSuggestions());
  }

  open(collection) {
    this.collection = collection;
    for (const node of this.dialog.querySelectorAll(".share-collection")) node.textContent = `“${collection}”`;
    this.error.textContent = "";
    this.form.reset();
    this.list.replaceChildren();
    this.dialog.showModal();
    this.name.focus();
    this.load();
    this.loadSuggestions();
  }

  path(suffix = "") {
    return `/api/collections/${encodeURIComponent(this.collection)}/grants${suffix}`;
  }

  async load() {
    this.list.setAttribute("aria-busy", "true");
    try {
      const { grants } = await getJSON(this.path());
      this.render(grants || []);
    } catch (error) {
      this.status.textContent = `Could not list who has access: ${error.message}`;
    } finally {
      this.list.setAttribute("aria-busy", "false");
    }
  }

  render(grants) {
    const sorted = [...grants].sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
    this.list.replaceChildren(...sorted.map((grant) => this.item(grant)));
    this.status.textContent = grants.length ? "" : "Not shared with anyone yet.";
  }

  item(grant) {
    const li = element("li", "grant");
    li.dataset.kind = grant.kind;
    li.dataset.name = grant.name;
    const who = element("span", "grant-who");
    who.append(element("strong", "", grant.name), element("span", "muted", grant.kind === "group" ? " (group)" : ""));
    const label = `${grant.kind === "group" ? "group " : ""}${grant.name}`;
    li.append(
      who,
      element("span", `grant-permission ${grant.permission}`, grant.permission),
      confirmButton(
        { idle: "Remove", armed: "Confirm", idleName: `Remove ${label}`, armedName: `Confirm: remove ${label}` },
        () => this.remove(grant, label),
      ),
    );
    return li;
  }

  async grant() {
    const name = this.name.value.trim();
    if (!name) {
      this.error.textContent = "Enter the name of a user or a group.";
      this.name.focus();
      return;
    }
    const body = { kind: this.kind.value, name, permission: this.permission.value };
    const submit = this.form.querySelector("button[type=submit]");
    submit.disabled = true;
    this.error.textContent = "";
    try {
      await sendJSON("PUT", this.path(), body);
      this.name.value = "";
      await this.load();
      this.status.textContent = `${name} can now ${body.permission === "write" ? "read and write" : "read"} this collection.`;
    } catch (error) {
      this.error.textContent = `Could not share with ${name}: ${error.message}`;
    } finally {
      submit.disabled = false;
    }
  }

  async remove(grant, label) {
    this.error.textContent = "";
    try {
      await sendJSON("DELETE", this.path(`/${encodeURIComponent(grant.kind)}/${encodeURIComponent(grant.name)}`));
      await this.load();
      this.status.textContent = `Removed ${label}.`;
    } catch (error) {
      this.error.textContent = `Could not remove ${label}: ${error.message}`;
    }
  }

  /** Names for the name box, from GET /api/users and /api/groups (`{users: [{name}]}`); none on an error. */
  async loadSuggestions() {
    const [users, groups] = await Promise.all([names("/api/users", "users"), names("/api/groups", "groups")]);
    this.suggestions = { user: users, group: groups };
    this.renderSuggestions();
  }

  renderSuggestions() {
    const options = this.suggestions[this.kind.value].map((name) => {
      const option = document.createElement("option");
      option.value = name;
      return option;
    });
    this.names.replaceChildren(...options);
  }
}

async function names(path, field) {
  try {
    const body = await getJSON(path);
    return (body[field] || []).map((entry) => entry.name).sort();
  } catch {
    return [];
  }
}
