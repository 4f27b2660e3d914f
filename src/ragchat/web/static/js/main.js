// Entry point: signs in (or finds auth off), then wires the status light, the documents panel, the saved
// conversations, the conversation, the source panel and the keys and sharing dialogs. The open saved
// conversation is in the address (`/?c=<id>`), so a reload or a bookmark opens it again; `/shared/<token>`
// shows a shared conversation read-only.

import { getJSON, onSignedOut } from "./api.js";
import { Auth } from "./auth.js";
import { Chat } from "./chat.js";
import { ConversationList, ConversationShareDialog, conversationPath } from "./conversations.js";
import { Library } from "./documents.js";
import { KeysDialog } from "./keys.js";
import { SharingDialog } from "./sharing.js";
import { SourcePanel } from "./sources.js";
import { StatusLight } from "./status.js";

const $ = (selector) => document.querySelector(selector);
const defaultCollection = $('meta[name="ragchat-default-collection"]')?.content || "default";

const page = { health: null, collection: defaultCollection, documents: null, permission: "", user: null };
const SHARED_PREFIX = "/shared/";
const sharedToken = window.location.pathname.startsWith(SHARED_PREFIX)
  ? decodeURIComponent(window.location.pathname.slice(SHARED_PREFIX.length))
  : null;

const sourcePanel = new SourcePanel($("#source-panel"));
const keys = new KeysDialog($("#keys-dialog"));
const sharing = new SharingDialog($("#share-dialog"));
const conversationShare = new ConversationShareDialog($("#conversation-share-dialog"));

const library = new Library($("#sidebar"), {
  defaultCollection,
  onChange: ({ collection, documents, permission }) => {
    page.collection = collection;
    page.documents = documents;
    page.permission = permission;
    // Another collection chosen while a saved conversation is open: that conversation stays in its own
    // collection, so the next question starts a new one here.
    const open = chat.saved;
    if (open && collection !== open.collection && !chat.busy && library.collections.some((c) => c.name === open.collection)) {
      startNew();
    }
    renderNotices();
  },
  onShare: (name) => sharing.open(name),
});

const chat = new Chat({
  messages: $("#messages"),
  form: $("#composer"),
  input: $("#question"),
  sendButton: $("#send"),
  announcer: $("#announcer"),
  sourcePanel,
  getCollection: () => library.collection ?? defaultCollection,
  collectionIsEmpty: () => Array.isArray(page.documents) && page.documents.length === 0,
  onTrouble: () => status.refresh(),
  saving: () => conversations.available,
  onSaved: (id, { isNew }) => {
    if (isNew) {
      showInAddress(id, "replace");
      conversations.setActive(id);
    }
    conversations.refresh();
  },
  onUnsure: (id) => forgetIfUnsaved(id),
});

const conversations = new ConversationList($("#history"), {
  onOpen: (summary) => {
    setHistoryDrawer(false);
    if (chat.saved?.id !== summary.id || chat.busy) openConversation(summary.id, "push");
  },
  onDeleted: (id) => {
    if (chat.saved?.id === id) startNew();
  },
  onShare: (summary) => conversationShare.open(summary),
});

const status = new StatusLight($("#status"), {
  onHealth: (summary) => {
    page.health = summary;
    renderNotices();
  },
});

const auth = new Auth({
  loginView: $("#login-view"),
  account: $("#account"),
  onSignedIn: (user) => {
    // Someone else signed in after a session ended: nothing of the previous conversation stays.
    if (page.user && page.user.name !== user.name) {
      chat.reset();
      if (!sharedToken) showInAddress(null, "replace");
    }
    page.user = user;
    status.refresh();
    if (sharedToken) {
      openShared(sharedToken);
      return;
    }
    library.start(user);
    conversations.refresh().then((available) => {
      $("#toggle-history").hidden = !available;
    });
    const id = addressedConversation();
    if (id && chat.saved?.id !== id) openConversation(id);
    $("#question").focus();
  },
  onSignedOut: () => {
    status.stop();
    library.stop();
    conversations.stop();
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    setDrawer(false);
    setHistoryDrawer(false);
    sourcePanel.close();
  },
  onOpenKeys: () => keys.open(),
});
onSignedOut(() => auth.ended());

/** The banner over the conversation and the welcome text follow health and the chosen collection. */
function renderNotices() {
  for (const node of document.querySelectorAll(".collection-name")) node.textContent = page.collection ?? "";
  const empty = Array.isArray(page.documents) && page.documents.length === 0;
  $("#welcome-empty").hidden = !empty;
  $("#welcome-ready").hidden = empty || page.documents === null;
  $("#add-documents").hidden = page.permission !== "write" && page.permission !== "manage";
  $("#document-count").textContent = page.documents ? String(page.documents.length) : "";

  const banner = $("#banner");
  const health = page.health;
  if (health && !health.appUp) {
    showBanner(banner, "ragchat is not answering.", "Check that the server is running, then reload this page.");
  } else if (health && health.reachable === false) {
    showBanner(
      banner,
      `The language model (${health.model}) is not answering.`,
      "Start it with ./scripts/start_vllm.sh, or point VLLM_BASE_URL at a running server. " +
        "Documents can still be added meanwhile.",
    );
  } else {
    banner.hidden = true;
  }
}

