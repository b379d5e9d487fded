// An exception raised in a Python callback arrives as text in the widget's `error` trait: show it.

export function showError(box, text) {
  box.className = "cbw-error";
  box.textContent = text || "";
  box.hidden = !text;
}
