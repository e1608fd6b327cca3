// An age file read chunk by chunk over HTTP Range, in the owner's browser: what seeking
// in a clip needs (vault.js re-exports it). The file key comes from the Keyholder; each
// 64 KiB chunk is fetched and decrypted on its own with @noble's HKDF and
// ChaCha20-Poly1305 (the age STREAM construction), so a seek fetches only what it needs.
// Uses vault.js's constants, error kinds and helpers only inside functions: vault.js
// imports this module back (to re-export it), and a cycle is safe that way.

import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  CHUNK_SIZE,
  DamagedChunk,
  DamagedFile,
  FIRST_READ,
  FetchFailed,
  MAX_HEADER,
  NONCE_SIZE,
  NoIdentityMatch,
  SEALED_CHUNK,
  VERSION_LINE,
} from "./vault.js";

const PAYLOAD_LABEL = new TextEncoder().encode("payload"); // age: HKDF info of the payload key

// -- clips, chunk by chunk --------------------------------------------------------------

// The length of the age header at the start of `bytes` (through the "--- <mac>" line's
// newline), or null if more bytes are needed. The 16-byte nonce follows it, then the
// payload's chunks. DamagedFile if `bytes` does not start like an age file.
export function parseHeaderEnd(bytes) {
  const known = Math.min(bytes.length, VERSION_LINE.length);
  for (let i = 0; i < known; i++) {
    if (bytes[i] !== VERSION_LINE.charCodeAt(i)) {
      throw new DamagedFile("this is not an age file (it does not start with age-encryption.org/v1)");
    }
  }
  let lineStart = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (bytes[lineStart] === 0x2d && bytes[lineStart + 1] === 0x2d && bytes[lineStart + 2] === 0x2d) {
      return i + 1; // the "--- " MAC line ends the header
    }
    lineStart = i + 1;
  }
  return null;
}

// An age file on the server, read by HTTP Range requests and decrypted chunk by chunk.
//
//   size            ciphertext bytes on the server
//   plaintextSize   bytes of plaintext that can be read
//   chunkCount      chunks that can be read (0 … chunkCount - 1)
//   cut             true: the file has no final chunk (a crash cut it): every whole
//                   chunk reads; a trailing partial chunk is left out
//   lastGoodChunk   chunkCount - 1
//   stats           {requests, bytes} fetched so far
export class ClipReader {
  #payloadKey;
  #tail = null; // [index, plaintext] of the last chunk, read at open

  constructor(url, payloadKey, payloadStart, size) {
    this.url = url;
    this.#payloadKey = payloadKey;
    this.payloadStart = payloadStart;
    this.size = size;
    this.stats = { requests: 0, bytes: 0 };
  }

  // Open the age file at `url` for `keyholder`: its header (one Range request, grown if
  // the header is longer) and its last chunk (one more), which says whether the file
  // ends whole or was cut. Throws FetchFailed, NoIdentityMatch, DamagedFile, DamagedChunk.
  static async open(url, keyholder) {
    const stats = { requests: 0, bytes: 0 };
    let want = FIRST_READ;
    for (;;) {
      const { bytes, total } = await fetchRange(url, 0, want, stats);
      const end = parseHeaderEnd(bytes);
      if (end !== null && bytes.length >= end + NONCE_SIZE) {
        const fileKey = await keyholder.fileKeyOf(bytes.subarray(0, end));
        const nonce = bytes.subarray(end, end + NONCE_SIZE);
        const payloadKey = hkdf(sha256, fileKey, nonce, PAYLOAD_LABEL, 32);
        fileKey.fill(0);
        const reader = new ClipReader(url, payloadKey, end + NONCE_SIZE, total);
        reader.stats = stats;
        await reader.#findEnd();
        return reader;
      }
      if (bytes.length >= total) throw new DamagedFile("the file ends inside its age header");
      if (want >= MAX_HEADER) throw new DamagedFile("the file's age header is longer than 1 MiB");
      want *= 4;
    }
  }

