// Signing in: the pages that give this tab the owner's key. Pairing (/setup: a new key
// made in this browser, wrapped under the passphrase, paired with a setup code or an
// invite), unlocking (/unlock: the key saved in this browser, or fetched wrapped by the
// owner's name, opened with the passphrase, then login by challenge), and the locked
// overlay's form (#tab-unlock-form, base.html), which opens the saved key again in a tab
// that has none (a reload, a new tab, a session that ended). The key work is owner.js's.
//
//   setupPage({ unlocked });                       // data-page="setup"
//   unlockPage({ unlocked });                      // data-page="unlock"
//   tabUnlockForm({ unlocked, lock });             // any page: once, then it stays
//
// `unlocked(keyholder)` takes the opened key (app.js keeps it in this tab's memory and,
// from /unlock and the overlay, moves on to the page); it is awaited, and what it throws
// is said in the form. `lock()` ends this session on the doorbell (POST /api/lock).
import * as owner from "/static/owner.js";
import * as rings from "/static/rings.js";
import { toast } from "/static/toasts.js";
import { failure, show } from "/static/page_text.js";

const $ = (id) => document.getElementById(id);

export function setupPage({ unlocked }) {
  const form = $("setup-form");
  const first = $("new-passphrase");
  first.addEventListener("input", () => { $("strength").textContent = owner.passphraseStrength(first.value); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("setup-error");
    error.hidden = true;
    if ($("confirm-passphrase").value !== first.value) {
      show(error, "The two passphrases differ.");
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    button.textContent = "Making your key…";
    try {
      const done = await owner.pair({
        code: $("setup-code").value, name: $("owner-name").value,
        passphrase: first.value, identityFile: $("identity-file").files[0],
      });
      unlocked(done.keyholder);
      $("recipient").textContent = done.recipient;
      const link = $("download-identity");
      link.href = URL.createObjectURL(new Blob([done.file], { type: "application/octet-stream" }));
      $("setup-step").hidden = true;
      $("setup-done").hidden = false;
    } catch (err) {
      show(error, failure(err));
    } finally {
      button.disabled = false;
      button.textContent = "Make my key and pair";
    }
  });
}

export function unlockPage({ unlocked }) {
  rings.whileLocked({ toast });
  const record = owner.saved();
  if (record) {
    $("known-owner").hidden = false;
    $("known-owner-name").textContent = record.name;
    $("name-field").hidden = true;
  }
  $("forget-browser").addEventListener("click", async () => {
    owner.forgetBrowser();
    await rings.stop().catch(() => {}); // a forgotten browser hears no rings either
    location.reload();
  });
  const form = $("unlock-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("unlock-error");
    error.hidden = true;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    button.textContent = "Unlocking…";
    const passphrase = $("passphrase").value;
    try {
      const keyholder = owner.saved() ? await owner.openSaved(passphrase)
        : await owner.fetchWrapped($("owner-name").value, passphrase);
      await owner.signIn(keyholder);
      await unlocked(keyholder);
    } catch (err) {
      if (err.status === 404) owner.forgetBrowser(); // this owner is gone from the doorbell
      show(error, failure(err));
    } finally {
      button.disabled = false;
      button.textContent = "Unlock";
    }
  });
}

// The locked overlay's form: the saved key opened with the passphrase (and, if the
// session had ended, login again). Without a saved key, or once the doorbell no longer
// knows this owner, the owner goes to /unlock.
export function tabUnlockForm({ unlocked, lock }) {
  const form = $("tab-unlock-form");
  if (!form || form.dataset.ready) return;
  form.dataset.ready = "yes";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("tab-unlock-error");
    error.hidden = true;
    if (!owner.saved()) { // nothing to open here: sign in afresh with the name
      await lock();
      location.assign("/unlock");
      return;
    }
    try {
      const keyholder = await owner.openSaved($("tab-passphrase").value);
      if (document.body.dataset.session === "ended") {
        await owner.signIn(keyholder);
        delete document.body.dataset.session;
      }
      await unlocked(keyholder);
    } catch (err) {
      if (err.status === 404) { // this owner is gone from the doorbell
        owner.forgetBrowser();
        location.assign("/unlock");
        return;
      }
      show(error, failure(err));
    }
  });
}
