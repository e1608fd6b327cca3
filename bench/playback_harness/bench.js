// The playback bench's page module (bench/web_playback_bench.py drives it).
//
// Each measurement runs the same steps for both sides: "encrypted" is what the owner's
// pages do (vault.js and player.js: ciphertext by Range requests, decrypted here, into
// Media Source Extensions; thumbnails decrypted into blob: URLs), "plain" is the
// browser's own <video src> and <img src> on the same MP4 and JPEGs in plaintext.
// Times are performance.now() milliseconds. A frame counts as shown when the video
// element presents it (requestVideoFrameCallback); first frame also waits for 'playing'.
import * as vault from "/static/vault.js";
import * as player from "/static/player.js";

let keyholder = null;
let video = null;
let handle = null;
const states = [];

function once(target, name) {
  return new Promise((resolve) => target.addEventListener(name, resolve, { once: true }));
}

// The next frame the video presents: {mediaTime, presentedFrames} (rVFC's metadata).
function nextFrame(element) {
  return new Promise((resolve) => element.requestVideoFrameCallback((now, meta) => resolve(meta)));
}

// Rejects as soon as the video element or the player says it failed.
function failure(element) {
  return new Promise((_, reject) => {
    element.addEventListener("error", () => reject(new Error(`video error ${element.error?.message}`)));
    states.failed = (state) => reject(new Error(`player: ${state.error}`));
  });
}

async function unlock(identityText) {
  keyholder = await vault.Keyholder.fromIdentity(identityText);
}

async function firstFrame(side, urls) {
  video = document.createElement("video");
  video.muted = true;
  document.getElementById("stage").replaceChildren(video);
  const failed = failure(video);
  const start = performance.now();
  const shown = nextFrame(video);
  const playing = once(video, "playing");
  if (side === "encrypted") {
    handle = await player.playClip(video, {
      fileUrl: urls.file,
      indexUrl: urls.index,
      duration: urls.duration ? Number(urls.duration) : null, // as app.js passes data-duration
      keyholder,
      onState: (state) => {
        states.push(state);
        if (state.phase === "error") states.failed?.(state);
      },
    });
  } else {
    video.src = urls.plain;
  }
  video.play().catch(() => {}); // a failure shows as an 'error' event
  const [meta] = await Promise.race([Promise.all([shown, playing]), failed]);
  return {
    ms: performance.now() - start,
    readyState: video.readyState,
    mediaTime: meta.mediaTime,
    duration: video.duration,
    blob: video.src.startsWith("blob:"),
  };
}

// Seek the playing video to `fraction` of its duration: when 'seeked' fired, and when a
// frame within half a second of the target was presented.
async function seek(fraction) {
  const target = video.duration * fraction;
  const failed = failure(video);
  const start = performance.now();
  const seeked = once(video, "seeked").then(() => performance.now() - start);
  video.currentTime = target;
  const seekedMs = await Promise.race([seeked, failed]);
  let meta = await Promise.race([nextFrame(video), failed]);
  while (Math.abs(meta.mediaTime - target) > 0.5) meta = await Promise.race([nextFrame(video), failed]);
  return { ms: performance.now() - start, seekedMs, target, mediaTime: meta.mediaTime, readyState: video.readyState };
}

// Let the video play until its time reaches `seconds`.
async function playTo(seconds) {
  const failed = failure(video);
  while (video.currentTime < seconds) await Promise.race([once(video, "timeupdate"), failed]);
  return video.currentTime;
}

function stop() {
  handle?.close();
  handle = null;
  video?.pause();
  video?.removeAttribute("src");
  video?.load();
  video = null;
}

// Every thumbnail fetched, (decrypted,) decoded and in the grid.
async function thumbnails(side, urls) {
  const grid = document.getElementById("grid");
  const images = urls.map(() => Object.assign(new Image(), { width: 160, alt: "" }));
  grid.replaceChildren(...images);
  const start = performance.now();
  await Promise.all(
    images.map(async (img, n) => {
      if (side === "encrypted") await player.showThumbnail(img, urls[n], keyholder);
      else img.src = urls[n];
      await img.decode();
    }),
  );
  return { ms: performance.now() - start, widths: images.map((img) => img.naturalWidth) };
}

// The whole clip read and decrypted by ClipReader, 16 chunks a request (as the player
// reads): {ms, bytes} of plaintext.
async function decryptAll(url) {
  const start = performance.now();
  const reader = await vault.ClipReader.open(url, keyholder);
  let bytes = 0;
  for (let first = 0; first < reader.chunkCount; first += 16) {
    for (const chunk of await reader.readChunks(first, 16)) bytes += chunk.length;
  }
  return { ms: performance.now() - start, bytes };
}

window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
window.bench = { unlock, firstFrame, playTo, seek, stop, thumbnails, decryptAll, states };
window.benchReady = true;
