// The doorbell's pages: plain JavaScript modules, nothing fetched from elsewhere.
// Links between the owner's pages are followed inside this page (the new page's HTML
// replaces the old), so the owner's key, held only in this tab's memory, stays open
// from page to page; a reload or a new tab asks for the passphrase again.
// The key comes from signing in (sign_in.js: pairing, /unlock, the locked overlay's form).
import * as owner from "/static/owner.js";
import { listenForEvents } from "/static/events.js";
import { toast } from "/static/toasts.js";
import * as clipList from "/static/clip_list.js";
import * as rings from "/static/rings.js";
import { failure, show } from "/static/page_text.js";
import { setupPage, tabUnlockForm, unlockPage } from "/static/sign_in.js";
import { showThumbnail } from "/static/thumbnail.js";

const state = { keyholder: null, events: null, cleanups: [] };
window.doorbellEvents = [];

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);

async function call(method, url, body) {
  const options = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  if (response.status === 401) sessionEnded("locked");
  return response;
}

// --- moving between pages without losing the key -------------------------------------------

async function navigate(url, push = true) {
  delete document.body.dataset.thumbnails; // set again once the new page's are shown
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  const html = await response.text();
  const doc = new DOMParser().parseFromString(html, "text/html");
  teardown();
  document.title = doc.title;
  document.querySelector('meta[name="csrf-token"]').content =
    doc.querySelector('meta[name="csrf-token"]').content;
  for (const key of Object.keys(document.body.dataset)) delete document.body.dataset[key];
  for (const [key, value] of Object.entries(doc.body.dataset)) document.body.dataset[key] = value;
  document.body.replaceChildren(...doc.body.childNodes);
  if (push) history.pushState({}, "", response.url);
  else if (response.url !== location.href) history.replaceState({}, "", response.url);
  window.scrollTo(0, 0);
  await start();
}

function ownLink(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
      event.shiftKey || event.altKey) return null;
  const link = event.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return null;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/vendor/")) return null;
  if (url.hash && url.pathname === location.pathname) return null;
  return url;
}

document.addEventListener("click", (event) => {
  const url = ownLink(event);
  if (!url || !state.keyholder) return; // without a key in memory, ordinary navigation is as good
  event.preventDefault();
  navigate(url.href).catch(() => location.assign(url.href));
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.method !== "get" || !state.keyholder) return;
  event.preventDefault();
  const url = new URL(form.action, location.href);
  url.search = new URLSearchParams(new FormData(form)).toString();
  navigate(url.href);
});

window.addEventListener("popstate", () => { if (state.keyholder) navigate(location.href, false); });

function teardown() {
  for (const cleanup of state.cleanups.splice(0)) cleanup();
  for (const img of document.querySelectorAll("img")) {
    img.removeAttribute("src");
    img.alt = ""; // no broken picture with words in its place behind the overlay
    img.hidden = true;
  }
}

// --- the key of this tab ---------------------------------------------------------------------

function lockedOverlay(title, why) {
  const overlay = $("tab-locked");
  if (!overlay) return;
  $("tab-locked-title").textContent = title;
  $("tab-locked-why").textContent = why;
  overlay.hidden = false;
  $("tab-passphrase").value = "";
  $("tab-passphrase").focus();
}

const ENDED = {
  idle: "Locked after a while without use.",
  locked: "This session was locked.",
  expired: "This session reached its time limit.",
  removed: "You were removed as an owner of this doorbell.",
  "signed out everywhere": "You signed out everywhere.",
  shutdown: "The doorbell stopped (it may be restarting).",
};

// The session ended (locked, idle, removed…): the page says so and claims nothing it no
// longer knows: the key is forgotten, the pictures it opened are taken down, the live
// view and the cards of clips being recorded go, and the unlock form is offered.
function sessionEnded(reason) {
  if (state.keyholder) state.keyholder.forget();
  state.keyholder = null;
  document.body.dataset.session = "ended";
  document.body.dataset.unlocked = "no";
  if (state.events) state.events.close();
  state.events = null;
  teardown();
  clipList.forgetRecordings();
  connection(true); // nothing to reconnect to: the overlay says what is true
  if (!document.title.startsWith("Locked · ")) document.title = `Locked · ${document.title}`;
  lockedOverlay("Session ended", `${ENDED[reason] || "Your session ended."} Unlock again to go on.`);
  $("tab-locked").dataset.reason = reason;
  rings.whileLocked({ toast, reason }); // if the owner allowed rings here: they go on
}

