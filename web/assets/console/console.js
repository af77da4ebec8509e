// The console's own script: an ES module loaded from /assets (the CSP allows no inline
// script). It only does what htmx attributes cannot.

// A sign-in link carries its one-time token in the query string: take it out of the
// address bar (and so out of the history) as soon as the page has read it.
const url = new URL(location.href);
if (url.searchParams.has("token")) {
  url.searchParams.delete("token");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
}

// htmx asks before destructive actions with `hx-confirm`; the text names what is lost.
// Errors htmx could not show (network down) still reach the admin in words.
document.addEventListener("htmx:sendError", () => {
  const flash = document.getElementById("flash");
  if (flash) {
    flash.innerHTML = "";
    const box = document.createElement("div");
    box.className = "error";
    box.setAttribute("role", "alert");
    box.textContent = "The server could not be reached. Check the connection and try again.";
    flash.append(box);
  }
});
// A new action clears the answer to the last one (polls, which are GETs, leave it).
document.addEventListener("htmx:beforeRequest", (evt) => {
  const flash = document.getElementById("flash");
  if (flash && evt.detail.requestConfig && evt.detail.requestConfig.verb !== "get") flash.innerHTML = "";
});