  // Decide where the readable chunks end: the last chunk opens as the final one (a whole
  // file), or as a middle one (cut at a chunk boundary), or it is a cut partial chunk.
  async #findEnd() {
    const payload = this.size - this.payloadStart;
    const count = Math.ceil(Math.max(payload, 0) / SEALED_CHUNK);
    this.cut = true;
    this.chunkCount = 0;
    if (count === 0) return this.#sized(); // cut before its first chunk
    const last = count - 1;
    const start = this.payloadStart + last * SEALED_CHUNK;
    const { bytes } = await fetchRange(this.url, start, this.size - start, this.stats);
    const whole = bytes.length === SEALED_CHUNK;
    const asFinal = this.#open(last, bytes, true);
    if (asFinal !== null && (asFinal.length > 0 || last === 0)) {
      [this.cut, this.chunkCount, this.#tail] = [false, count, [last, asFinal]];
    } else if (whole) {
      const asMiddle = this.#open(last, bytes, false);
      if (asMiddle === null) throw this.#damaged(last, bytes.length);
      [this.chunkCount, this.#tail] = [count, [last, asMiddle]];
    } else {
      this.chunkCount = last; // a partial chunk that is not a final one: cut mid-chunk
    }
    this.#sized();
  }

  // A file still being written (a clip being recorded) reads as a cut one: its whole
  // chunks. This learns how far it has grown since (one 1-byte Range request, and one
  // for its new last chunk when it grew). True if it grew; `cut` is false once it ends
  // whole (the recording finished).
  async refresh() {
    const { total } = await fetchRange(this.url, 0, 1, this.stats);
    if (total === this.size) return false;
    this.size = total;
    await this.#findEnd();
    return true;
  }

  #sized() {
    this.lastGoodChunk = this.chunkCount - 1;
    this.plaintextSize = this.cut
      ? this.chunkCount * CHUNK_SIZE
      : (this.chunkCount - 1) * CHUNK_SIZE + this.#tail[1].length;
  }

  // The chunk holding plaintext byte `offset`.
  chunkOf(offset) {
    return Math.floor(offset / CHUNK_SIZE);
  }

  // The plaintext of chunks first … first + count - 1 (fewer at the end), fetched by one
  // Range request. DamagedChunk naming the chunk and its byte offset if one does not
  // authenticate; FetchFailed if the server fails or the file changed. [] if `stale()`
  // says, once the bytes came, that they are no longer wanted (nothing decrypted).
  async readChunks(first, count, stale = () => false) {
    const end = Math.min(first + count, this.chunkCount);
    if (first < 0 || !Number.isInteger(first) || first >= end) return [];
    const start = this.payloadStart + first * SEALED_CHUNK;
    const stop = Math.min(this.payloadStart + end * SEALED_CHUNK, this.size);
    const { bytes } = await fetchRange(this.url, start, stop - start, this.stats);
    if (stale()) return []; // the caller moved on while it came: not worth decrypting
    if (bytes.length !== stop - start) {
      throw new FetchFailed("the clip file changed on the server while it was read");
    }
    const out = [];
    for (let index = first; index < end; index++) {
      if (this.#tail !== null && this.#tail[0] === index) {
        out.push(this.#tail[1]);
        continue;
      }
      const at = (index - first) * SEALED_CHUNK;
      const sealed = bytes.subarray(at, Math.min(at + SEALED_CHUNK, bytes.length));
      const plain = this.#open(index, sealed, !this.cut && index === this.chunkCount - 1);
      if (plain === null) throw this.#damaged(index, sealed.length);
      out.push(plain);
    }
    return out;
  }

  #open(index, sealed, final) {
    const nonce = new Uint8Array(12); // 11-byte big-endian counter, then the final flag
    for (let i = 10, n = index; i >= 0 && n > 0; i--, n = Math.floor(n / 256)) nonce[i] = n % 256;
    nonce[11] = final ? 1 : 0;
    try {
      return chacha20poly1305(this.#payloadKey, nonce).decrypt(sealed);
    } catch {
      return null;
    }
  }

  #damaged(index, length) {
    const offset = this.payloadStart + index * SEALED_CHUNK;
    return new DamagedChunk(
      `chunk ${index} of the clip (bytes ${offset} to ${offset + length - 1} of its file) ` +
        "is damaged: it does not authenticate",
      { chunk: index, offset },
    );
  }
}

// `length` bytes of `url` from `start`: {bytes, total} (total: the file's size).
async function fetchRange(url, start, length, stats) {
  let response;
  try {
    response = await fetch(url, { headers: { Range: `bytes=${start}-${start + length - 1}` } });
  } catch (err) {
    throw new FetchFailed(`the clip could not be fetched (${err.message})`);
  }
  if (response.status === 404) throw new FetchFailed("the clip file is not on the doorbell", { status: 404 });
  if (response.status !== 206 && response.status !== 200) {
    const status = response.status;
    throw new FetchFailed(`the doorbell answered ${status} for the clip file`, { status });
  }
  let bytes = new Uint8Array(await response.arrayBuffer());
  let total = bytes.length;
  if (response.status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.headers.get("Content-Range") ?? "");
    if (range === null || Number(range[1]) !== start) {
      throw new FetchFailed("the doorbell answered a range request with another range");
    }
    total = Number(range[3]);
  } else {
    bytes = bytes.subarray(start, start + length); // the whole file came
  }
  stats.requests += 1;
  stats.bytes += bytes.length;
  return { bytes, total };
}

