// Entry point: signs in (or finds auth off), then wires the status light, the documents panel, the
// conversation, the source panel and the keys and sharing dialogs.

import { onSignedOut } from "./api.js";
import { Auth } from "./auth.js";
import { Chat } from "./chat.js";
import { Library } from "./documents.js";
import { KeysDialog } from "./keys.js";
import { SharingDialog } from "./sharing.js";
import { SourcePanel } from "./sources.js";
import { StatusLight } from "./status.js";

const $ = (selector) => document.querySelector(selector);
const defaultCollection = $('meta[name="ragchat-default-collection"]')?.content || "default";

const page = { health: null, collection: defaultCollection, documents: null, permission: "", user: null };

const sourcePanel = new SourcePanel($("#source-panel"));
const keys = new KeysDialog($("#keys-dialog"));
const sharing = new SharingDialog($("#share-dialog"));

const library = new Library($("#sidebar"), {
  defaultCollection,
  onChange: ({ collection, documents, permission }) => {
    page.collection = collection;
    page.documents = documents;
    page.permission = permission;
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
    if (page.user && page.user.name !== user.name) chat.reset();
    page.user = user;
    status.refresh();
    library.start(user);
    $("#question").focus();
  },
  onSignedOut: () => {
    status.stop();
    library.stop();
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    setDrawer(false);
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
  document.body.classList.toggle("docs-open", open);
  $("#toggle-docs").setAttribute("aria-expanded", String(open));
  if (open) $("#sidebar").focus();
}

$("#toggle-docs").addEventListener("click", () => setDrawer(!document.body.classList.contains("docs-open")));
$("#close-docs").addEventListener("click", () => setDrawer(false));
$("#backdrop").addEventListener("click", () => {
  setDrawer(false);
  sourcePanel.close();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.body.classList.contains("docs-open")) setDrawer(false);
});
$("#new-conversation").addEventListener("click", () => chat.reset());
$("#add-documents").addEventListener("click", () => $("#file-input").click());

auth.start();
