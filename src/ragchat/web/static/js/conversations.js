// Saved conversations: the list beside the chat (GET /api/conversations, newest first, paged), each with a
// menu to rename (PATCH), share (the share dialog) and delete (DELETE) it; and the share dialog, which
// makes a read-only link (POST .../share), copies it, and stops it (DELETE .../share).

import { getJSON, sendJSON } from "./api.js";
import { closableDialog, confirmButton, dismissable, element, formatTime } from "./widgets.js";

const PAGE_SIZE = 50;

/** The path of one conversation (or of one of its parts, `suffix`) in the API. */
export function conversationPath(id, suffix = "") {
  return `/api/conversations/${encodeURIComponent(id)}${suffix}`;
}

/**
 * Drives the `#history` panel. `onOpen(summary)` runs when a conversation is picked, `onDeleted(id)` after
 * one is deleted, `onShare(summary)` from a conversation's menu. `available` is false until the first list
 * arrives (a server without saved conversations leaves the page as it was).
 */
export class ConversationList {
  constructor(root, { onOpen, onDeleted, onShare }) {
    this.root = root;
    this.onOpen = onOpen;
    this.onDeleted = onDeleted;
    this.onShare = onShare;
    this.list = root.querySelector("#conversations");
    this.status = root.querySelector("#conversations-status");
    this.more = root.querySelector("#more-conversations");
    this.summaries = [];
    this.next = null;
    this.activeId = null;
    this.available = false;
    this.rounds = 0;
    this.more.addEventListener("click", () => this.loadMore());
  }

  /** Load the first page (after a sign-in, or after a chat saved a turn). Resolves to `available`. */
  async refresh() {
    this.rounds += 1;
    const round = this.rounds;
    this.list.setAttribute("aria-busy", "true");
    try {
      const body = await getJSON(`/api/conversations?limit=${PAGE_SIZE}`);
      if (round !== this.rounds) return this.available;
      this.available = true;
      this.summaries = body.conversations || [];
      this.next = body.next || null;
      this.render();
    } catch (error) {
      if (round !== this.rounds) return this.available;
      if (!this.available) {
        // No saved conversations on this server (or not for this caller): the panel stays away.
        this.root.hidden = true;
        document.body.classList.remove("has-history");
        return false;
      }
      this.status.textContent = `Could not list your conversations: ${error.message}`;
    } finally {
      this.list.setAttribute("aria-busy", "false");
    }
    this.root.hidden = false;
    document.body.classList.add("has-history");
    return this.available;
  }

  async loadMore() {
    if (!this.next) return;
    this.more.disabled = true;
    const round = this.rounds;
    try {
      const body = await getJSON(`/api/conversations?limit=${PAGE_SIZE}&before=${encodeURIComponent(this.next)}`);
      if (round !== this.rounds) return;
      const known = new Set(this.summaries.map((s) => s.id));
      this.summaries.push(...(body.conversations || []).filter((s) => !known.has(s.id)));
      this.next = body.next || null;
      this.render();
    } catch (error) {
      this.status.textContent = `Could not list more conversations: ${error.message}`;
    } finally {
      this.more.disabled = false;
    }
  }

  /** Forget everything shown (the session ended). */
  stop() {
    this.rounds += 1;
    this.available = false;
    this.summaries = [];
    this.next = null;
    this.activeId = null;
    this.list.replaceChildren();
    this.status.textContent = "";
  }

  /** Mark the open conversation (null: a new one) in the list. */
  setActive(id) {
    this.activeId = id;
    for (const item of this.list.children) {
      const open = item.querySelector(".conversation-open");
      if (item.dataset.id === id) open.setAttribute("aria-current", "true");
      else open.removeAttribute("aria-current");
    }
  }

  render() {
    this.list.replaceChildren(...this.summaries.map((summary) => this.item(summary)));
    this.status.textContent = this.summaries.length ? "" : "No saved conversations yet. Ask a question to start one.";
    this.more.hidden = !this.next;
  }

