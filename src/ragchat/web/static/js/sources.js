// The panel beside the answer that shows one cited passage: document, heading, snippet.

/** Controls the `#source-panel` element; `show(source, opener)` opens it, Escape or × closes it. */
export class SourcePanel {
  constructor(panel) {
    this.panel = panel;
    this.title = panel.querySelector("#source-title");
    this.documentName = panel.querySelector(".source-document");
    this.heading = panel.querySelector(".source-heading");
    this.snippet = panel.querySelector(".source-snippet");
    this.meta = panel.querySelector(".source-meta");
    this.opener = null;
    panel.querySelector(".source-close").addEventListener("click", () => this.close());
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close();
    });
  }

  show(source, opener) {
    this.opener?.classList.remove("active");
    this.opener = opener;
    opener?.classList.add("active");
    this.title.textContent = `Source ${source.index}`;
    this.documentName.textContent = source.document;
    this.heading.textContent = source.heading || "";
    this.heading.hidden = !source.heading;
    this.snippet.textContent = source.snippet;
    const details = [];
    if (typeof source.score === "number") details.push(`relevance ${source.score.toFixed(3)}`);
    if (Number.isInteger(source.start) && Number.isInteger(source.end)) {
      details.push(`characters ${source.start.toLocaleString()}–${source.end.toLocaleString()}`);
    }
    this.meta.textContent = details.join(" · ");
    this.panel.hidden = false;
    document.body.classList.add("source-open");
    this.title.focus();
  }

  close() {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    document.body.classList.remove("source-open");
    this.opener?.classList.remove("active");
    this.opener?.focus();
    this.opener = null;
  }
}
