// The Media Source Extensions side of the player: one MediaSource attached to a <video>
// and its one SourceBuffer. A SourceBuffer takes one change at a time, so each append and
// removal here is awaited; an append the browser cannot decode rejects with a MediaError.
//
//   const source = new VideoSource(video);
//   await source.attach();                 // the video now plays from it
//   source.addSourceBuffer(info.codec);    // the codec from the init segment (mp4.js)
//   await source.append(bytes, whenFull);  // ftyp + moov first, then moof + mdat pairs
//   await source.remove(cutsOutside(source.buffered, from, to, streamAt));
//   if (source.ready) source.end();        // all appended: the video plays to its end
//   source.detach();                       // let the video go

// Tried after the init segment's own codec string, if the browser does not take that:
// H.264 High 4.0, Main 3.1, Baseline 3.0.
const FALLBACK_CODECS = ["avc1.640028", "avc1.4d401f", "avc1.42e01e"];

export class VideoSource {
  constructor(video) {
    this.video = video;
    this.mediaSource = new MediaSource();
    this.objectUrl = URL.createObjectURL(this.mediaSource);
    this.sourceBuffer = null;
  }

  async attach() {
    const opened = once(this.mediaSource, "sourceopen");
    this.video.src = this.objectUrl;
    await opened;
  }

  detach() {
    if (this.video.src === this.objectUrl) {
      this.video.removeAttribute("src");
      this.video.load();
    }
    URL.revokeObjectURL(this.objectUrl);
  }

  // The SourceBuffer for H.264 in MP4, `codec` (an "avc1.…" string, or null) if the
  // browser plays it, else the first fallback it does. Throws an Error if none.
  addSourceBuffer(codec) {
    const playable = [codec, ...FALLBACK_CODECS].find(
      (c) => c && MediaSource.isTypeSupported(`video/mp4; codecs="${c}"`),
    );
    if (playable === undefined) throw new Error("this browser cannot play the clip's H.264 video");
    this.sourceBuffer = this.mediaSource.addSourceBuffer(`video/mp4; codecs="${playable}"`);
  }

  // Append `bytes`; if the browser's buffer is full (QuotaExceededError), `await
  // whenFull()` (which should remove some) and try once more.
  async append(bytes, whenFull) {
    for (let attempt = 0; ; attempt++) {
      try {
        const done = updated(this.sourceBuffer);
        this.sourceBuffer.appendBuffer(bytes);
        await done;
        return;
      } catch (err) {
        if (err.name !== "QuotaExceededError" || attempt > 0) throw err;
        await whenFull();
      }
    }
  }

  // Remove each [start, end] (seconds) of `cuts` from what is buffered.
  async remove(cuts) {
    for (const [start, end] of cuts) {
      const done = updated(this.sourceBuffer);
      this.sourceBuffer.remove(start, end);
      await done;
    }
  }

  // The TimeRanges buffered; undefined until the SourceBuffer is added.
  get buffered() {
    return this.sourceBuffer?.buffered;
  }

  set duration(seconds) {
    this.mediaSource.duration = seconds;
  }

  // Whether the stream can be ended now: open, and no append or removal under way.
  get ready() {
    return this.mediaSource.readyState === "open" && !this.sourceBuffer?.updating;
  }

  end() {
    this.mediaSource.endOfStream();
  }
}

// What to remove so that only [from, to] stays buffered (seconds, media time), as
// [[start, end], …] from `ranges` (TimeRanges, or undefined: nothing). A range ending
// at or before `streamAt` is not cut past `to`: the stream has just appended it.
export function cutsOutside(ranges, from, to, streamAt) {
  const cuts = [];
  for (let i = 0; i < (ranges?.length ?? 0); i++) {
    const [start, end] = [ranges.start(i), ranges.end(i)];
    if (start < from) cuts.push([start, Math.min(end, from)]);
    if (end > to && end > streamAt) cuts.push([Math.max(start, to), end]);
  }
  return cuts;
}

function updated(sourceBuffer) {
  return new Promise((resolve, reject) => {
    const ended = () => (failed ? reject(mediaError()) : resolve());
    let failed = false;
    sourceBuffer.addEventListener("error", () => (failed = true), { once: true });
    sourceBuffer.addEventListener("updateend", ended, { once: true });
  });
}

function mediaError() {
  const err = new Error("the browser could not decode the video");
  err.name = "MediaError";
  return err;
}

function once(target, name) {
  return new Promise((resolve) => target.addEventListener(name, resolve, { once: true }));
}
