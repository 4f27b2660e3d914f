// The Documents panel: choose a collection (only those the person may read), create one, upload files
// (picked or dropped; only with write permission) with progress and a result per file, list the
// collection's documents and delete them.

import { deleteDocument, followJob, getJSON, sendJSON, uploadFiles } from "./api.js";
import { confirmButton } from "./widgets.js";

const STORAGE_KEY = "ragchat.collection";
const RESULT_LABELS = {
  pending: "Waiting",
  processing: "Indexing",
  added: "Added",
  replaced: "Replaced",
  unchanged: "Unchanged",
  skipped: "Refused",
  failed: "Failed",
};
const NOT_STORED = new Set(["pending", "processing", "skipped", "failed"]);
const WRITABLE = new Set(["write", "manage"]);

/**
 * The documents panel; `onChange({collection, documents, permission})` runs whenever one changes.
 * `onShare(name)` opens the sharing dialog of a collection the person manages.
 */
export class Library {
  constructor(root, { defaultCollection, onChange, onShare }) {
    this.root = root;
    this.defaultCollection = defaultCollection;
    this.onChange = onChange;
    this.user = null;
    this.rounds = 0;
    this.collections = [];
    this.collection = null;
    this.documents = [];
    this.select = root.querySelector("#collection");
    this.newCollectionForm = root.querySelector("#new-collection-form");
    this.newCollectionInput = root.querySelector("#new-collection-name");
    this.newCollectionError = root.querySelector("#new-collection-error");
    this.access = root.querySelector("#collection-access");
    this.shareButton = root.querySelector("#share-collection");
    this.fileInput = root.querySelector("#file-input");
    this.dropzone = root.querySelector(".dropzone");
    this.uploads = root.querySelector("#uploads");
    this.list = root.querySelector("#documents");
    this.listStatus = root.querySelector("#documents-status");
    this.shareButton.addEventListener("click", () => onShare(this.collection));
    this.bindControls();
  }

  /** The current collection's entry from GET /api/collections, or null when there is none. */
  get current() {
    return this.collections.find((c) => c.name === this.collection) || null;
  }

  /** The person's permission on the current collection: "read", "write", "manage" or "" (none). */
  get permission() {
    return this.current?.permission || "";
  }

  get writable() {
    return WRITABLE.has(this.permission);
  }

