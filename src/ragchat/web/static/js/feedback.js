// Thumbs up or down, and an optional comment, under a saved answer
// (PUT /api/conversations/{id}/turns/{turn_id}/feedback); shows what is saved.

import { sendJSON } from "./api.js";
import { element } from "./widgets.js";

const SVG = "http://www.w3.org/2000/svg";
// A thumb pointing up; the "down" button shows it turned over.
const THUMB =
  "M7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3m0 11V11m0 11h10.3a2 2 0 0 0 2-1.7l1.4-9A2 2 0 0 0 18.7 9H14V5a3 3 0 0 0-3-3l-4 9";
const RATINGS = {
  up: { name: "Good answer", saved: "You marked this answer as good." },
  down: { name: "Bad answer", saved: "You marked this answer as bad." },
};
const MAX_COMMENT = 2000;

function thumbIcon(rating) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", `thumb ${rating}`);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", THUMB);
  svg.append(path);
  return svg;
}

/**
 * The feedback controls of one answer: `path` is its feedback URL, `saved` the feedback the server has
 * (null or `{rating, comment}`). A thumb saves the rating at once and opens the comment box.
 */
export function feedbackControls(path, saved) {
  const root = element("div", "feedback");
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", "Feedback on this answer");
  const state = { rating: saved?.rating || null, comment: saved?.comment || null };

  const buttons = {};
  const row = element("div", "feedback-row");
  for (const rating of ["up", "down"]) {
    const button = element("button", `ghost small feedback-${rating}`);
    button.type = "button";
    button.setAttribute("aria-label", RATINGS[rating].name);
    button.title = RATINGS[rating].name;
    button.append(thumbIcon(rating));
    button.addEventListener("click", () => rate(rating));
    buttons[rating] = button;
    row.append(button);
  }
  const status = element("p", "feedback-status muted");
  status.setAttribute("role", "status");
  const editComment = element("button", "ghost small feedback-edit", "Comment");
  editComment.type = "button";
  row.append(editComment, status);

  const form = element("form", "feedback-form");
  form.hidden = true;
  const id = `feedback-${Math.random().toString(36).slice(2)}`;
  const label = element("label", "sr-only", "Comment on this answer (optional)");
  label.htmlFor = id;
  const box = element("textarea");
  box.id = id;
  box.rows = 2;
  box.maxLength = MAX_COMMENT;
  box.placeholder = "What was right or wrong? (optional)";
  const save = element("button", "small", "Save comment");
  save.type = "submit";
  const cancel = element("button", "ghost small", "Cancel");
  cancel.type = "button";
  const error = element("p", "form-error");
  error.setAttribute("role", "alert");
  const actions = element("div", "row");
  actions.append(save, cancel);
  form.append(label, box, actions, error);
  root.append(row, form);

  const render = () => {
    for (const [rating, button] of Object.entries(buttons)) {
      button.setAttribute("aria-pressed", String(state.rating === rating));
    }
    root.dataset.rating = state.rating || "";
    editComment.hidden = !state.rating || !form.hidden;
    editComment.textContent = state.comment ? "Edit comment" : "Add a comment";
    status.replaceChildren();
    if (state.rating) {
      status.append(RATINGS[state.rating].saved);
      if (state.comment) status.append(" ", element("q", "feedback-comment", state.comment));
    }
  };

  const openForm = () => {
    box.value = state.comment || "";
    form.hidden = false;
    error.textContent = "";
    render();
    box.focus();
  };
  const closeForm = () => {
    form.hidden = true;
    render();
  };

  async function put(rating, comment) {
    const answer = await sendJSON("PUT", path, { rating, comment });
    const feedback = answer?.feedback || { rating, comment };
    state.rating = feedback.rating;
    state.comment = feedback.comment || null;
  }

  async function rate(rating) {
    error.textContent = "";
    if (state.rating !== rating) {
      for (const button of Object.values(buttons)) button.disabled = true;
      try {
        await put(rating, state.comment);
      } catch (failure) {
        status.textContent = `Could not save your rating: ${failure.message}`;
        return;
      } finally {
        for (const button of Object.values(buttons)) button.disabled = false;
      }
    }
    openForm();
  }

  editComment.addEventListener("click", openForm);
  cancel.addEventListener("click", closeForm);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeForm();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    error.textContent = "";
    try {
      await put(state.rating, box.value.trim() || null);
      closeForm();
    } catch (failure) {
      error.textContent = `Could not save your comment: ${failure.message}`;
    } finally {
      save.disabled = false;
    }
  });
  render();
  return root;
}
