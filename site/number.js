// Number mode view (docs/protocol.md, "Number mode"): the number read so far, each character's reading,
// and each character's box drawn over the canvas with its digit. The page (app.js) owns the drawing,
// the transport and the mode switch; this module only renders a number-mode reply.

export const NUMBER_WIDTH = 840; // logical width of the wide canvas, CSS px (three single-digit canvases)

const pct = (p) => `${Math.round(p * 100)}%`;

/** Show a number-mode reply. `size` is the canvas's logical {width, height}, the reply's bbox units. */
export function showNumber(msg, els, size) {
  const digits = Array.isArray(msg.digits) ? msg.digits : [];
  const read = digits.map((d) => (Number.isInteger(d.digit) ? String(d.digit) : "?")).join("");
  els.number.textContent = read || "—";
  els.number.dataset.number = typeof msg.number === "string" ? msg.number : "";
  els.number.classList.toggle("empty", read === "");
  els.readings.replaceChildren(
    ...digits.map((d, i) => {
      const li = document.createElement("li");
      li.dataset.digit = Number.isInteger(d.digit) ? String(d.digit) : "";
      li.textContent = d.status === "ok" ? `${d.digit} · ${pct(d.confidence)} sure` : "not a digit";
      li.setAttribute("aria-label", `Character ${i + 1}: ${li.textContent}`);
      return li;
    }),
  );
  els.boxes.replaceChildren(
    ...digits.map((d) => {
      const [x0, y0, x1, y1] = d.bbox;
      const box = document.createElement("div");
      box.className = d.status === "ok" ? "box" : "box odd";
      box.dataset.digit = Number.isInteger(d.digit) ? String(d.digit) : "";
      box.style.left = `${(100 * x0) / size.width}%`;
      box.style.top = `${(100 * y0) / size.height}%`;
      box.style.width = `${(100 * (x1 - x0)) / size.width}%`;
      box.style.height = `${(100 * (y1 - y0)) / size.height}%`;
      const label = document.createElement("span");
      label.textContent = Number.isInteger(d.digit) ? String(d.digit) : "?";
      box.append(label);
      return box;
    }),
  );
}

/** Back to the empty view. */
export function clearNumber(els) {
  els.number.textContent = "—";
  els.number.dataset.number = "";
  els.number.classList.add("empty");
  els.readings.replaceChildren();
  els.boxes.replaceChildren();
}
