// Small shared pieces of the page: a <details> menu that closes like a menu, a <dialog> with a close
// button, a two-click confirm button, element and date helpers.

/** Close the <details> `menu` on a click outside it or on Escape (focus goes back to its summary). */
export function dismissable(menu) {
  document.addEventListener("click", (event) => {
    if (menu.open && !menu.contains(event.target)) menu.open = false;
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
}

/** Wire the `.dialog-close` button of `dialog`; `onClose()` runs whenever it closes (button or Escape). */
export function closableDialog(dialog, onClose) {
  dialog.querySelector(".dialog-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", onClose);
}

/** A date-time from the API as local text, or `fallback` when there is none. */
export function formatTime(value, fallback) {
  if (!value) return fallback;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** `document.createElement(tag)` with a class and text. */
export function element(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/**
 * A button that acts only on a second click within a few seconds (the first arms it), like the
 * documents' Delete. `labels` = {idle, armed, idleName, armedName}; `action()` runs on the second click.
 */
export function confirmButton(labels, action, className = "ghost small") {
  const button = element("button", className);
  button.type = "button";
  let timer = null;
  const disarm = () => {
    button.classList.remove("armed");
    button.textContent = labels.idle;
    button.setAttribute("aria-label", labels.idleName);
  };
  disarm();
  button.addEventListener("click", async () => {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = labels.armed;
      button.setAttribute("aria-label", labels.armedName);
      timer = setTimeout(disarm, 4000);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      disarm();
    }
  });
  return button;
}