function showBanner(banner, title, hint) {
  banner.querySelector(".banner-title").textContent = title;
  banner.querySelector(".banner-hint").textContent = hint;
  banner.hidden = false;
}

function setDrawer(open) {
  if (open) setHistoryDrawer(false);
  document.body.classList.toggle("docs-open", open);
  $("#toggle-docs").setAttribute("aria-expanded", String(open));
  if (open) $("#sidebar").focus();
}

function setHistoryDrawer(open) {
  if (open) setDrawer(false);
  document.body.classList.toggle("history-open", open);
  $("#toggle-history").setAttribute("aria-expanded", String(open));
  if (open) $("#history").focus();
}

/** The saved conversation the address names (`/?c=<id>`), or null. */
function addressedConversation() {
  return new URLSearchParams(window.location.search).get("c");
}

/** Put conversation `id` (null: none) in the address, as a new history entry ("push") or in place. */
function showInAddress(id, how) {
  if (addressedConversation() === id) return;
  const url = id ? `/?c=${encodeURIComponent(id)}` : "/";
  if (how === "push") window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}

/** Start a new conversation (the button, or the open one was deleted). */
function startNew() {
  chat.reset();
  conversations.setActive(null);
  showInAddress(null, "push");
}

/** After a stopped or failed first answer: if conversation `id` was not saved, the next question starts one. */
async function forgetIfUnsaved(id) {
  try {
    await getJSON(conversationPath(id));
  } catch (error) {
    if (error.status !== 404 || chat.saved?.id !== id) return;
    chat.saved = null;
    conversations.setActive(null);
    showInAddress(null, "replace");
  }
  conversations.refresh();
}

/** Show saved conversation `id` with its turns and sources; it goes on in its own collection. */
async function openConversation(id, how = "replace") {
  showInAddress(id, how);
  conversations.setActive(id);
  let saved;
  try {
    saved = await getJSON(conversationPath(id));
  } catch (error) {
    if (addressedConversation() !== id) return;
    chat.reset();
    chat.notice(
      error.status === 404 ? "This conversation is not there any more." : `Could not open the conversation: ${error.message}`,
      error.status === 404 ? "It may have been deleted. Pick another one from the list, or ask a new question." : "",
    );
    conversations.setActive(null);
    showInAddress(null, "replace");
    return;
  }
  if (addressedConversation() !== id) return; // another one was picked meanwhile
  chat.show(saved);
  if (library.collection !== saved.collection && library.collections.some((c) => c.name === saved.collection)) {
    library.choose(saved.collection);
  }
}

/** `/shared/<token>`: the shared conversation, read-only (no composer, no documents, no list). */
async function openShared(token) {
  document.body.classList.add("read-only");
  const head = $("#shared-head");
  head.hidden = false;
  try {
    const saved = await getJSON(`/api/shared/${encodeURIComponent(token)}`);
    $("#shared-title").textContent = saved.title;
    $("#shared-note").textContent = `A shared conversation, asked in the collection “${saved.collection}”. It is read-only.`;
    document.title = `${saved.title} · ragchat`;
    chat.show(saved, { readOnly: true });
  } catch (error) {
    $("#shared-title").textContent = "This link does not work.";
    $("#shared-note").textContent =
      error.status === 404
        ? "Sharing was stopped, the conversation was deleted, or you may not read the collection it was asked in. Ask whoever sent it."
        : `Could not open it: ${error.message}`;
  }
}

$("#toggle-docs").addEventListener("click", () => setDrawer(!document.body.classList.contains("docs-open")));
$("#close-docs").addEventListener("click", () => setDrawer(false));
$("#toggle-history").addEventListener("click", () =>
  setHistoryDrawer(!document.body.classList.contains("history-open")),
);
$("#close-history").addEventListener("click", () => setHistoryDrawer(false));
$("#backdrop").addEventListener("click", () => {
  setDrawer(false);
  setHistoryDrawer(false);
  sourcePanel.close();
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (document.body.classList.contains("docs-open")) setDrawer(false);
  if (document.body.classList.contains("history-open")) setHistoryDrawer(false);
});
window.addEventListener("popstate", () => {
  if (sharedToken) return;
  const id = addressedConversation();
  if (id) openConversation(id);
  else {
    chat.reset();
    conversations.setActive(null);
  }
});
$("#new-conversation").addEventListener("click", () => {
  if (sharedToken) window.location.assign("/");
  else startNew();
});
$("#add-documents").addEventListener("click", () => $("#file-input").click());

auth.start();