  item(summary) {
    const li = element("li", "conversation-item");
    li.dataset.id = summary.id;
    const open = element("button", "conversation-open");
    open.type = "button";
    open.append(
      element("span", "conversation-title", summary.title || "Untitled"),
      element("span", "conversation-meta", `${summary.collection} · ${shortTime(summary.updated_at)}`),
    );
    open.title = `${summary.title}\nLast asked ${formatTime(summary.updated_at, "")}`;
    if (summary.id === this.activeId) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => this.onOpen(summary));
    li.append(open, this.menu(summary, li));
    return li;
  }

  /** The ⋯ menu of one conversation: Rename, Share…, Delete (two clicks). */
  menu(summary, li) {
    const title = summary.title || "Untitled";
    const menu = element("details", "conversation-menu");
    const toggle = element("summary", "conversation-menu-toggle");
    toggle.setAttribute("aria-label", `Actions for ${title}`);
    toggle.append(element("span", "dots-icon"));
    toggle.firstChild.setAttribute("aria-hidden", "true");
    const panel = element("div", "menu-panel");
    const rename = element("button", "ghost", "Rename");
    rename.type = "button";
    rename.setAttribute("aria-label", `Rename ${title}`);
    rename.addEventListener("click", () => {
      menu.open = false;
      this.startRename(summary, li);
    });
    const share = element("button", "ghost", "Share…");
    share.type = "button";
    share.setAttribute("aria-label", `Share ${title}`);
    share.addEventListener("click", () => {
      menu.open = false;
      this.onShare(summary);
    });
    const remove = confirmButton(
      { idle: "Delete", armed: "Confirm delete", idleName: `Delete ${title}`, armedName: `Confirm: delete ${title}` },
      () => this.remove(summary, li),
      "ghost danger",
    );
    panel.append(rename, share, remove);
    menu.append(toggle, panel);
    dismissable(menu);
    return menu;
  }

  /** Swap the item for a small form with the title; Enter saves, Escape (or Cancel) leaves it as it was. */
  startRename(summary, li) {
    const form = element("form", "conversation-rename");
    const label = element("label", "sr-only", `New title for ${summary.title}`);
    const input = element("input");
    input.id = `rename-${summary.id}`;
    label.htmlFor = input.id;
    input.value = summary.title;
    input.maxLength = 200;
    input.required = true;
    input.autocomplete = "off";
    const save = element("button", "small", "Save");
    save.type = "submit";
    const cancel = element("button", "ghost small", "Cancel");
    cancel.type = "button";
    const error = element("p", "form-error");
    error.setAttribute("role", "alert");
    const row = element("div", "row");
    row.append(input, save, cancel);
    form.append(label, row, error);
    const done = () => {
      form.replaceWith(this.item(summary));
      this.list.querySelector(`[data-id="${CSS.escape(summary.id)}"] .conversation-open`)?.focus();
    };
    cancel.addEventListener("click", done);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        done();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const title = input.value.trim();
      if (!title) {
        error.textContent = "A title cannot be empty.";
        return;
      }
      save.disabled = true;
      try {
        Object.assign(summary, await sendJSON("PATCH", conversationPath(summary.id), { title }));
        done();
      } catch (failure) {
        error.textContent = `Could not rename: ${failure.message}`;
        save.disabled = false;
      }
    });
    li.replaceChildren(form);
    input.focus();
    input.select();
  }

  async remove(summary, li) {
    li.classList.add("removing");
    try {
      await sendJSON("DELETE", conversationPath(summary.id));
    } catch (error) {
      li.classList.remove("removing");
      this.status.textContent = `Could not delete “${summary.title}”: ${error.message}`;
      return;
    }
    this.summaries = this.summaries.filter((s) => s.id !== summary.id);
    this.render();
    if (this.summaries.length) this.status.textContent = `Deleted “${summary.title}”.`;
    this.onDeleted(summary.id);
  }
}

/** When a conversation was last continued, briefly: the time today, else the day (and the year if not this one). */
function shortTime(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return date.toLocaleTimeString(undefined, { timeStyle: "short" });
  const options = { month: "short", day: "numeric" };
  if (date.getFullYear() !== now.getFullYear()) options.year = "numeric";
  return date.toLocaleDateString(undefined, options);
}

/** Drives `#conversation-share-dialog`; `open(summary)` makes (or shows) the conversation's read-only link. */
export class ConversationShareDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.summary = null;
    this.link = dialog.querySelector("#share-link");
    this.linkRow = dialog.querySelector(".share-link-row");
    this.status = dialog.querySelector("#share-link-status");
    this.error = dialog.querySelector("#share-link-error");
    this.stopButton = dialog.querySelector("#stop-sharing");
    closableDialog(dialog, () => {
      this.summary = null;
    });
    dialog.querySelector("#copy-share-link").addEventListener("click", () => this.copy());
    this.stopButton.addEventListener("click", () => this.stopSharing());
  }

  async open(summary) {
    this.summary = summary;
    for (const node of this.dialog.querySelectorAll(".share-conversation-title")) node.textContent = `“${summary.title}”`;
    this.dialog.querySelector(".share-conversation-collection").textContent = summary.collection;
    this.link.value = "";
    this.linkRow.hidden = true;
    this.stopButton.hidden = true;
    this.status.textContent = "Making the link…";
    this.error.textContent = "";
    this.dialog.showModal();
    try {
      const { url } = await sendJSON("POST", conversationPath(summary.id, "/share"));
      if (this.summary !== summary) return;
      this.link.value = new URL(url, window.location.origin).href;
      this.linkRow.hidden = false;
      this.stopButton.hidden = false;
      this.status.textContent = "";
      this.link.focus();
      this.link.select();
    } catch (error) {
      this.status.textContent = "";
      this.error.textContent = `Could not make a link: ${error.message}`;
    }
  }

  async copy() {
    try {
      await navigator.clipboard.writeText(this.link.value);
      this.status.textContent = "Link copied.";
    } catch {
      // No clipboard access (e.g. plain HTTP on another host): leave it selected for Ctrl+C.
      this.link.focus();
      this.link.select();
      this.status.textContent = "The browser does not allow copying here: the link is selected, press Ctrl+C.";
    }
  }

  async stopSharing() {
    const summary = this.summary;
    if (!summary) return;
    this.stopButton.disabled = true;
    this.error.textContent = "";
    try {
      await sendJSON("DELETE", conversationPath(summary.id, "/share"));
      this.link.value = "";
      this.linkRow.hidden = true;
      this.stopButton.hidden = true;
      this.status.textContent = "The link no longer works. Share again to make a new one.";
    } catch (error) {
      this.error.textContent = `Could not stop sharing: ${error.message}`;
    } finally {
      this.stopButton.disabled = false;
    }
  }
}
