// The event stream of a signed-in tab: the bell (a chime made in the page and a browser
// notification), motion, new clips, and the end of the session (why it ended). One
// stream a tab, kept across pages; every event is also pushed on window.doorbellEvents.

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

function notify(toast, title, body) {
  toast(`${title}: ${body}`);
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification(title, { body, tag: "doorbell" });
  }
}

export function listenForEvents({ toast, onSessionEnded }) {
  if ("Notification" in window && Notification.permission === "default") {
    document.addEventListener("click", () => Notification.requestPermission(), { once: true });
  }
  const source = new EventSource("/api/events");
  source.addEventListener("bell", (event) => {
    window.doorbellEvents.push({ kind: "bell", data: JSON.parse(event.data) });
    chime();
    notify(toast, "Doorbell", "someone is at the door");
  });
  source.addEventListener("motion", (event) => {
    const data = JSON.parse(event.data);
    window.doorbellEvents.push({ kind: "motion", data });
    if (data.active) notify(toast, "Motion", "movement at the door");
  });
  source.addEventListener("clip", (event) => {
    const data = JSON.parse(event.data);
    window.doorbellEvents.push({ kind: "clip", data });
    toast(`New ${data.trigger} clip`);
  });
  source.addEventListener("session", (event) => {
    const data = JSON.parse(event.data);
    window.doorbellEvents.push({ kind: "session", data });
    onSessionEnded(data.ended);
  });
  return source;
}

