// Rings on a locked page. An owner, unlocked, may let this browser hear rings while it
// is locked ("Ring this browser while locked" on the clips page): the doorbell gives it a
// ring pass, an HttpOnly cookie the page never sees (web/ring_passes.py). Once the
// session ends, or on the unlock page, the page listens to GET /api/rings, which tells
// only that someone rang and when: the same chime, toast and notification as an unlocked
// page (events.js's ringNotice), and nothing else: no picture, no clip.
//
//   choiceBox(checkbox, csrf, toast);     // the clips page: the owner's yes or no
//   whileUnlocked(csrf);                  // a page unlocked: its own event stream rings;
//                                         // a pass the doorbell lost is made again
//   whileLocked({ toast, reason });       // the session ended (reason), or /unlock
//
// Only the choice (yes or nothing) is kept in localStorage. The page says what is true
// in every .rings-here block (the locked overlay, the unlock page): rings still reach
// this browser, or not connected, or why they stopped, with a "Stop rings here" button.
import { ringNotice } from "/static/events.js";

const CHOICE = "doorbell.ringsHere"; // localStorage: "yes" while the owner wants rings here
const RETRY_MS = { 429: 10_000 };
const RETRY_DEFAULT_MS = 3_000;

// Why rings stopped (the stream's `rings` event, or the session's end), in words.
const STOPPED = {
  "turned off": "Rings no longer reach this browser: they were turned off.",
  replaced: "Rings no longer reach this browser: another browser was allowed in its place (8 at most).",
  expired: "Rings stopped: this browser was allowed 30 days ago. Unlock to let them reach it again.",
  removed: "Rings stopped: you were removed as an owner of this doorbell.",
  "signed out everywhere": "Rings stopped: you signed out everywhere.",
  shutdown: "The doorbell is stopping: unlock when it is back to let rings reach this browser again.",
};
const NO_PASS = "The doorbell restarted (or this browser's ring pass ended): unlock to let rings reach this browser again.";
const LISTENING = "Rings still reach this browser.";
const UNREACHABLE = "Not connected to the doorbell: rings will not show here until it is back. Trying again…";
const FORGOTTEN = new Set(["turned off", "removed", "signed out everywhere"]); // the choice goes too
const TAKES_PASS = new Set(["removed", "signed out everywhere", "shutdown"]); // a session's end that ends passes

let stream = null;

export function chosen() {
  return localStorage.getItem(CHOICE) === "yes";
}

function choose(yes) {
  if (yes) localStorage.setItem(CHOICE, "yes");
  else localStorage.removeItem(CHOICE);
}

async function allow(csrf) {
  const response = await fetch("/api/rings/pass", {
    method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin",
  });
  if (!response.ok) throw new Error((await response.text()).trim() || `refused (${response.status})`);
  choose(true);
}

// This browser hears no more rings while locked. A pass already gone (401) is as good.
export async function stop() {
  choose(false);
  const response = await fetch("/api/rings/pass", { method: "DELETE", credentials: "same-origin" });
  if (!response.ok && response.status !== 401) {
    throw new Error((await response.text()).trim() || `refused (${response.status})`);
  }
}

// --- unlocked ------------------------------------------------------------------------------

export function choiceBox(box, csrf, toast) {
  if (!box) return;
  box.checked = chosen();
  box.addEventListener("change", async () => {
    box.disabled = true;
    try {
      if (box.checked) {
        if ("Notification" in window && Notification.permission === "default") {
          Notification.requestPermission(); // asked while the owner's click counts
        }
        await allow(csrf());
        toast("Rings will reach this browser while it is locked.");
      } else {
        await stop();
        toast("Rings will no longer reach this browser while it is locked.");
      }
    } catch (err) {
      box.checked = chosen();
      toast(`Could not change it: ${err.message}`);
    } finally {
      box.disabled = false;
    }
  });
}

let renewed = false;

export async function whileUnlocked(csrf) {
  if (stream) stream.close(); // the unlocked page's own event stream rings now
  stream = null;
  if (renewed || !chosen()) return;
  renewed = true; // once a page load: a pass the doorbell lost (a restart) is made again
  const state = await fetch("/api/rings/pass", { credentials: "same-origin" });
  if (state.status === 401) await allow(csrf).catch(() => { renewed = false; });
}

// --- locked --------------------------------------------------------------------------------

function say(text, listening) {
  for (const block of document.querySelectorAll(".rings-here")) {
    block.querySelector(".rings-said").textContent = text;
    block.querySelector(".stop-rings").hidden = !listening;
    block.hidden = false;
    block.dataset.state = listening ? "listening" : "stopped";
  }
}

function stopButtons() {
  for (const button of document.querySelectorAll(".stop-rings")) {
    if (button.dataset.ready) continue;
    button.dataset.ready = "yes";
    button.addEventListener("click", async () => {
      if (stream) stream.close();
      stream = null;
      try {
        await stop();
        say(STOPPED["turned off"], false);
      } catch (err) {
        say(`Could not stop rings here: ${err.message}`, true);
      }
    });
  }
}

class RingStream {
  constructor(toast) {
    this.toast = toast;
    this.closed = false;
    this.retry = null;
    this.lastEnd = null;
    this.open();
  }

  open() {
    const source = new EventSource("/api/rings");
    this.source = source;
    source.addEventListener("open", () => say(LISTENING, true));
    source.addEventListener("bell", (event) => {
      const data = JSON.parse(event.data);
      if (window.doorbellEvents) window.doorbellEvents.push({ kind: "bell", data, locked: true });
      ringNotice(data, this.toast);
    });
    source.addEventListener("rings", (event) => {
      const reason = JSON.parse(event.data).ended;
      source.close();
      if (reason === "replaced" && this.lastEnd !== "replaced") { // this browser again, elsewhere
        this.lastEnd = reason;
        this.open();
        return;
      }
      this.ended(reason);
    });
    source.addEventListener("error", () => {
      if (this.closed || source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) this.why(); // refused, not unreachable
      else say(UNREACHABLE, true);
    });
  }

  ended(reason) {
    this.close();
    if (FORGOTTEN.has(reason)) choose(false);
    say(STOPPED[reason] || NO_PASS, false);
  }

  // The doorbell answered but gave no stream: ask it why (a short answer, no stream).
  async why() {
    let status = 0;
    try {
      status = (await fetch("/api/rings/pass", { credentials: "same-origin" })).status;
    } catch (err) {
      status = 0; // unreachable again
    }
    if (this.closed) return;
    if (status === 401) {
      this.ended(this.lastEnd === "replaced" ? "replaced" : null);
      return;
    }
    say(UNREACHABLE, true);
    this.retry = setTimeout(() => { if (!this.closed) this.open(); }, RETRY_MS[status] || RETRY_DEFAULT_MS);
  }

  close() {
    this.closed = true;
    clearTimeout(this.retry);
    this.source.close();
  }
}

// The page is locked (the session ended for `reason`, or the unlock page): listen for
// rings if the owner allowed them here. A session ended by removal, sign-out everywhere
// or shutdown took the pass with it: the page says so without asking.
export function whileLocked({ toast, reason = null }) {
  renewed = false;
  if (!chosen() || stream) return;
  stopButtons();
  if (TAKES_PASS.has(reason)) {
    if (FORGOTTEN.has(reason)) choose(false);
    say(STOPPED[reason], false);
    return;
  }
  stream = new RingStream(toast);
}
