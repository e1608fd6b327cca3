// The owner's keys and the age files they open, in the owner's browser (an ES module).
//
// Everything cryptographic the pages do, on age-encryption (the age authors' library)
// and @noble, served by the device from node_modules through the page's import map.
// No primitive is written here: X25519 is WebCrypto's (through age-encryption),
// scrypt, HKDF and ChaCha20-Poly1305 are @noble's.
//
//   const { identity, recipient } = await generateIdentity();
//   const wrapped = await wrapIdentity(identityFileText(identity, recipient), passphrase, 18);
//   const keyholder = await Keyholder.fromIdentity(await unwrapIdentity(wrapped, passphrase));
//   const clip = await ClipReader.open("/clips/ID/file", keyholder);
//   const [first] = await clip.readChunks(0, 1);      // 64 KiB of the MP4
//
// Errors are Error objects with a `name` telling the kind (WrongPassphrase,
// NotWrappedIdentity, NotAnIdentity, NoIdentityMatch, DamagedFile, DamagedChunk,
// FetchFailed, InsecurePage) and a plain message; none carries a secret.

import {
  Decrypter,
  Encrypter,
  Stanza,
  generateX25519Identity,
  identityToRecipient,
} from "age-encryption";
import { base64nopad, base64urlnopad, bech32 } from "@scure/base";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { scryptAsync } from "@noble/hashes/scrypt.js";
import { randomBytes } from "@noble/hashes/utils.js";

export const CHUNK_SIZE = 64 * 1024; // plaintext bytes of a STREAM chunk
export const TAG_SIZE = 16; // Poly1305 tag after each chunk
export const SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE;
export const NONCE_SIZE = 16; // between the header and the first chunk
export const MAX_WORK_FACTOR = 20; // scrypt log2 N: 1 GiB, what a browser can hold
export const MAX_HEADER = 1 << 20;
export const FIRST_READ = 4096; // bytes asked for the header at first: it is grown if longer
export const VERSION_LINE = "age-encryption.org/v1\n";
const SCRYPT_LABEL = "age-encryption.org/v1/scrypt";
const AUTH_LABEL = "doorbell.org/v1/auth";
const SECRET_PREFIX = "AGE-SECRET-KEY-1";
const encoder = new TextEncoder();

function kind(name) {
  return class extends Error {
    constructor(message, details = {}) {
      super(message);
      this.name = name;
      Object.assign(this, details);
    }
  };
}
export const WrongPassphrase = kind("WrongPassphrase");
export const NotWrappedIdentity = kind("NotWrappedIdentity");
export const NotAnIdentity = kind("NotAnIdentity");
export const NoIdentityMatch = kind("NoIdentityMatch");
export const DamagedFile = kind("DamagedFile");
export const DamagedChunk = kind("DamagedChunk");
export const FetchFailed = kind("FetchFailed");
export const InsecurePage = kind("InsecurePage");

// -- identities -------------------------------------------------------------------------

// A new age X25519 identity: {identity: "AGE-SECRET-KEY-1…", recipient: "age1…"}.
export async function generateIdentity() {
  needWebCrypto();
  const identity = await generateX25519Identity();
  return { identity, recipient: await identityToRecipient(identity) };
}

// The text of an identity file as age-keygen writes it. `createdIso` defaults to now,
// to the second (RFC 3339, as age-keygen).
export function identityFileText(identity, recipient, createdIso = undefined) {
  const created = createdIso ?? new Date().toISOString().replace(/\.\d+Z$/, "Z");
  return `# created: ${created}\n# public key: ${recipient}\n${identity}\n`;
}

// A binary age file of `text` under `passphrase` (one scrypt stanza, log2 N =
// `workFactor`): what `age -d` opens with the passphrase. Resolves to a Uint8Array.
// `onProgress(fraction)` is called as scrypt runs (the page stays live meanwhile).
export async function wrapIdentity(text, passphrase, workFactor, { onProgress } = {}) {
  checkWorkFactor(workFactor);
  const encrypter = new Encrypter();
  encrypter.addRecipient(new PassphraseRecipient(passphrase, workFactor, onProgress));
  return await encrypter.encrypt(text);
}

