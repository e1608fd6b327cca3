// A clip's thumbnail, <id>.jpg.age (a JPEG inside age, encrypted like the clip), shown
// in an <img> once this page has decrypted it.
//
//   await showThumbnail(img, "/clips/<id>/thumbnail", keyholder);  // owner.js's keyholder

const imageUrls = new WeakMap(); // each <img>'s blob: URL, revoked when it gets another

// Fetch the encrypted image at `url`, decrypt it with `keyholder` and show it in `img`
// as a blob: URL (the one it had before is revoked); resolves to that URL. Rejects with
// an Error saying what failed (the doorbell's status, or the keyholder's own error:
// NoIdentityMatch when the picture is not encrypted to this owner).
export async function showThumbnail(img, url, keyholder) {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`the thumbnail could not be fetched (the doorbell answered ${response.status})`);
  }
  const jpeg = await keyholder.decryptFile(new Uint8Array(await response.arrayBuffer()));
  const blobUrl = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
  const old = imageUrls.get(img);
  imageUrls.set(img, blobUrl);
  img.src = blobUrl;
  if (old) URL.revokeObjectURL(old);
  return blobUrl;
}
