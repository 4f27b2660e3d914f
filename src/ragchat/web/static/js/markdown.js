// Model output → safe DOM: Markdown by marked, sanitised by DOMPurify (the LLM may repeat HTML found in
// documents), then citation markers such as [2] or [1, 3] turned into buttons that open the passage.

import { Marked } from "../vendor/marked.esm.js";
import DOMPurify from "../vendor/purify.es.js";

const markdown = new Marked({ gfm: true, breaks: true });

const PURIFY_OPTIONS = {
  RETURN_DOM_FRAGMENT: true,
  // Nothing that fetches, submits or restyles the page: answers are text, lists, tables and code.
  FORBID_TAGS: ["style", "img", "video", "audio", "picture", "source", "form", "input", "button", "textarea", "select"],
  FORBID_ATTR: ["style", "class", "id"],
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

// [2], [1, 3], [1; 3], [2-4]: the forms the server's citation parser accepts too.
const CITATION = /\[(\d{1,3}(?:\s*[,;\-–]\s*\d{1,3})*)\]/g;

/** The numbers one marker's inside stands for: "1, 3-4" → [1, 3, 4]. */
function markerNumbers(inside) {
  const numbers = [];
  for (const part of inside.split(/\s*[,;]\s*/)) {
    const [low, high = low] = part.split(/\s*[-–]\s*/).map(Number);
    for (let n = low; n <= Math.min(high, low + 50); n += 1) if (!numbers.includes(n)) numbers.push(n);
  }
  return numbers;
}

/** Every number `text` cites, e.g. {2, 3} for "… [2] … [3][2]". */
export function citedNumbers(text) {
  return new Set(Array.from(text.matchAll(CITATION), (match) => markerNumbers(match[1])).flat());
}

/**
 * Render `text` (Markdown) into `target`. `sources` maps citation number → source; markers with a
 * source become buttons (`onCite(source, button)` on click), the others stay plain text.
 */
export function renderAnswer(target, text, sources, onCite) {
  const fragment = DOMPurify.sanitize(markdown.parse(text, { async: false }), PURIFY_OPTIONS);
  linkCitations(fragment, sources, onCite);
  target.replaceChildren(fragment);
}

function linkCitations(root, sources, onCite) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) =>
      node.parentElement?.closest("code, pre, a") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  const textNodes = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (CITATION.test(node.data)) textNodes.push(node);
    CITATION.lastIndex = 0;
  }
  for (const node of textNodes) node.replaceWith(citationFragment(node.data, sources, onCite));
}

function citationFragment(text, sources, onCite) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(CITATION)) {
    fragment.append(text.slice(last, match.index));
    last = match.index + match[0].length;
    const numbers = markerNumbers(match[1]);
    if (!numbers.every((n) => sources.has(n))) {
      fragment.append(match[0]);
      continue;
    }
    // The markers and the punctuation after them stay on one line: no lone "." below a "[2]".
    const group = document.createElement("span");
    group.className = "cite-group";
    for (const n of numbers) group.append(citationButton(sources.get(n), onCite));
    const punctuation = /^[.,;:!?)]+/.exec(text.slice(last));
    if (punctuation) {
      group.append(punctuation[0]);
      last += punctuation[0].length;
    }
    fragment.append(group);
  }
  fragment.append(text.slice(last));
  return fragment;
}

function citationButton(source, onCite) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "cite";
  button.textContent = String(source.index);
  button.dataset.index = String(source.index);
  button.setAttribute("aria-label", `Source ${source.index}: ${describeSource(source)}`);
  button.title = describeSource(source);
  button.addEventListener("click", () => onCite(source, button));
  return button;
}

/** "guide.md — Setup > Installing": the document name and, when known, the heading. */
export function describeSource(source) {
  return source.heading ? `${source.document} — ${source.heading}` : String(source.document);
}