// The AGE-SECRET-KEY-1… line of a file `wrapIdentity` (or `age -p`) made.
// Throws WrongPassphrase, NotWrappedIdentity (not an age file, not under a
// passphrase, damaged) or NotAnIdentity (opens, but holds no identity).
export async function unwrapIdentity(wrapped, passphrase, { onProgress } = {}) {
  const bytes = asBytes(wrapped);
  if (!startsWith(bytes, VERSION_LINE)) {
    throw new NotWrappedIdentity(
      "this is not an age file: a wrapped identity starts with age-encryption.org/v1",
    );
  }
  const identity = new PassphraseIdentity(passphrase, onProgress);
  const decrypter = new Decrypter();
  decrypter.addIdentity(identity);
  let text;
  try {
    text = await decrypter.decrypt(bytes, "text");
  } catch (err) {
    if (identity.wrong) throw new WrongPassphrase("wrong passphrase");
    if (!identity.asked) throw new NotWrappedIdentity(`this is not a valid age file (${err.message})`);
    if (!identity.found) {
      throw new NotWrappedIdentity("this age file is not under a passphrase (it has no scrypt stanza)");
    }
    throw new NotWrappedIdentity(`this wrapped identity is damaged (${err.message})`);
  }
  return identityLine(text);
}

// The owner's login key: scrypt(P = the UTF-8 passphrase, S = "doorbell.org/v1/auth" ||
// salt, N = 2**workFactor, r = 8, p = 1, dkLen = 32). Resolves to 32 bytes.
export async function authKey(passphrase, salt, workFactor, { onProgress } = {}) {
  checkWorkFactor(workFactor);
  return await scryptAsync(encoder.encode(passphrase), concat(encoder.encode(AUTH_LABEL), asBytes(salt)), {
    N: 2 ** workFactor,
    r: 8,
    p: 1,
    dkLen: 32,
    onProgress,
  });
}

// The scrypt recipient and identity of the age spec, with @noble's scryptAsync so the
// page stays live (age-encryption's own run scrypt in one blocking call).
class PassphraseRecipient {
  constructor(passphrase, workFactor, onProgress) {
    Object.assign(this, { passphrase, workFactor, onProgress });
  }

  async wrapFileKey(fileKey) {
    const salt = randomBytes(16);
    const key = await scryptKey(this.passphrase, salt, this.workFactor, this.onProgress);
    const body = chacha20poly1305(key, new Uint8Array(12)).encrypt(fileKey);
    return [new Stanza(["scrypt", base64nopad.encode(salt), String(this.workFactor)], body)];
  }
}

class PassphraseIdentity {
  constructor(passphrase, onProgress) {
    Object.assign(this, { passphrase, onProgress, asked: false, found: false, wrong: false });
  }

  async unwrapFileKey(stanzas) {
    this.asked = true;
    const stanza = stanzas.find((s) => s.args[0] === "scrypt");
    if (stanza === undefined) return null;
    this.found = true;
    if (stanzas.length !== 1) throw new Error("a scrypt stanza must be the only one");
    const [, saltText, factorText] = stanza.args;
    if (stanza.args.length !== 3 || !/^[1-9][0-9]*$/.test(factorText ?? "")) {
      throw new Error("invalid scrypt stanza");
    }
    const salt = base64nopad.decode(saltText);
    const workFactor = Number(factorText);
    if (salt.length !== 16 || stanza.body.length !== 32) throw new Error("invalid scrypt stanza");
    if (workFactor > MAX_WORK_FACTOR) {
      throw new Error(`its scrypt work factor ${workFactor} is above ${MAX_WORK_FACTOR}`);
    }
    const key = await scryptKey(this.passphrase, salt, workFactor, this.onProgress);
    try {
      return chacha20poly1305(key, new Uint8Array(12)).decrypt(stanza.body);
    } catch {
      this.wrong = true;
      return null;
    }
  }
}

function scryptKey(passphrase, salt, workFactor, onProgress) {
  const labelAndSalt = concat(encoder.encode(SCRYPT_LABEL), salt);
  return scryptAsync(encoder.encode(passphrase), labelAndSalt, {
    N: 2 ** workFactor,
    r: 8,
    p: 1,
    dkLen: 32,
    onProgress,
  });
}

