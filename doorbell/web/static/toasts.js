// Notices in the corner of the page, each in a toast of its own, so none replaces
// another: a ring, a motion, a new clip. The ring's toast is kept on top and stays until
// the owner closes it or RING_SECONDS pass (a newer ring takes its place); the others go
// after NOTICE_SECONDS, and at most MAX_NOTICES of them are shown (the oldest goes
// first, never the ring).
//
//   toast("Someone rang at 14:02", { kind: "ring" });
//   toast("New motion clip");                      // kind "notice"
//
// The container is #toast (base.html): shown while it holds a toast.

export const RING_SECONDS = 120;
export const NOTICE_SECONDS = 8;
export const MAX_NOTICES = 3;

export function toast(text, { kind = "notice", seconds = null } = {}) {
  const box = document.getElementById("toast");
  if (!box) return null;
  const item = document.createElement("p");
  item.className = `toast ${kind}`;
  const words = document.createElement("span");
  words.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  item.append(words, close);
  const remove = () => {
    clearTimeout(item.timer);
    item.remove();
    if (!box.querySelector(".toast")) box.hidden = true;
  };
  close.addEventListener("click", remove);
  if (kind === "ring") {
    for (const older of box.querySelectorAll(".toast.ring")) older.remove();
    item.setAttribute("role", "alert");
    box.prepend(item);
  } else {
    box.append(item);
    const notices = [...box.querySelectorAll(".toast:not(.ring)")];
    for (const older of notices.slice(0, Math.max(0, notices.length - MAX_NOTICES))) {
      clearTimeout(older.timer);
      older.remove();
    }
  }
  const lasting = seconds ?? (kind === "ring" ? RING_SECONDS : NOTICE_SECONDS);
  item.timer = setTimeout(remove, lasting * 1000);
  box.hidden = false;
  return item;
}

