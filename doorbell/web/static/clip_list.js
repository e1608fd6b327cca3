// The clips page keeps itself up to date from the event stream: as a clip starts, a card
// "Recording now — bell at 14:02" (with the way to the live view) comes in at the top;
// as it ends, that card becomes the finished clip's, as the page would have shown it.
// Only where the page's own filters would list the clip: the newest page (no "Older
// clips" cursor), the trigger and the day chosen. Cards are built with DOM calls from
// the event's fields, never from HTML.
//
//   const card = recordingStarted(data);   // the event's data; null: not for this page
//   const card = clipFinished(data);       // the finished card, or null
//   stillRecording(ids);                   // the stream (re)connected: the others ended
//   forgetRecordings();                    // the session ended: claim nothing live
//
// A recording card is matched to its finished clip by id; when the stream did not say
// the id, by trigger, oldest first.

// Whether the page at `url` lists a clip of `trigger` on `day` (the device's local day).
export function listed({ trigger, day }, url = new URL(location.href)) {
  const query = url.searchParams;
  if (query.get("before")) return false;
  if (query.get("trigger") && query.get("trigger") !== trigger) return false;
  if (query.get("day") && query.get("day") !== day) return false;
  return true;
}

function list() {
  return document.body.dataset.page === "clips" ? document.getElementById("clips") : null;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function trigger(name) {
  return element("span", { class: `trigger ${name}` }, name);
}

export function recordingCard(data) {
  const words = `Recording now — ${data.trigger} at ${data.time}`;
  const picture = data.id
    ? element("img", {
      "data-thumbnail": `/clips/${data.id}/thumbnail`, alt: words, width: "320", height: "180",
    })
    : element("span", { class: "placeholder" }, "Recording…");
  return element(
    "li", { class: "recording", "data-recording": data.id || "", "data-trigger": data.trigger },
    element("a", { href: "/live", class: "picture" }, picture),
    element("div", { class: "meta" }, trigger(data.trigger),
      element("span", { class: "now" }, words)),
    element("div", { class: "actions" }, element("a", { class: "button", href: "/live" }, "Watch live"),
      ...(data.id ? [element("a", { class: "button play", href: `/clips/${data.id}` }, "Play from the start")] : [])),
  );
}

export function finishedCard(data) {
  const meta = element("div", { class: "meta" }, trigger(data.trigger), element("span", {}, data.when));
  if (data.time_uncertain) {
    const why = "time uncertain: recorded before the clock was set";
    meta.append(element("span", { class: "uncertain", title: why }, "time uncertain"));
  }
  meta.append(element("span", {}, data.duration || ""));
  if (data.partial) {
    const why = "the doorbell stopped while recording: it plays to its last whole second";
    meta.append(element("span", { class: "partial", title: why }, "cut short"));
  }
  return element(
    "li", { class: "clip", "data-clip": data.id },
    element("a", { href: `/clips/${data.id}` }, element("img", {
      "data-thumbnail": `/clips/${data.id}/thumbnail`, alt: `clip at ${data.when}`, width: "320", height: "180",
    })),
    meta,
    element("div", { class: "actions" },
      element("button", { type: "button", class: "keep", "data-keep": String(Boolean(data.keep)) }, data.keep ? "Kept" : "Keep"),
      element("button", { type: "button", class: "delete" }, "Delete")),
  );
}

function atTop(clips, card) {
  document.querySelector("p.empty")?.remove();
  clips.prepend(card);
}

export function recordingStarted(data) {
  const clips = list();
  if (!clips || !listed(data)) return null;
  if (data.id && clips.querySelector(`[data-recording="${data.id}"], [data-clip="${data.id}"]`)) return null;
  const card = recordingCard(data);
  atTop(clips, card);
  return card;
}

function recordingOf(clips, data) {
  const byId = clips.querySelector(`li.recording[data-recording="${data.id}"]`);
  if (byId) return byId;
  const unnamed = [...clips.querySelectorAll('li.recording[data-recording=""]')];
  return unnamed.reverse().find((card) => card.dataset.trigger === data.trigger) || null;
}

export function clipFinished(data) {
  const clips = list();
  if (!clips) return null;
  const recording = recordingOf(clips, data);
  if (!listed(data) || clips.querySelector(`[data-clip="${data.id}"]`)) {
    recording?.remove();
    return null;
  }
  const card = finishedCard(data);
  if (recording) recording.replaceWith(card);
  else {
    const newest = clips.querySelector("li.clip");
    if (newest) newest.before(card);
    else atTop(clips, card);
  }
  return card;
}

export function stillRecording(ids) {
  for (const card of document.querySelectorAll("li.recording")) {
    if (!ids.includes(card.dataset.recording)) card.remove();
  }
}

export function forgetRecordings() {
  for (const card of document.querySelectorAll("li.recording")) card.remove();
}