// -- the keyholder ----------------------------------------------------------------------

// An identity held as a non-extractable WebCrypto key: page code can decrypt with it
// but never read it out. Only the CryptoKey and the recipient are kept.
export class Keyholder {
  #key;
  #decrypter;

  constructor(key, recipient) {
    this.#key = key;
    this.recipient = recipient;
  }

  // From an identity file's text (or the bare AGE-SECRET-KEY-1… line). NotAnIdentity
  // if there is no key, or its "# public key:" line names another key.
  static async fromIdentity(text) {
    needWebCrypto();
    const line = identityLine(text);
    let scalar;
    try {
      const decoded = bech32.decodeToBytes(line);
      const prefix = decoded.prefix.toUpperCase();
      if (prefix !== "AGE-SECRET-KEY-" || decoded.bytes.length !== 32) throw new Error();
      scalar = decoded.bytes;
    } catch {
      throw new NotAnIdentity("its AGE-SECRET-KEY-1 line is not a valid age X25519 identity");
    }
    const recipient = await identityToRecipient(line);
    const stated = /^# public key: (\S+)$/m.exec(text);
    if (stated && stated[1] !== recipient) {
      throw new NotAnIdentity("its public key line does not match its secret key");
    }
    const jwk = {
      kty: "OKP",
      crv: "X25519",
      d: base64urlnopad.encode(scalar),
      x: base64urlnopad.encode(bech32.decodeToBytes(recipient).bytes),
    };
    const key = await crypto.subtle.importKey("jwk", jwk, { name: "X25519" }, false, ["deriveBits"]);
    scalar.fill(0);
    return new Keyholder(key, recipient);
  }

  get key() {
    if (this.#key === null) throw new Error("this keyholder has forgotten its key (log in again)");
    return this.#key;
  }

  #decrypterFor() {
    if (this.#decrypter === undefined) {
      this.#decrypter = new Decrypter();
      this.#decrypter.addIdentity(this.key);
    }
    return this.#decrypter;
  }

  // The plaintext of a whole small age file (a thumbnail, a challenge, an index).
  async decryptFile(bytes) {
    const decrypter = this.#decrypterFor();
    try {
      return await decrypter.decrypt(asBytes(bytes));
    } catch (err) {
      throw fileError(err);
    }
  }

  // The 16-byte file key of an age header (through its "--- <mac>" line).
  async fileKeyOf(header) {
    const decrypter = this.#decrypterFor();
    try {
      return await decrypter.decryptHeader(asBytes(header));
    } catch (err) {
      throw fileError(err);
    }
  }

  // Drop the key: every later use throws. (A CryptoKey cannot be wiped; this drops
  // the page's last reference to it.)
  forget() {
    this.#key = null;
    this.#decrypter = undefined;
  }
}

function fileError(err) {
  if (/no identity matched/.test(err.message)) {
    return new NoIdentityMatch("this file is not encrypted to this key");
  }
  if (err.name === "NotSupportedError" || /WebCrypto/.test(err.message)) return err;
  return new DamagedFile(`this file is damaged or not an age file (${err.message})`);
}

export { ClipReader, parseHeaderEnd } from "./clip_reader.js";

// -- small helpers ----------------------------------------------------------------------

function identityLine(text) {
  const line = String(text)
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l.startsWith(SECRET_PREFIX));
  if (line === undefined) throw new NotAnIdentity("there is no AGE-SECRET-KEY-1 line in it");
  return line;
}

function needWebCrypto() {
  if (!globalThis.isSecureContext || globalThis.crypto?.subtle === undefined) {
    throw new InsecurePage(
      "this page is not a secure context (https:// or localhost): the browser offers no WebCrypto here",
    );
  }
}

function checkWorkFactor(workFactor) {
  if (!Number.isInteger(workFactor) || workFactor < 1 || workFactor > MAX_WORK_FACTOR) {
    throw new RangeError(`the scrypt work factor must be a whole number from 1 to ${MAX_WORK_FACTOR}`);
  }
}

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError("expected a Uint8Array or an ArrayBuffer");
}

function startsWith(bytes, text) {
  if (bytes.length < text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[i] !== text.charCodeAt(i)) return false;
  return true;
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
