// The owner's key in this browser: pairing, unlocking, login by challenge, passphrase change.
// The key never leaves the browser: the doorbell gets its public half (the recipient), the
// key wrapped under the passphrase (an age file it cannot open) and a proof of the
// passphrase from a second, separate derivation (docs/ARCHITECTURE.md, "Owners").
// The unwrapped key lives only in this tab's memory, as a non-extractable WebCrypto key.

const SAVED = "doorbell.owner"; // localStorage: {owner, name, wrapped (base64)}
let vaultModule = null;

export async function vault() {
  // Loaded on demand, so a page without the age library installed still works and says so.
  if (!vaultModule) vaultModule = await import("/static/vault.js");
  return vaultModule;
}

export const base64 = {
  encode(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  },
  decode(text) {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  },
};

export function saved() {
  try {
    const record = JSON.parse(localStorage.getItem(SAVED) || "null");
    return record && record.owner && record.wrapped ? record : null;
  } catch {
    return null;
  }
}

export function save(record) {
  localStorage.setItem(SAVED, JSON.stringify(record));
}

export function forgetBrowser() {
  localStorage.removeItem(SAVED);
}

export class RequestError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function postJSON(url, body, csrf) {
  const headers = { "Content-Type": "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(url, {
    method: "POST", headers, credentials: "same-origin", body: JSON.stringify(body),
  });
  if (!response.ok) throw new RequestError(response.status, (await response.text()).trim());
  return response.json();
}

function workFactor() {
  return Number(document.body.dataset.workFactor || "16");
}

// Wrap an identity under a passphrase, and make the proof the doorbell keeps a hash of.
async function wrapped(v, identity, recipient, passphrase) {
  const text = v.identityFileText(identity, recipient, new Date().toISOString());
  const factor = workFactor();
  const file = await v.wrapIdentity(text, passphrase, factor);
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const auth = await v.authKey(passphrase, salt, factor);
  return {
    file,
    fields: {
      wrapped: base64.encode(file), salt: base64.encode(salt),
      auth: base64.encode(auth), work_factor: factor,
    },
  };
}

// An identity the owner brings: a plain age identity file, or one encrypted under the passphrase.
async function importedIdentity(v, file, passphrase) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const head = new TextDecoder().decode(bytes.subarray(0, 30));
  const text = head.startsWith("age-encryption.org/v1")
    ? await v.unwrapIdentity(bytes, passphrase)
    : new TextDecoder().decode(bytes);
  const line = text.split(/\r?\n/).map((l) => l.trim()).find((l) => l.startsWith("AGE-SECRET-KEY-1"));
  if (!line) throw new Error(`${file.name}: no AGE-SECRET-KEY-1… identity in it`);
  const age = await import("age-encryption");
  return { identity: line, recipient: await age.identityToRecipient(line) };
}

// Pairing: a new owner's key, made here; the doorbell learns the public half.
export async function pair({ code, name, passphrase, identityFile }) {
  const v = await vault();
  const made = identityFile ? await importedIdentity(v, identityFile, passphrase)
    : await v.generateIdentity();
  const wrap = await wrapped(v, made.identity, made.recipient, passphrase);
  const result = await postJSON("/api/pair", { code, name, recipient: made.recipient, ...wrap.fields });
  save({ owner: result.owner, name: result.name, wrapped: wrap.fields.wrapped });
  const keyholder = await v.Keyholder.fromIdentity(made.identity);
  return { keyholder, recipient: made.recipient, file: wrap.file, csrf: result.csrf_token };
}

// The key this browser keeps, opened with the passphrase here (no request is made).
export async function openSaved(passphrase) {
  const record = saved();
  if (!record) throw new Error("this browser does not hold your key: unlock with your name");
  const v = await vault();
  const identity = await v.unwrapIdentity(base64.decode(record.wrapped), passphrase);
  return v.Keyholder.fromIdentity(identity);
}

// A browser new to this owner: prove the passphrase online (throttled), get the wrapped key.
export async function fetchWrapped(name, passphrase) {
  const v = await vault();
  const found = await postJSON("/api/owners/find", { name });
  const auth = await v.authKey(passphrase, base64.decode(found.salt), found.work_factor);
  const result = await postJSON("/api/owners/release", { owner: found.owner, auth: base64.encode(auth) });
  const identity = await v.unwrapIdentity(base64.decode(result.wrapped), passphrase);
  save({ owner: result.owner, name: result.name, wrapped: result.wrapped });
  return v.Keyholder.fromIdentity(identity);
}

// Login: the doorbell encrypts a random challenge to the owner's key; only the key opens it.
export async function signIn(keyholder) {
  const record = saved();
  const challenge = await postJSON("/api/login/challenge", { owner: record.owner });
  const answer = await keyholder.decryptFile(base64.decode(challenge.file));
  return postJSON("/api/login", { challenge: challenge.challenge, answer: base64.encode(answer) });
}

// A new passphrase: the same key, wrapped again here.
export async function changePassphrase(keyholder, oldPassphrase, newPassphrase, csrf) {
  const v = await vault();
  const record = saved();
  const identity = await v.unwrapIdentity(base64.decode(record.wrapped), oldPassphrase);
  const wrap = await wrapped(v, identity, keyholder.recipient, newPassphrase);
  await postJSON("/api/passphrase", wrap.fields, csrf);
  save({ ...record, wrapped: wrap.fields.wrapped });
}

export function passphraseStrength(passphrase) {
  const words = passphrase.trim().split(/\s+/).filter(Boolean).length;
  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9\s]/].filter((re) => re.test(passphrase)).length;
  if (passphrase.length < 8) return "Too short: at least 8 characters.";
  if (words >= 4 || passphrase.length >= 20) return "Strong.";
  if (passphrase.length >= 12 && kinds >= 2) return "Good.";
  return "Weak: four or more random words are easier to remember and harder to guess.";
}
