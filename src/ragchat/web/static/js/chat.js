// The conversation: sends each question to /v1/chat/completions (saved server-side when the server keeps
// conversations: `store: true` starts one, `conversation_id` continues it; otherwise with the history, as
// a stateless client), streams the answer in as Markdown, lists its sources, offers feedback on saved
// answers, shows errors with what to do about them, and shows a saved conversation again.

import { ApiError, streamChat } from "./api.js";
import { conversationPath } from "./conversations.js";
import { feedbackControls } from "./feedback.js";
import { citedNumbers, describeSource, renderAnswer } from "./markdown.js";
import { element } from "./widgets.js";

const START_LLM = "Start the LLM server (./scripts/start_vllm.sh) or check VLLM_BASE_URL, then send your question again.";

// What the person can do, by the error codes of docs/architecture.md's API.
const HINTS = {
  llm_unavailable: `${START_LLM} The light at the top turns green when the model answers.`,
  llm_model_not_found: "VLLM_MODEL names a model the LLM server does not serve: fix it (or leave it unset) and restart ragchat.",
  llm_timeout: "The model took too long to answer; it may be busy. Try again, or raise LLM_READ_TIMEOUT_S.",
  llm_stream_broken: "The model stopped in the middle of the answer (did its server restart?). Send the question again.",
  collection_not_found: "Add documents to this collection first (Documents panel), or choose another collection.",
  question_too_long: "Shorten the question, or start a new conversation so less history has to fit.",
  forbidden: "Your access does not allow this: ask the collection's owner or an admin.",
  unauthenticated: "Sign in again, then send your question again.",
  embedding_unavailable: "The embedding model is not answering: check EMBEDDING_BACKEND and EMBEDDING_BASE_URL.",
};

/** What the person can do about `error`, in a sentence or two ("" when the message says it all). */
export function hintFor(error) {
  if (HINTS[error.code]) return HINTS[error.code];
  if (error.status === 503) return START_LLM;
  if (error.status >= 500) return "Something went wrong on the server; its log has the details. Try again.";
  return "";
}

const NO_DOCUMENTS_HINT = "Add documents in the Documents panel, or drop files onto the page.";

