// The test page's module: vault.js and player.js on `window` for the tests to drive,
// every Content-Security-Policy violation kept in `window.cspViolations`, every promise
// rejected unhandled in `window.unhandled`.
import * as vault from "/static/vault.js";
import * as player from "/static/player.js";

window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
window.unhandled = [];
window.addEventListener("unhandledrejection", (event) => {
  window.unhandled.push(String(event.reason?.stack ?? event.reason));
});
window.vault = vault;
window.player = player;
window.harnessReady = true;
