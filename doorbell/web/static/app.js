// The doorbell's pages: a little plain JavaScript, no libraries, nothing fetched from elsewhere.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function call(method, url, body) {
  const options = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  if (response.status === 401) {
    window.location.assign("/unlock");
  }
  return response;
}

function show(element, text) {
  element.textContent = text;
  element.hidden = false;
}

function toast(text) {
  const box = document.getElementById("toast");
  show(box, text);
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

// --- unlock and first run ---------------------------------------------------------------

function unlockPage() {
  const form = document.getElementById("unlock-form");
  const error = document.getElementById("unlock-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = form.querySelector("button");
    button.disabled = true;
    button.textContent = "Unlocking…";
    const response = await fetch("/api/unlock", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ passphrase: document.getElementById("passphrase").value }),
    });
    button.disabled = false;
    button.textContent = "Unlock";
    if (response.ok) {
      window.location.assign("/");
    } else {
      show(error, (await response.text()).trim());
    }
  });
}

function strength(passphrase) {
  const words = passphrase.trim().split(/\s+/).filter(Boolean).length;
  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9\s]/].filter((re) => re.test(passphrase)).length;
  if (passphrase.length < 8) return "Too short: at least 8 characters.";
  if (words >= 4 || passphrase.length >= 20) return "Strong.";
  if (passphrase.length >= 12 && kinds >= 2) return "Good.";
  return "Weak: four or more random words are easier to remember and harder to guess.";
}

function setupPage() {
  const form = document.getElementById("setup-form");
  const first = document.getElementById("new-passphrase");
  const hint = document.getElementById("strength");
  const error = document.getElementById("setup-error");
  first.addEventListener("input", () => { hint.textContent = strength(first.value); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const confirm = document.getElementById("confirm-passphrase").value;
    if (confirm !== first.value) {
      show(error, "The two passphrases differ.");
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    button.textContent = "Making your key…";
    const response = await fetch("/api/setup", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ passphrase: first.value, confirm }),
    });
    button.disabled = false;
    button.textContent = "Create my key";
    if (!response.ok) {
      show(error, (await response.text()).trim());
      return;
    }
    const result = await response.json();
    document.getElementById("recipient").textContent = result.recipient;
    document.getElementById("identity-file").textContent = result.identity_file;
    document.getElementById("setup-step").hidden = true;
    document.getElementById("setup-done").hidden = false;
  });
}

// --- clips ------------------------------------------------------------------------------

function clipActions() {
  for (const holder of document.querySelectorAll("[data-clip]")) {
    const id = holder.dataset.clip;
    const keep = holder.querySelector("button.keep");
    const remove = holder.querySelector("button.delete");
    if (keep) {
      keep.addEventListener("click", async () => {
        const wanted = keep.dataset.keep !== "true";
        const response = await call("POST", `/api/clips/${id}/keep`, { keep: wanted });
        if (response.ok) {
          keep.dataset.keep = String(wanted);
          keep.textContent = wanted ? "Kept" : "Keep";
        }
      });
    }
    if (remove) {
      remove.addEventListener("click", async () => {
        if (!window.confirm("Delete this clip for good? It cannot be recovered.")) return;
        const response = await call("DELETE", `/api/clips/${id}`);
        if (response.ok) {
          if (document.body.dataset.page === "player") window.location.assign("/");
          else holder.remove();
        }
      });
    }
  }
}

// --- notifications ----------------------------------------------------------------------

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

function notify(title, body) {
  toast(`${title}: ${body}`);
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification(title, { body, tag: "doorbell" });
  }
}

function listen() {
  if ("Notification" in window && Notification.permission === "default") {
    document.addEventListener("click", () => Notification.requestPermission(), { once: true });
  }
  const source = new EventSource("/api/events");
  window.doorbellEvents = [];
  source.addEventListener("bell", (event) => {
    window.doorbellEvents.push({ kind: "bell", data: JSON.parse(event.data) });
    chime();
    notify("Doorbell", "someone is at the door");
  });
  source.addEventListener("motion", (event) => {
    const data = JSON.parse(event.data);
    window.doorbellEvents.push({ kind: "motion", data });
    if (data.active) notify("Motion", "movement at the door");
  });
  source.addEventListener("clip", (event) => {
    const data = JSON.parse(event.data);
    window.doorbellEvents.push({ kind: "clip", data });
    toast(`New ${data.trigger} clip`);
  });
}

// --- the header -------------------------------------------------------------------------

function header() {
  const lock = document.getElementById("lock");
  if (lock) {
    lock.addEventListener("click", async () => {
      await call("POST", "/api/lock");
      window.location.assign("/unlock");
    });
  }
  const bell = document.getElementById("press-bell");
  if (bell) {
    bell.addEventListener("click", () => call("POST", "/api/bell"));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "unlock") unlockPage();
  if (page === "setup") setupPage();
  if (document.body.dataset.unlocked === "yes") {
    header();
    clipActions();
    listen();
  }
});
