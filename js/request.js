// The request/answer handshake of widgets/base.py, view side: a request sets the changed traits,
// a command (or "") and a new request number in one message; the kernel answers every request
// and counts its answers in `revision`. The view paints an answer only when the kernel has
// answered the last request this view sent, so a stale answer never overwrites a newer edit.

export function createRequests(model, root) {
  let sent = model.get("request");

  function latest() {
    return model.get("answered") >= sent;
  }

  return {
    /** Ask the kernel to act on `changes` (and `command`); the view shows itself busy until answered. */
    send(changes = {}, command = "") {
      for (const [key, value] of Object.entries(changes)) model.set(key, value);
      sent = Math.max(sent, model.get("request")) + 1;
      model.set("command", command);
      model.set("request", sent);
      root.classList.add("cbw-busy");
      model.save_changes();
    },
    /** Call `paint` for each answer (to this view or to Python) that is not stale. */
    onAnswer(paint) {
      model.on("change:revision", () => {
        if (!latest()) return; // a newer request of this view's is on its way
        root.classList.remove("cbw-busy");
        paint();
      });
    },
  };
}