// The event stream is (true) or is not (false) connected: while it is not, a banner says
// rings will not show here.
function connection(connected) {
  const banner = $("offline");
  if (banner) banner.hidden = connected;
  if (connected) delete document.body.dataset.offline;
  else document.body.dataset.offline = "yes";
}

// The key opened again in this tab (the locked overlay's form): the page it is on, shown
// again with its clips open.
async function tabUnlocked(keyholder) {
  state.keyholder = keyholder;
  $("tab-locked").hidden = true;
  await navigate(location.href, false);
}

// The key opened on /unlock: on to the clips.
async function unlocked(keyholder) {
  state.keyholder = keyholder;
  await navigate("/");
}

// --- the owner's pages -----------------------------------------------------------------------

async function thumbnails(images = document.querySelectorAll("img[data-thumbnail]")) {
  await Promise.all([...images].map(
    (img) => showThumbnail(img, img.dataset.thumbnail, state.keyholder).catch((err) => {
      if (document.body.dataset.session === "ended") return; // taken down, not failed
      img.classList.add("no-picture");
      img.alt = err.name === "NoIdentityMatch"
        ? "recorded before you were an owner: not encrypted to your key"
        : `no picture: ${failure(err)}`;
      img.title = img.alt;
    })));
  document.body.dataset.thumbnails = "shown";
}

async function playerPage() {
  const video = $("video");
  const player = await import("/static/player.js");
  const said = $("player-state");
  const handle = await player.playClip(video, {
    fileUrl: video.dataset.file, indexUrl: video.dataset.index, keyholder: state.keyholder,
    duration: video.dataset.duration ? Number(video.dataset.duration) : null,
    growing: video.dataset.growing === "yes",
    onState: (s) => {
      if (s.error) show(said, s.error);
      else if (s.message) show(said, s.message);
      else if (s.cut) show(said, "This clip was cut short: it plays to its last whole second.");
      else said.textContent = ""; // nothing more to say (a clip being recorded ended whole)
    },
  });
  state.cleanups.push(() => {
    video.pause();
    if (handle && handle.close) handle.close();
  });
}

function clipActions(holders = document.querySelectorAll("[data-clip]")) {
  for (const holder of holders) {
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
          if (document.body.dataset.page === "player") navigate("/");
          else holder.remove();
        }
      });
    }
  }
}

// --- the list, as clips start and end (clip_list.js) ----------------------------------------

// The pictures of cards that came by themselves are fetched only while the owner uses the
// page (an input within IN_USE_MS, or coming back to it): every fetch counts as use of
// the session on the doorbell, and a tab left open on a busy porch must still lock when
// its idle time is up. The others wait for the owner's next input.
const IN_USE_MS = 60_000;
const unseen = new Set();
let lastInput = Date.now();

function used() {
  lastInput = Date.now();
  if (unseen.size === 0 || !state.keyholder) return;
  const images = [...unseen].filter((img) => img.isConnected);
  unseen.clear();
  thumbnails(images).catch(() => {});
}
for (const name of ["pointerdown", "keydown", "wheel", "touchstart", "focus"]) {
  window.addEventListener(name, used, { capture: true, passive: true });
}
document.addEventListener("visibilitychange", () => { if (!document.hidden) used(); });

function picturesOf(card) {
  const images = [...card.querySelectorAll("img[data-thumbnail]")];
  if (!state.keyholder || images.length === 0) return;
  if (Date.now() - lastInput < IN_USE_MS) thumbnails(images).catch(() => {});
  else for (const img of images) unseen.add(img);
}

function recordingStarted(data) {
  const card = clipList.recordingStarted(data);
  if (card) picturesOf(card);
}