  bindControls() {
    this.select.addEventListener("change", () => this.choose(this.select.value));
    this.root.querySelector("#new-collection").addEventListener("click", () => {
      this.newCollectionForm.hidden = !this.newCollectionForm.hidden;
      this.newCollectionError.textContent = "";
      if (!this.newCollectionForm.hidden) this.newCollectionInput.focus();
    });
    this.newCollectionForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create(this.newCollectionInput.value.trim());
    });
    this.fileInput.addEventListener("change", () => {
      const files = Array.from(this.fileInput.files);
      this.fileInput.value = "";
      this.upload(files);
    });
    this.bindDropTarget();
  }

  /** Files dropped anywhere on the page go to the current collection. */
  bindDropTarget() {
    let depth = 0;
    const carriesFiles = (event) =>
      this.user !== null && Array.from(event.dataTransfer?.types || []).includes("Files");
    window.addEventListener("dragenter", (event) => {
      if (!carriesFiles(event)) return;
      depth += 1;
      document.body.classList.add("dragging");
    });
    window.addEventListener("dragleave", (event) => {
      if (!carriesFiles(event)) return;
      depth = Math.max(0, depth - 1);
      if (depth === 0) document.body.classList.remove("dragging");
    });
    window.addEventListener("dragover", (event) => {
      if (carriesFiles(event)) event.preventDefault();
    });
    window.addEventListener("drop", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      depth = 0;
      document.body.classList.remove("dragging");
      this.upload(Array.from(event.dataTransfer.files));
    });
  }

  /** Show `user`'s collections (after a sign-in); a different person starts from their own choice. */
  start(user) {
    this.user = user;
    this.collection = readStoredCollection();
    return this.refresh();
  }

  /** Forget everything shown (the session ended): another person may sign in next. */
  stop() {
    this.rounds += 1; // answers still on their way are dropped
    this.user = null;
    this.collections = [];
    this.collection = null;
    this.documents = [];
    this.select.replaceChildren();
    this.list.replaceChildren();
    this.uploads.replaceChildren();
    this.listStatus.textContent = "";
  }

  /** Reload the collections and the current collection's documents. */
  async refresh() {
    // A later refresh (another collection chosen meanwhile) wins: an older answer is dropped.
    this.rounds += 1;
    const round = this.rounds;
    const collections = await this.loadCollections();
    if (round !== this.rounds) return;
    this.collections = collections;
    const names = this.collections.map((c) => c.name);
    if (!names.includes(this.collection)) {
      this.collection = names.includes(this.defaultCollection) ? this.defaultCollection : names[0] || null;
    }
    this.renderCollections();
    await this.loadDocuments(round);
  }

  /** GET /api/collections: `[{name, owner, permission, documents}]`, only what the person may read. */
  async loadCollections() {
    try {
      const collections = (await getJSON("/api/collections")).collections || [];
      return collections.sort((a, b) => a.name.localeCompare(b.name));
    } catch (error) {
      this.listStatus.textContent = `Could not list collections: ${error.message}`;
      return [];
    }
  }

  async loadDocuments(round) {
    if (this.collection === null) {
      this.documents = [];
      this.renderDocuments();
    } else {
      this.list.setAttribute("aria-busy", "true");
      try {
        const body = await getJSON(`/api/documents?collection=${encodeURIComponent(this.collection)}`);
        if (round !== this.rounds) return;
        this.documents = body.documents || [];
        this.renderDocuments();
      } catch (error) {
        this.listStatus.textContent = `Could not list documents: ${error.message}`;
      } finally {
        this.list.setAttribute("aria-busy", "false");
      }
    }
    this.onChange({ collection: this.collection, documents: this.documents, permission: this.permission });
  }

  choose(name) {
    this.collection = name;
    try {
      localStorage.setItem(STORAGE_KEY, name);
    } catch {
      // storage disabled: the choice lasts for this page only
    }
    this.refresh();
  }

  /** POST /api/collections: the person owns the new collection, which becomes the current one. */
  async create(name) {
    if (!name) return;
    const submit = this.newCollectionForm.querySelector("button[type=submit]");
    submit.disabled = true;
    this.newCollectionError.textContent = "";
    try {
      await sendJSON("POST", "/api/collections", { name });
    } catch (error) {
      this.newCollectionError.textContent = `Could not create “${name}”: ${error.message}`;
      this.newCollectionInput.focus();
      return;
    } finally {
      submit.disabled = false;
    }
    this.newCollectionInput.value = "";
    this.newCollectionForm.hidden = true;
    this.choose(name);
  }

  renderCollections() {
    const options = this.collections.map(({ name }) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    });
    if (!options.length) {
      const none = document.createElement("option");
      none.value = "";
      none.textContent = "No collections yet";
      none.disabled = true;
      options.push(none);
    }
    this.select.replaceChildren(...options);
    this.select.value = this.collection ?? "";
    this.renderAccess();
  }

  /** What the person may do here, and an upload zone that only takes files when they may write. */
  renderAccess() {
    const auth = this.user?.auth !== "off";
    const current = this.current;
    this.access.textContent = !auth ? "" : accessText(current, this.user);
    this.shareButton.hidden = !auth || current?.permission !== "manage";
    const writable = this.writable;
    this.fileInput.disabled = !writable;
    this.dropzone.classList.toggle("disabled", !writable);
    this.dropzone.setAttribute("aria-disabled", String(!writable));
    this.root.querySelector(".dropzone-title").textContent = writable ? "Add documents" : "Adding documents is off";
    this.root.querySelector("#dropzone-hint").replaceChildren(...dropzoneHint(current, writable));
  }

  renderDocuments() {
    this.root.querySelector("#documents-collection").textContent = this.collection ?? "";
    const items = this.documents.map((doc) => this.documentItem(doc));
    this.list.replaceChildren(...items);
    this.listStatus.textContent = this.documents.length
      ? ""
      : this.collection === null
        ? "You have no collection yet: create one with New…, or ask an admin to share one with you."
        : this.writable
          ? "No documents here yet. Add some above: each is split into chunks and indexed for search."
          : "No documents here yet.";
  }

  documentItem(doc) {
    const name = doc.title || baseName(doc.path);
    const item = document.createElement("li");
    item.className = "doc";
    item.dataset.documentId = String(doc.id);
    const main = document.createElement("div");
    main.className = "doc-main";
    const title = document.createElement("span");
    title.className = "doc-title";
    title.textContent = name;
    const meta = document.createElement("span");
    meta.className = "doc-meta";
    const parts = [];
    if (doc.title && doc.path) parts.push(baseName(doc.path));
    parts.push(plural(doc.chunk_count, "chunk"));
    meta.textContent = parts.join(" · ");
    const details = [`${plural(doc.char_count, "character")} of text`];
    if (doc.created_at) details.push(`added ${new Date(doc.created_at).toLocaleString()}`);
    item.title = details.join(", ");
    main.append(title, meta);
    item.append(main);
    if (this.writable) item.append(this.deleteButton(doc, name, item));
    return item;
  }

  /** Delete takes two clicks: the first arms the button for a few seconds. */
  deleteButton(doc, name, item) {
    const labels = { idle: "Delete", armed: "Confirm", idleName: `Delete ${name}`, armedName: `Confirm: delete ${name}` };
    return confirmButton(
      labels,
      async () => {
        item.classList.add("removing");
        try {
          await deleteDocument(doc.id);
          await this.refresh();
        } catch (error) {
          item.classList.remove("removing");
          this.listStatus.textContent = `Could not delete ${name}: ${error.message}`;
        }
      },
      "doc-delete",
    );
  }

  /** Upload `files` to the current collection, showing progress and then one result line per file. */
  async upload(files) {
    if (!files.length) return;
    const collection = this.collection;
    const refusal = this.writable ? "" : dropzoneText(this.current);
    const batch = document.createElement("li");
    batch.className = "upload";
    const head = document.createElement("div");
    head.className = "upload-head";
    const label = document.createElement("span");
    label.textContent = files.length === 1 ? files[0].name : `${files.length} files`;
    const state = document.createElement("span");
    state.className = "upload-state";
    state.textContent = "Uploading…";
    head.append(label, state);
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", `Upload of ${label.textContent}`);
    batch.append(head, bar);
    this.uploads.prepend(batch);

    // The server refuses a whole request with a file type it cannot read before it reads any file (so that
    // no bytes of it are stored): such files are refused here, each with its own result, and the rest go.
    const readable = this.fileInput.accept.split(",");
    const canRead = (file) => readable.some((suffix) => file.name.toLowerCase().endsWith(suffix));
    const refused = files
      .filter((file) => !canRead(file))
      .map((file) => ({
        filename: file.name,
        status: "skipped",
        reason: `unsupported file type; ragchat reads ${readable.join(", ")}`,
      }));
    const sent = files.filter(canRead);
    try {
      if (refusal) throw new Error(refusal);
      let list = resultList(refused);
      let results = [];
      if (sent.length) {
        const queued = await uploadFiles(sent, collection, (fraction) => {
          if (fraction === null) {
            bar.removeAttribute("value");
            state.textContent = "Storing…";
          } else {
            bar.value = fraction;
            state.textContent = `Uploading ${Math.round(fraction * 100)}%`;
          }
        });
        // The server indexes the files in the background: show each file's result as it settles.
        batch.append(list);
        const job = await followJob(queued, (current) => {
          bar.value = current.settled_files / Math.max(1, current.total_files);
          state.textContent =
            current.status === "queued"
              ? "Waiting to be indexed…"
              : `Indexing ${current.settled_files} of ${current.total_files}…`;
          const next = resultList([...current.results, ...refused]);
          list.replaceWith(next);
          list = next;
        });
        results = job.results;
      } else {
        batch.append(list);
      }
      bar.remove();
      const accepted = results.filter((r) => !NOT_STORED.has(r.status)).length;
      state.textContent = `${accepted} of ${files.length} indexed`;
    } catch (error) {
      bar.remove();
      batch.classList.add("failed");
      state.textContent = "Failed";
      const message = document.createElement("p");
      message.className = "upload-error";
      message.setAttribute("role", "alert");
      message.textContent = error.message;
      batch.append(message);
    }
    head.append(dismissButton(batch));
    if (collection === this.collection) await this.refresh();
  }
}

