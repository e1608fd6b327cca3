// Playing an encrypted clip in a <video>: Media Source Extensions fed with what the
// page decrypts (an ES module; the crypto is vault.js's).
//
//   const player = await playClip(video, { fileUrl, indexUrl, keyholder, onState, duration });
//   player.close();                       // stop fetching, let the video go
//
// `duration` (seconds, optional: the clip's length from the clip list) sizes the seek
// bar at once; without it the index's last keyframe gives it, and without an index it
// is known once the whole clip has loaded (until then seeks stay within what loaded).
//
// The clip (fragmented MP4 inside age) is fetched in pieces of 16 chunks (1 MiB) by
// Range requests while less than AHEAD_SECONDS are buffered ahead of the play head,
// and only whole top-level boxes are appended (ftyp + moov, then moof + mdat pairs), so
// a clip cut by a crash plays to its last whole fragment. With the clip's seek index
// (seek_index.js) a seek fetches from the keyframe at or before the new time; without it
// the clip streams from its start and a seek forward waits for the data. What is
// buffered (media_source.js) is kept to [t - KEEP_BEHIND, t + KEEP_AHEAD] around the
// play head.
//
// `growing` (optional): the clip is still being recorded. It plays from its start as its
// file grows (the whole 64 KiB chunks on the doorbell's card so far, looked for again
// every GROW_SECONDS once the player has caught up) and becomes an ordinary clip once
// its recording ends; until then it has no index (that is written at the end), so a seek
// stays within what has loaded.
//
// onState(state) is called on every change with {phase: "opening" | "streaming" |
// "complete" | "error" | "closed", indexed, cut, message, error}: `message` a plain
// sentence for the owner ("" when there is nothing to say), `error` the sentence of
// what went wrong (damaged chunk, missing file, undecodable video). Nothing here
// rejects: errors go to onState.

import { CHUNK_SIZE, ClipReader } from "./vault.js";
import { boxAt, fragmentTime, initInfo } from "./mp4.js";
import { cutsOutside, VideoSource } from "./media_source.js";
import { fetchIndex, keyframeFor } from "./seek_index.js";

// The thumbnail is thumbnail.js's; here too for the pages that load player.js for it
// (tests/browser_harness, bench/playback_harness).
export { showThumbnail } from "./thumbnail.js";

export const PIECE_CHUNKS = 16;
export const AHEAD_SECONDS = 20;
export const KEEP_BEHIND = 30;
export const KEEP_AHEAD = 60;
export const GROW_SECONDS = 1;
const GROW_MISSES = 5; // 404s in a row while growing (its file renamed as it ends): then an error

export async function playClip(video, options) {
  const player = new ClipPlayer(video, options);
  await player.start();
  return player;
}

class ClipPlayer {
  #wakers = [];
  #listeners = [];

  constructor(video, { fileUrl, indexUrl = null, keyholder, onState = () => {}, duration = null, growing = false }) {
    Object.assign(this, { video, fileUrl, indexUrl, keyholder, onState, duration, growing });
    this.misses = 0; // 404s in a row while growing
    this.state = { phase: "opening", indexed: false, cut: false, message: "", error: "" };
    this.closed = false;
    this.failed = false;
    this.generation = 0; // bumped when a seek moves the stream: older data is dropped
    this.next = 0; // the next chunk to fetch
    this.until = null; // after a seek: the byte where the next keyframe's fragment starts
    this.skip = 0; // bytes of that chunk before the box the stream resumes at
    this.pending = new Uint8Array(0); // decrypted bytes not yet appended (a partial box)
    this.moof = null; // a moof waiting for its mdat
    this.init = null; // {codec, timescale} once the moov came
    this.initParts = [];
    this.lastTime = -Infinity; // media time of the last fragment appended
    this.origin = null; // media time of the index's time 0
    this.ended = false;
  }

