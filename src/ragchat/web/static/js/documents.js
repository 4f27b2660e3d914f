// The Documents panel: choose a collection, upload files (picked or dropped) with progress and a result
// per file, list the collection's documents and delete them.

import { deleteDocument, getJSON, uploadFiles } from "./api.js";

const STORAGE_KEY = "ragchat.collection";
const RESULT_LABELS = { added: "Added", replaced: "Replaced", unchanged: "Unchanged", skipped: "Refused" };

/** The documents panel; `onChange({collection, documents})` runs whenever either changes. */
export class Library {
  constructor(root, { defaultCollection, onChange }) {
    this.root = root;
    this.defaultCollection = defaultCollection;
    this.onChange = onChange;
    this.collection = readStoredCollection() || defaultCollection;
    this.documents = [];
    this.select = root.querySelector("#collection");
    this.newCollectionForm = root.querySelector("#new-collection-form");
    this.newCollectionInput = root.querySelector("#new-collection-name");
    this.fileInput = root.querySelector("#file-input");
    this.uploads = root.querySelector("#uploads");
    this.list = root.querySelector("#documents");
    this.listStatus = root.querySelector("#documents-status");
    this.bindControls();
  }

  bindControls() {
    this.select.addEventListener("change", () => this.choose(this.select.value));
    this.root.querySelector("#new-collection").addEventListener("click", () => {
      this.newCollectionForm.hidden = !this.newCollectionForm.hidden;
      if (!this.newCollectionForm.hidden) this.newCollectionInput.focus();
    });
    this.newCollectionForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = this.newCollectionInput.value.trim();
      if (!name) return;
      this.newCollectionInput.value = "";
      this.newCollectionForm.hidden = true;
      this.choose(name);
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
    const carriesFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
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

  /** Reload the collection names and the current collection's documents. */
  async refresh() {
    const [collections] = await Promise.all([this.loadCollections(), this.loadDocuments()]);
    this.renderCollections(collections);
  }

  async loadCollections() {
    try {
      return (await getJSON("/api/collections")).collections || [];
    } catch {
      return []; // the list shows the current and default collections; the documents list reports errors
    }
  }

  async loadDocuments() {
    this.list.setAttribute("aria-busy", "true");
    try {
      const body = await getJSON(`/api/documents?collection=${encodeURIComponent(this.collection)}`);
      this.documents = body.documents || [];
      this.renderDocuments();
    } catch (error) {
      this.listStatus.textContent = `Could not list documents: ${error.message}`;
    } finally {
      this.list.setAttribute("aria-busy", "false");
    }
    this.onChange({ collection: this.collection, documents: this.documents });
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

  renderCollections(collections) {
    const names = new Set([...collections, this.defaultCollection, this.collection]);
    const options = Array.from(names)
      .sort((a, b) => a.localeCompare(b))
      .map((name) => {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        return option;
      });
    this.select.replaceChildren(...options);
    this.select.value = this.collection;
  }

  renderDocuments() {
    this.root.querySelector("#documents-collection").textContent = this.collection;
    const items = this.documents.map((doc) => this.documentItem(doc));
    this.list.replaceChildren(...items);
    this.listStatus.textContent = this.documents.length
      ? ""
      : "No documents here yet. Add some above: each is split into chunks and indexed for search.";
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
    item.append(main, this.deleteButton(doc, name, item));
    return item;
  }

  /** Delete takes two clicks: the first arms the button for a few seconds. */
  deleteButton(doc, name, item) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "doc-delete";
    const disarm = () => {
      button.classList.remove("armed");
      button.textContent = "Delete";
      button.setAttribute("aria-label", `Delete ${name}`);
    };
    disarm();
    let timer = null;
    button.addEventListener("click", async () => {
      if (!button.classList.contains("armed")) {
        button.classList.add("armed");
        button.textContent = "Confirm";
        button.setAttribute("aria-label", `Confirm: delete ${name}`);
        timer = setTimeout(disarm, 4000);
        return;
      }
      clearTimeout(timer);
      button.disabled = true;
      item.classList.add("removing");
      try {
        await deleteDocument(doc.id);
        await this.refresh();
      } catch (error) {
        item.classList.remove("removing");
        button.disabled = false;
        disarm();
        this.listStatus.textContent = `Could not delete ${name}: ${error.message}`;
      }
    });
    return button;
  }

  /** Upload `files` to the current collection, showing progress and then one result line per file. */
  async upload(files) {
    if (!files.length) return;
    const collection = this.collection;
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

    try {
      const results = await uploadFiles(files, collection, (fraction) => {
        if (fraction === null) {
          bar.removeAttribute("value");
          state.textContent = "Indexing…";
        } else {
          bar.value = fraction;
          state.textContent = `Uploading ${Math.round(fraction * 100)}%`;
        }
      });
      bar.remove();
      const accepted = results.filter((r) => r.status !== "skipped").length;
      state.textContent = `${accepted} of ${results.length} indexed`;
      batch.append(resultList(results));
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
      result.status === "skipped" ? result.reason || "not indexed" : plural(result.chunks, "chunk");
    item.append(badge, name, detail);
    list.append(item);
  }
  return list;
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
