// A clip's seek index, <id>.idx.age (age-encrypted like the clip, written by the doorbell
// once the clip ends): {"version": 1, "size", "init", "keyframes": [[seconds, offset], …]},
// `size` the clip's plaintext bytes, each keyframe its presentation time in seconds from
// the clip's start and the byte offset in the plaintext where its fragment (moof) starts,
// offsets rising. The player seeks by it: from the keyframe at or before the time sought.
//
//   const index = await fetchIndex(url, keyholder, reader);  // null: the clip has none (404)
//   const { offset, time, until } = keyframeFor(index.keyframes, t, origin);

// The checked index of the clip `reader` opened (clip_reader.js's ClipReader), or null if
// the doorbell has none (404). Throws an Error whose message says why it cannot be used
// (another status, not decryptable, not a version 1 index, another recording's).
export async function fetchIndex(url, keyholder, reader) {
  const response = await fetch(url);
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`the doorbell answered ${response.status}`);
  const bytes = await keyholder.decryptFile(new Uint8Array(await response.arrayBuffer()));
  return checkedIndex(JSON.parse(new TextDecoder().decode(bytes)), reader);
}

// `index` as parsed, checked against the clip: its keyframes past the clip's end (a
// clip cut short) are dropped. Throws an Error saying what is wrong with it.
export function checkedIndex(index, reader) {
  const ok =
    index?.version === 1 &&
    Number.isInteger(index.size) &&
    Array.isArray(index.keyframes) &&
    index.keyframes.length > 0 &&
    index.keyframes.every(
      (k, i, all) =>
        Array.isArray(k) &&
        Number.isFinite(k[0]) &&
        Number.isInteger(k[1]) &&
        (i === 0 || k[1] > all[i - 1][1]),
    );
  if (!ok) throw new Error("it is not a version 1 index");
  if (!reader.cut && index.size !== reader.plaintextSize) throw new Error("it belongs to another recording");
  const keyframes = index.keyframes.filter((k) => k[1] < reader.plaintextSize);
  if (keyframes.length === 0) throw new Error("it has no keyframe inside the clip");
  return { ...index, keyframes };
}

// Where to stream from to play media time `t` (seconds; `origin` the media time of the
// index's time 0): the keyframe at or before t (the first if none), as {offset (its
// byte), time (its media time), until (the next keyframe's byte, or null: the last)}.
export function keyframeFor(keyframes, t, origin) {
  let pick = keyframes[0];
  for (const keyframe of keyframes) if (keyframe[0] + origin <= t + 1e-3) pick = keyframe;
  const after = keyframes.find((keyframe) => keyframe[1] > pick[1]);
  return { offset: pick[1], time: pick[0] + origin, until: after ? after[1] : null };
}