  async start() {
    try {
      this.reader = await ClipReader.open(this.fileUrl, this.keyholder);
      this.index = this.growing ? null : await this.#loadIndex();
      this.source = new VideoSource(this.video);
      await this.source.attach();
      for (const name of ["seeking", "timeupdate", "waiting", "play"]) {
        const handler = name === "seeking" ? () => this.#seeking() : () => this.#nudge();
        this.video.addEventListener(name, handler);
        this.#listeners.push([name, handler]);
      }
      this.#say({
        phase: "streaming",
        indexed: this.index !== null,
        cut: this.reader.cut && !this.growing,
        message: this.growing ? GROWING : this.reader.cut ? CUT : this.state.message,
      });
      this.#run();
    } catch (err) {
      this.#fail(err);
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const [name, handler] of this.#listeners) this.video.removeEventListener(name, handler);
    this.#nudge();
    if (this.source) this.source.detach();
    this.#say({ phase: "closed" });
  }

  async #loadIndex() {
    if (!this.indexUrl) return null;
    try {
      const index = await fetchIndex(this.indexUrl, this.keyholder, this.reader);
      if (index === null) this.#say({ message: noIndex("", this.duration) });
      return index;
    } catch (err) {
      this.#say({ message: noIndex(` (its index could not be read: ${err.message})`, this.duration) });
      return null;
    }
  }

  // -- the stream ------------------------------------------------------------------------

  async #run() {
    try {
      while (!this.closed && !this.failed) {
        if (this.next >= this.reader.chunkCount && this.growing) {
          await this.#grow();
        } else if (this.next >= this.reader.chunkCount) {
          this.#finish();
          await this.#wake();
        } else if (this.lastTime - this.video.currentTime >= AHEAD_SECONDS) {
          await this.#wake();
        } else {
          const generation = this.generation;
          const first = this.next;
          const pieces = await this.#read(first, () => generation !== this.generation || this.closed);
          if (generation !== this.generation || this.closed) continue;
          this.next = first + pieces.length;
          this.#take(pieces);
          await this.#appendWhole(generation);
          if (generation === this.generation) await this.#prune(KEEP_BEHIND);
        }
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  // The next piece; if a chunk in it is damaged, the whole chunks before it are
  // appended first (they play), then the damage is raised. Right after a seek, only the
  // chunks up to the next keyframe's fragment: the picture sought comes sooner. A piece
  // a later seek made stale (`stale()`) is dropped undecrypted.
  async #read(first, stale) {
    let count = PIECE_CHUNKS;
    if (this.until !== null) {
      const last = Math.ceil(this.until / CHUNK_SIZE);
      count = Math.min(PIECE_CHUNKS, Math.max(1, last - first + 1));
      this.until = null;
    }
    try {
      return await this.reader.readChunks(first, count, stale);
    } catch (err) {
      if (err.name !== "DamagedChunk" || err.chunk <= first) throw err;
      const generation = this.generation;
      this.#take(await this.reader.readChunks(first, err.chunk - first));
      await this.#appendWhole(generation);
      throw err;
    }
  }

  #take(pieces) {
    const total = pieces.reduce((n, p) => n + p.length, this.pending.length) - this.skip;
    const joined = new Uint8Array(total);
    joined.set(this.pending);
    let at = this.pending.length;
    for (const piece of pieces) {
      const part = this.skip ? piece.subarray(this.skip) : piece;
      this.skip = 0;
      joined.set(part, at);
      at += part.length;
    }
    this.pending = joined;
  }

  // Append every whole fragment now in `pending` (in one append); keep the partial box
  // that follows. The init segment (ftyp + moov) opens the SourceBuffer.
  async #appendWhole(generation) {
    const batch = [];
    let [at, last] = [0, null];
    for (;;) {
      const box = boxAt(this.pending, at);
      if (box === null || at + box.size > this.pending.length) break;
      const bytes = this.pending.subarray(at, at + box.size);
      at += box.size;
      if ((box.kind === "ftyp" || box.kind === "moov") && this.init === null) {
        this.initParts.push(bytes);
        if (box.kind === "moov") {
          await this.#openSource();
          if (this.index !== null && !this.duration) await this.#appendTail();
          if (generation !== this.generation || this.closed) return;
        }
      } else if (box.kind === "moof") {
        this.moof = bytes;
      } else if (box.kind === "mdat" && this.moof !== null && this.init !== null) {
        last = fragmentTime(this.moof, this.init.timescale);
        batch.push(this.moof, bytes);
        this.moof = null;
      }
    }
    if (batch.length > 0) {
      await this.#append(joinBytes(batch));
      if (generation !== this.generation || this.closed) return;
      this.lastTime = last;
      if (this.origin === null && this.index !== null && this.source.buffered.length > 0) {
        // the media time the index's first keyframe plays at (times in the index are
        // presentation times from the clip's start)
        this.origin = this.source.buffered.start(0) - this.index.keyframes[0][0];
      }
    }
    this.pending = this.pending.slice(at);
  }

  async #openSource() {
    const init = joinBytes(this.initParts);
    const info = initInfo(init);
    this.source.addSourceBuffer(info.codec);
    this.init = info;
    await this.#append(init); // sets the duration to +Infinity: an fMP4 does not know it
    if (this.duration) this.source.duration = this.duration;
  }

  // With an index and no duration given: the clip's last keyframe onward, appended
  // first, so the video's duration (the seek bar's length) is known from the start.
  async #appendTail() {
    const offset = this.index.keyframes.at(-1)[1];
    const first = Math.floor(offset / CHUNK_SIZE);
    if (first < this.next + PIECE_CHUNKS) return; // the stream is there in a moment
    const pieces = await this.reader.readChunks(first, this.reader.chunkCount - first);
    const bytes = joinBytes(pieces).subarray(offset - first * CHUNK_SIZE);
    const batch = [];
    let moof = null;
    for (let at = 0, box; (box = boxAt(bytes, at)) !== null; at += box.size) {
      if (at + box.size > bytes.length) break;
      const whole = bytes.subarray(at, at + box.size);
      if (box.kind === "moof") moof = whole;
      else if (box.kind === "mdat" && moof !== null) batch.push(moof, whole);
    }
    if (batch.length === 0) return;
    await this.#append(joinBytes(batch));
    const ranges = this.source.buffered;
    if (ranges.length > 0) this.source.duration = ranges.end(ranges.length - 1);
  }

  async #append(bytes) {
    this.ended = false;
    // the browser's buffer is full: keep less behind, once
    await this.source.append(bytes, () => this.#prune(5));
  }

  // Remove what is buffered outside [t - behind, t + KEEP_AHEAD].
  async #prune(behind) {
    const t = this.video.currentTime;
    await this.source.remove(cutsOutside(this.source.buffered, t - behind, t + KEEP_AHEAD, this.lastTime + 1));
  }

  // Caught up with a clip being recorded: wait a moment (or a seek), then see how far its
  // file has grown. Once it ends whole it is an ordinary clip.
  async #grow() {
    await Promise.race([new Promise((resolve) => setTimeout(resolve, GROW_SECONDS * 1000)), this.#wake()]);
    if (this.closed || this.failed) return;
    try {
      await this.reader.refresh();
      this.misses = 0;
    } catch (err) {
      if (err.status !== 404 || ++this.misses >= GROW_MISSES) throw err;
      return; // between its .part and its finished file: again in a moment
    }
    if (!this.reader.cut) {
      this.growing = false;
      this.#say({ cut: false, message: "" });
    }
  }

  #finish() {
    if (this.init === null) throw new Error("it holds no whole second of video");
    if (this.ended || !this.source.ready) return;
    this.ended = true;
    this.source.end();
    this.#say({ phase: "complete", message: this.reader.cut ? CUT : this.state.message });
  }

  // -- seeking ---------------------------------------------------------------------------

  #seeking() {
    const t = this.video.currentTime;
    if (this.#streamReaches(t)) {
      this.#nudge();
      return;
    }
    if (this.index !== null) {
      const { offset, time, until } = keyframeFor(this.index.keyframes, t, this.origin ?? 0);
      this.#restart(offset, time);
      this.until = until;
    } else if (t > this.lastTime) {
      this.#say({ message: WAIT_FORWARD });
    } else {
      this.#restart(0, -Infinity); // back before what is kept: from the start again
    }
    this.#nudge();
  }

  // Whether the stream, going on from where it is, plays `t` soon: t is buffered in the
  // range the stream is appending to, or just past it.
  #streamReaches(t) {
    const ranges = this.source?.buffered;
    if (!ranges) return this.next === 0 && t < AHEAD_SECONDS;
    for (let i = 0; i < ranges.length; i++) {
      const [start, end] = [ranges.start(i), ranges.end(i)];
      if (start <= t && t <= end + 2 && this.lastTime >= start && this.lastTime <= end + 0.5) return true;
    }
    return false;
  }

  #restart(offset, time) {
    this.generation += 1;
    this.until = null;
    this.next = Math.floor(offset / CHUNK_SIZE);
    this.skip = offset - this.next * CHUNK_SIZE;
    this.pending = new Uint8Array(0);
    this.moof = null;
    this.lastTime = time;
  }

  // -- small helpers ---------------------------------------------------------------------

  #wake() {
    return new Promise((resolve) => this.#wakers.push(resolve));
  }

  #nudge() {
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const wake of wakers) wake();
  }

  #say(changes) {
    Object.assign(this.state, changes);
    try {
      this.onState({ ...this.state });
    } catch (err) {
      console.error("onState failed", err);
    }
  }

  #fail(err) {
    if (this.closed || this.failed) return;
    const error = plainError(err);
    this.failed = true; // the loop stops; close() still lets the video go
    this.#nudge();
    if (this.source?.ready) this.source.end(); // what was good still plays
    this.#say({ phase: "error", error });
  }
}

const GROWING = "Being recorded now: it plays from its start and goes on as it is recorded.";
const CUT =
  "This clip was cut short (the doorbell stopped while recording it): it plays to its last whole frame.";
// Without an index the clip loads from its start. A seek past what has loaded waits for
// it when the duration is known (given, or once all has loaded); before that the
// browser keeps seeks within what has loaded.
const noIndex = (why, duration) =>
  `This clip has no seek index${why}: it loads from its start, and ` +
  (duration
    ? "a seek forward waits until it has loaded up to there."
    : "can be seeked within what has loaded.");
const WAIT_FORWARD = "Waiting for the clip to load up to there (it has no seek index).";

function plainError(err) {
  if (err.name === "DamagedChunk") return `This clip is damaged: ${err.message}. It plays up to the damage.`;
  if (err.name === "FetchFailed") return `This clip cannot be played: ${err.message}.`;
  if (err.name === "NoIdentityMatch") return "This clip is not encrypted to your key.";
  if (err.name === "MediaError" || err.name === "InvalidStateError") {
    return "The browser could not decode this clip's video.";
  }
  return `This clip cannot be played: ${err.message.replace(/\.$/, "")}.`;
}

function joinBytes(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
