// The request/answer handshake of widgets/base.py, view side: a request sets the changed traits,
// a command (or "") and a new request number in one message; the kernel answers every request
// and counts its answers in `revision`. The view paints an answer only when the kernel has
// answered the last request this view sent, so a stale answer never overwrites a newer edit.
// A request that stays unanswered is said so (the kernel may be busy or gone), never left silent.

export const ANSWER_WAIT_MS = 10000;

const SLOW =
  `No answer from the kernel for ${ANSWER_WAIT_MS / 1000} s: it may be busy with another cell, or stopped. ` +
  "This view updates when the answer comes; if the kernel was restarted, run the cell again.";

export function createRequests(model, frame) {
  const { root, connection } = frame;
  let sent = model.get("request");
  let timer = null;

  function latest() {
    return model.get("answered") >= sent;
  }

  return {
    /** Ask the kernel to act on `changes` (and `command`); the view shows itself busy until answered. */
    send(changes = {}, command = "") {
      if (connection.gone()) {
        connection.say(""); // the disconnected note is shown; nothing can be sent
        return false;
      }
      for (const [key, value] of Object.entries(changes)) model.set(key, value);
      sent = Math.max(sent, model.get("request")) + 1;
      model.set("command", command);
      model.set("request", sent);
      root.classList.add("cbw-busy");
      model.save_changes();
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (!latest()) connection.say(SLOW);
      }, ANSWER_WAIT_MS);
      return true;
    },
    /** Call `paint` for each answer (to this view or to Python) that is not stale. */
    onAnswer(paint) {
      model.on("change:revision", () => {
        if (!latest()) return; // a newer request of this view's is on its way
        clearTimeout(timer);
        connection.say("");
        root.classList.remove("cbw-busy");
        paint();
      });
    },
  };
}