/** One chat session bound to the page's conversation elements. */
export class Chat {
  /**
   * @param {object} parts - `messages` (ol), `form`, `input` (textarea), `sendButton`, `announcer`
   *   (sr-only live region), `sourcePanel`, `getCollection()`, `collectionIsEmpty()`, `onTrouble(error)`
   *   (called after a failure), `saving()` (true: the server keeps conversations), `onSaved(id, {isNew})`
   *   (a question was saved in conversation `id`: on its first chunk when new, else when answered),
   *   `onUnsure(id)` (the first answer of new conversation `id` did not complete: it may not be saved).
   */
  constructor(parts) {
    Object.assign(this, parts);
    this.history = [];
    /** The saved conversation on screen (`{id, collection}`), or null for a new one. */
    this.saved = null;
    this.conversation = 0; // bumped by reset(), so an answer still in flight cannot write to the new one
    this.controller = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (this.controller) this.controller.abort();
      else this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (!this.controller) this.send();
      }
    });
    this.input.addEventListener("input", () => this.fitInput());
  }

  get busy() {
    return this.controller !== null;
  }

  fitInput() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  /** Forget the conversation and start afresh. */
  reset() {
    this.controller?.abort();
    this.conversation += 1;
    this.history = [];
    this.saved = null;
    this.messages.replaceChildren();
    this.sourcePanel.close();
    document.body.classList.remove("has-messages");
    this.input.focus();
  }

  async send() {
    const question = this.input.value.trim();
    if (!question || this.controller) return;
    this.input.value = "";
    this.fitInput();
    document.body.classList.add("has-messages");
    const saving = this.saving();
    const continued = saving ? this.saved : null;
    // A saved conversation stays in the collection it was asked in.
    const collection = continued ? continued.collection : this.getCollection();
    this.addUserTurn(question);
    const turn = this.addAssistantTurn();
    const messages = [...(saving ? [] : this.history), { role: "user", content: question }];
    const request = { model: `ragchat/${collection}`, collection, messages };
    if (continued) request.conversation_id = continued.id;
    else if (saving) request.store = true;
    const conversation = this.conversation;
    let turnId = null;
    let answered = false;

    this.controller = new AbortController();
    this.setSending(true);
    let text = "";
    let sources = [];
    let lastPaint = 0;
    try {
      const stream = streamChat(request, this.controller.signal);
      for await (const event of stream) {
        if (typeof event.turn_id === "string") turnId = event.turn_id;
        if (typeof event.conversation_id === "string" && !continued && conversation === this.conversation) {
          this.saved = { id: event.conversation_id, collection };
          this.onSaved(event.conversation_id, { isNew: true });
        }
        if (event.error) {
          throw new ApiError(event.error.message || "The answer failed.", {
            status: 200,
            code: event.error.code,
            type: event.error.type,
          });
        }
        if (Array.isArray(event.sources)) sources = event.sources;
        const delta = event.choices?.[0]?.delta?.content;
        if (delta) {
          text += delta;
          const now = performance.now();
          if (now - lastPaint > 40) {
            this.paint(turn, text, []);
            lastPaint = now;
          }
        }
      }
      this.paint(turn, text, sources);
      this.renderSources(turn, text, sources);
      if (conversation === this.conversation) {
        this.history = [...messages, { role: "assistant", content: text }];
        if (this.saved && turnId) {
          this.addFeedback(turn, this.saved.id, turnId, null);
          this.onSaved(this.saved.id, { isNew: false });
        }
      }
      answered = true;
      this.announcer.textContent = "Answer ready.";
    } catch (error) {
      if (error.name === "AbortError") {
        this.paint(turn, text, []);
        turn.querySelector(".turn-note").textContent = "Stopped.";
        if (text && conversation === this.conversation) {
          this.history = [...messages, { role: "assistant", content: text }];
        }
      } else {
        this.paint(turn, text, []);
        const restored = !this.input.value;
        if (restored) {
          this.input.value = question;
          this.fitInput();
        }
        this.showError(turn, error, restored);
        this.onTrouble(error);
      }
    } finally {
      turn.setAttribute("aria-busy", "false");
      turn.querySelector(".answer").classList.remove("streaming");
      this.controller = null;
      this.setSending(false);
      // A new conversation whose first answer was stopped or failed may not have been saved.
      if (!answered && !continued && this.saved && conversation === this.conversation) this.onUnsure(this.saved.id);
    }
  }

  setSending(sending) {
    this.sendButton.textContent = sending ? "Stop" : "Send";
    this.sendButton.setAttribute("aria-label", sending ? "Stop the answer" : "Send question");
    this.sendButton.classList.toggle("stop", sending);
  }

  addUserTurn(question) {
    const turn = element("li", "turn user");
    const bubble = element("div", "bubble");
    bubble.textContent = question;
    turn.append(element("h2", "sr-only", "You asked"), bubble);
    this.messages.append(turn);
    turn.scrollIntoView({ block: "end" });
  }

  addAssistantTurn() {
    const turn = element("li", "turn assistant");
    turn.setAttribute("aria-busy", "true");
    const answer = element("div", "answer markdown streaming");
    turn.append(element("h2", "sr-only", "Answer"), answer, element("p", "turn-note"));
    this.messages.append(turn);
    return turn;
  }

  paint(turn, text, sources) {
    const byIndex = new Map(sources.map((source) => [source.index, source]));
    const stick = this.nearBottom();
    renderAnswer(turn.querySelector(".answer"), text, byIndex, (source, button) =>
      this.sourcePanel.show(source, button),
    );
    if (stick) turn.scrollIntoView({ block: "end" });
  }

  nearBottom() {
    const scroller = this.messages.closest(".conversation");
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  }

  /**
   * Show a saved conversation (GET /api/conversations/{id}'s body): its turns, their citations and
   * sources, and (unless `readOnly`, as for a shared link) the feedback controls of each answer.
   */
  show(saved, { readOnly = false } = {}) {
    this.reset();
    this.saved = readOnly ? null : { id: saved.id, collection: saved.collection };
    const turns = saved.turns || [];
    document.body.classList.toggle("has-messages", turns.length > 0);
    for (const stored of turns) {
      this.addUserTurn(stored.question);
      const turn = this.addAssistantTurn();
      const sources = Array.isArray(stored.sources) ? stored.sources : [];
      this.paint(turn, stored.answer, sources);
      this.renderSources(turn, stored.answer, sources, { live: false });
      turn.setAttribute("aria-busy", "false");
      turn.querySelector(".answer").classList.remove("streaming");
      if (!readOnly) this.addFeedback(turn, saved.id, stored.id, stored.feedback);
    }
    this.messages.lastElementChild?.scrollIntoView({ block: "end" });
  }

  addFeedback(turn, conversationId, turnId, feedback) {
    turn.dataset.turnId = turnId;
    turn.append(feedbackControls(conversationPath(conversationId, `/turns/${encodeURIComponent(turnId)}/feedback`), feedback));
  }

  renderSources(turn, text, sources, { live = true } = {}) {
    if (!sources.length) {
      const note = turn.querySelector(".turn-note");
      if (live && this.collectionIsEmpty()) {
        note.classList.add("notice");
        note.textContent = `Nothing has been added to “${this.getCollection()}” yet, so there was nothing to answer from. ${NO_DOCUMENTS_HINT}`;
      } else {
        note.textContent = "No passage matched the question, so this answer cites nothing.";
      }
      return;
    }
    const cited = citedNumbers(text);
    const isCited = (source) => (typeof source.cited === "boolean" ? source.cited : cited.has(source.index));
    const block = element("section", "sources");
    block.setAttribute("aria-label", "Sources");
    block.append(element("h3", "sources-title", "Sources"));
    const list = element("ol", "source-list");
    for (const source of sources) {
      const item = element("li");
      const button = element("button", `source-chip${isCited(source) ? " cited" : ""}`);
      button.type = "button";
      button.dataset.index = String(source.index);
      button.append(element("span", "chip-index", String(source.index)), element("span", "chip-label", describeSource(source)));
      button.addEventListener("click", () => this.sourcePanel.show(source, button));
      item.append(button);
      list.append(item);
    }
    block.append(list);
    turn.append(block);
  }

  /** A notice in place of the conversation, e.g. that an addressed conversation is gone. */
  notice(title, hint) {
    const turn = element("li", "turn assistant");
    const box = element("div", "error-box");
    box.setAttribute("role", "alert");
    box.append(element("strong", "", title));
    if (hint) box.append(element("p", "", hint));
    turn.append(box);
    this.messages.append(turn);
    document.body.classList.add("has-messages");
  }

  showError(turn, error, questionRestored) {
    const box = element("div", "error-box");
    box.setAttribute("role", "alert");
    box.append(element("strong", "", error.message));
    const hint = hintFor(error);
    if (hint) box.append(element("p", "", hint));
    if (questionRestored) box.append(element("p", "muted", "Your question is back in the box below."));
    turn.append(box);
  }
}
