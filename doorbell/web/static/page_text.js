// What a page says when something goes wrong: an element (a form's error line) shown with
// a sentence, and the plain sentence for an error that reached the page.

// Put `text` in `element` and show it.
export function show(element, text) {
  element.textContent = text;
  element.hidden = false;
}

// The sentence for `err` (a vault.js or owner.js error, fetch's own TypeError, anything
// else with a message).
export function failure(err) {
  if (err && err.name === "WrongPassphrase") return "Wrong passphrase.";
  // fetch's own TypeError ("Failed to fetch"): no answer at all
  if (err instanceof TypeError) return "The doorbell cannot be reached: try again once it is back.";
  return (err && err.message) || String(err);
}
