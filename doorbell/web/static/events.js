// The event stream of a signed-in tab: the bell (a chime made in the page, its own toast
// and browser notification), motion, clips starting and ending, and the end of the
// session (why it ended). One stream a tab, kept across pages; every event is also
// pushed on window.doorbellEvents.
//
//   const stream = listenForEvents({
//     toast, onRecording, onRecordings, onClip, onConnection, onSessionEnded });
//
// onRecordings(ids) comes first on every (re)connection: the clips being recorded then.
//   stream.close();
//
// A ring and a motion never replace each other: separate toasts, and separate browser
// notification tags (RING_TAG, MOTION_TAG). The ring wins: within RING_HOLD_SECONDS of a
// ring a motion raises no browser notification (the same visit; the ring's stays), only
// its toast. The stream tells the truth about itself: onConnection(false) while the
// doorbell cannot be reached (the browser tries again), and when the doorbell refuses
// the stream it asks why: 401 is the session's end (onSessionEnded("locked")), anything
// else is tried again later (429: too many tabs, after 10 s).
//
// ringNotice(data, toast) is what a ring does on any page, locked ones too (rings.js):
// the chime, the toast "Someone rang at 14:02" and the browser notification.

export const RING_TAG = "doorbell-ring";
export const MOTION_TAG = "doorbell-motion";
export const RING_HOLD_SECONDS = 60;
const RETRY_MS = { 429: 10_000 };
const RETRY_DEFAULT_MS = 3_000;

function chime() {
  // Two tones made in the page: no sound file is fetched from anywhere.
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return;
  const audio = new Context();
  [[659.25, 0], [523.25, 0.35]].forEach(([frequency, start]) => {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = frequency;
    gain.gain.setValueAtTime(0.3, audio.currentTime + start);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + start + 0.6);
    tone.connect(gain).connect(audio.destination);
    tone.start(audio.currentTime + start);
    tone.stop(audio.currentTime + start + 0.6);
  });
}

// "14:02" for wall-clock seconds, in this browser's time zone.
export function clockTime(at) {
  return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

// A ring (the stream's `bell` data, {at}): the chime, its toast and its notification.
export function ringNotice(data, toast) {
  chime();
  const words = `Someone rang at ${clockTime(data.at)}`;
  toast(words, { kind: "ring" });
  notifyBrowser("Doorbell", { body: words, tag: RING_TAG, renotify: true, requireInteraction: true });
}

function notifyBrowser(title, options) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    new Notification(title, options);
  } catch (err) {
    // Chrome on Android shows notifications from a service worker only: the toast stays.
  }
}

class EventStream {
  constructor(handlers) {
    this.handlers = handlers;
    this.closed = false;
    this.lastRing = -Infinity; // Date.now() of the last ring
    this.retry = null;
    this.open();
  }

  open() {
    const source = new EventSource("/api/events");
    this.source = source;
    const on = (name, handle) => source.addEventListener(name, (event) => {
      const data = JSON.parse(event.data);
      window.doorbellEvents.push({ kind: name, data });
      handle(data);
    });
    on("bell", (data) => this.ring(data));
    on("motion", (data) => this.motion(data));
    on("recording", (data) => this.handlers.onRecording(data));
    on("recordings", (data) => this.handlers.onRecordings(data.ids));
    on("clip", (data) => {
      this.handlers.toast(`New ${data.trigger} clip`, { kind: "clip" });
      this.handlers.onClip(data);
    });
    on("session", (data) => {
      this.close();
      this.handlers.onSessionEnded(data.ended);
    });
    source.addEventListener("open", () => this.handlers.onConnection(true));
    source.addEventListener("error", () => {
      if (this.closed || source !== this.source) return;
      this.handlers.onConnection(false);
      if (source.readyState === EventSource.CLOSED) this.why(); // refused, not unreachable
    });
  }

  ring(data) {
    this.lastRing = Date.now();
    ringNotice(data, this.handlers.toast);
  }

  motion(data) {
    if (!data.active) return;
    const words = `Motion at the door at ${clockTime(data.at)}`;
    this.handlers.toast(words, { kind: "motion" });
    if (Date.now() - this.lastRing < RING_HOLD_SECONDS * 1000) return; // the ring's stays
    notifyBrowser("Motion", { body: words, tag: MOTION_TAG });
  }

  // The doorbell answered but gave no stream: ask it why (one request, dropped at once;
  // the event stream's route does not count as use of the session).
  async why() {
    const abort = new AbortController();
    let status = 0;
    try {
      status = (await fetch("/api/events", { signal: abort.signal, credentials: "same-origin" })).status;
    } catch (err) {
      status = 0; // unreachable again
    } finally {
      abort.abort();
    }
    if (this.closed) return;
    if (status === 401) {
      this.close();
      this.handlers.onSessionEnded("locked");
      return;
    }
    this.retry = setTimeout(() => { if (!this.closed) this.open(); }, RETRY_MS[status] || RETRY_DEFAULT_MS);
  }

  close() {
    this.closed = true;
    clearTimeout(this.retry);
    this.source.close();
  }
}

export function listenForEvents(handlers) {
  if ("Notification" in window && Notification.permission === "default") {
    document.addEventListener("click", () => Notification.requestPermission(), { once: true });
  }
  return new EventStream(handlers);
}
