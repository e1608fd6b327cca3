// MP4 boxes, headers only: what Media Source Extensions need from a fragmented MP4
// (where each top-level box ends, the init segment's codec and timescale, a fragment's
// decode time). Nothing here decodes video.

const MAX_BOX = 64 << 20; // a box past this is damage, not video

// The box starting at `at`: {kind, size, header}, or null if its header is not all there.
export function boxAt(bytes, at) {
  if (bytes.length - at < 8) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at);
  let size = view.getUint32(0);
  const kind = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
  let header = 8;
  if (size === 1) {
    if (bytes.length - at < 16) return null;
    size = view.getUint32(8) * 2 ** 32 + view.getUint32(12);
    header = 16;
  }
  if (size < header || size > MAX_BOX || !/^[\x20-\x7e]{4}$/.test(kind)) {
    throw new Error(`the clip's video is damaged (no valid MP4 box at byte ${at})`);
  }
  return { kind, size, header };
}

function* children(bytes, start, end) {
  for (let at = start; at < end; ) {
    const box = boxAt(bytes.subarray(0, end), at);
    if (box === null) return;
    yield { ...box, start: at + box.header, end: at + box.size };
    at += box.size;
  }
}

function child(bytes, parent, kind, skip = 0) {
  for (const box of children(bytes, parent.start + skip, parent.end)) if (box.kind === kind) return box;
  return null;
}

// The codec string ("avc1.64001f") and timescale of the first video track of an init
// segment (ftyp + moov).
export function initInfo(init) {
  const top = { start: 0, end: init.length };
  const moov = child(init, top, "moov");
  if (moov === null) throw new Error("the clip's video has no moov box");
  for (const trak of children(init, moov.start, moov.end)) {
    if (trak.kind !== "trak") continue;
    const mdia = child(init, trak, "mdia");
    const mdhd = mdia && child(init, mdia, "mdhd");
    const stsd = mdia && findPath(init, mdia, ["minf", "stbl", "stsd"]);
    if (!mdhd || !stsd) continue;
    const view = new DataView(init.buffer, init.byteOffset);
    const timescale = view.getUint32(mdhd.start + (init[mdhd.start] === 1 ? 20 : 12));
    const entry = child(init, stsd, "avc1", 8) ?? child(init, stsd, "avc3", 8);
    const avcC = entry && child(init, entry, "avcC", 78);
    const codec = avcC ? `${entry.kind}.${hex(init.subarray(avcC.start + 1, avcC.start + 4))}` : null;
    return { codec, timescale };
  }
  throw new Error("the clip has no video track");
}

function findPath(bytes, box, path) {
  for (const kind of path) {
    box = box && child(bytes, box, kind);
  }
  return box;
}

// The decode time in seconds of a fragment's moof (its traf's tfdt).
export function fragmentTime(moof, timescale) {
  const traf = child(moof, { start: 8, end: moof.length }, "traf");
  const tfdt = traf && child(moof, traf, "tfdt");
  if (!tfdt) return 0;
  const view = new DataView(moof.buffer, moof.byteOffset);
  const value =
    moof[tfdt.start] === 1
      ? view.getUint32(tfdt.start + 4) * 2 ** 32 + view.getUint32(tfdt.start + 8)
      : view.getUint32(tfdt.start + 4);
  return value / timescale;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