function dismissButton(batch) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "ghost icon upload-dismiss";
  button.textContent = "×";
  button.setAttribute("aria-label", "Dismiss these upload results");
  button.addEventListener("click", () => batch.remove());
  return button;
}

function resultList(results) {
  const list = document.createElement("ul");
  list.className = "upload-results";
  for (const result of results) {
    const item = document.createElement("li");
    item.className = `result ${result.status}`;
    const name = document.createElement("span");
    name.className = "result-name";
    name.textContent = result.filename;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = RESULT_LABELS[result.status] || result.status;
    const detail = document.createElement("span");
    detail.className = "result-detail";
    detail.textContent =
      result.status === "skipped" || result.status === "failed"
        ? result.reason || "not indexed"
        : result.status === "pending" || result.status === "processing"
          ? ""
          : plural(result.chunks, "chunk");
    item.append(badge, name, detail);
    list.append(item);
  }
  return list;
}

function accessText(collection, user) {
  if (!collection) return "";
  const owner = collection.owner === user?.name ? "you" : collection.owner;
  switch (collection.permission) {
    case "manage":
      return owner ? `Owned by ${owner}; you manage who may use it.` : "You manage this collection.";
    case "write":
      return `Shared with you: you can ask it and add or delete documents${owner ? ` (owner: ${owner})` : ""}.`;
    default:
      return `Shared with you read-only: you can ask it but not change its documents${owner ? ` (owner: ${owner})` : ""}.`;
  }
}

/** Why files cannot be added to `collection` now, in one sentence. */
function dropzoneText(collection) {
  if (!collection) return "Create a collection first (New…), then add documents to it.";
  return `You may only read “${collection.name}”: ask its owner or an admin for write access to add documents.`;
}

function dropzoneHint(collection, writable) {
  if (!writable) return [dropzoneText(collection)];
  const choose = document.createElement("u");
  choose.textContent = "choose files";
  return ["Drop files here or ", choose, document.createElement("br"), "Markdown, text, HTML, PDF, Word"];
}

function readStoredCollection() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function baseName(path) {
  return String(path || "").split(/[\\/]/).pop();
}

function plural(count, noun) {
  const n = Number(count) || 0;
  return `${n.toLocaleString()} ${noun}${n === 1 ? "" : "s"}`;
}