function clipFinished(data) {
  playerClipFinished(data);
  const card = clipList.clipFinished(data);
  if (!card) return;
  clipActions([card]);
  picturesOf(card);
}

// The player page of a clip that was being recorded: once it ends, its line says how
// long it is and offers it to download, as the page of a finished clip does.
function playerClipFinished(data) {
  const section = document.querySelector(`section.player[data-clip="${CSS.escape(data.id)}"]`);
  const live = section && section.querySelector("#watch-live");
  if (!live) return;
  section.querySelector(".meta .duration").textContent = data.duration;
  const download = document.createElement("a");
  download.className = "button";
  download.id = "download-clip";
  download.href = `/clips/${encodeURIComponent(data.id)}/file`;
  download.download = `doorbell-${data.id}.mp4.age`;
  download.textContent = "Download (encrypted, for age)";
  live.replaceWith(download);
}

function ownersPage() {
  $("new-invite").addEventListener("click", async () => {
    const response = await call("POST", "/api/invites");
    if (!response.ok) return toast((await response.text()).trim());
    const invite = await response.json();
    $("invite-code").textContent = invite.code;
    $("invite-expires").textContent = invite.expires_text;
    $("invite-url").textContent = `${location.origin}/setup?invite=${invite.code}`;
    $("invite").hidden = false;
  });
  for (const button of document.querySelectorAll("button.remove-owner")) {
    button.addEventListener("click", async () => {
      const item = button.closest("[data-owner-id]");
      if (!window.confirm("Remove this owner? Their sessions end now; new clips are no longer encrypted to them.")) return;
      const response = await call("DELETE", `/api/owners/${item.dataset.ownerId}`);
      if (response.ok) item.remove();
      else toast((await response.text()).trim());
    });
  }
  $("sign-out-everywhere").addEventListener("click", async () => {
    await call("POST", "/api/sign-out-everywhere");
  });
  $("passphrase-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("passphrase-error");
    error.hidden = true;
    if ($("new-passphrase").value !== $("confirm-passphrase").value) {
      show(error, "The two new passphrases differ.");
      return;
    }
    try {
      await owner.changePassphrase(state.keyholder, $("old-passphrase").value,
        $("new-passphrase").value, csrf());
      $("passphrase-done").hidden = false;
    } catch (err) {
      show(error, failure(err));
    }
  });
}

function header() {
  const lock = $("lock");
  if (lock) {
    lock.addEventListener("click", async () => {
      await call("POST", "/api/lock");
      if (state.keyholder) state.keyholder.forget();
      state.keyholder = null;
      location.assign("/unlock");
    });
  }
  const bell = $("press-bell");
  if (bell) bell.addEventListener("click", () => call("POST", "/api/bell"));
}

async function start() {
  const page = document.body.dataset.page;
  tabUnlockForm({ unlocked: tabUnlocked, lock: () => call("POST", "/api/lock") });
  if (page === "unlock") return unlockPage({ unlocked });
  if (page === "setup") return setupPage({ unlocked: (keyholder) => { state.keyholder = keyholder; } });
  if (document.body.dataset.unlocked !== "yes") return;
  rings.whileUnlocked(csrf()).catch(() => {});
  header();
  clipActions();
  if (!state.events) {
    state.events = listenForEvents({
      toast, onRecording: recordingStarted, onRecordings: clipList.stillRecording,
      onClip: clipFinished,
      onConnection: connection, onSessionEnded: sessionEnded,
    });
  }
  if (page === "owners") ownersPage();
  if (page === "clips") rings.choiceBox($("rings-here"), csrf, toast);
  if (!state.keyholder) {
    const known = owner.saved();
    lockedOverlay("Unlock this tab", known
      ? `Your key lives only in the memory of an open tab. Type your passphrase, ${known.name}, to open clips here.`
      : "This browser does not hold your key: unlock again with your name and passphrase.");
    return;
  }
  if (page === "clips") await thumbnails();
  if (page === "player") await playerPage();
  if (page === "live") $("live").src = $("live").dataset.src; // only once this tab is unlocked
}

start().catch((err) => toast(failure(err)));
