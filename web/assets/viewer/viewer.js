// The viewer app's shared script (an ES module: the CSP allows no inline script).

// A sign-in link carries its one-time token in the query string: take it out of the
// address bar (and the history) as soon as the page has it.
const url = new URL(location.href);
if (url.searchParams.has("token")) {
  url.searchParams.delete("token");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
}

// A new action clears the answer to the last one; polls (GETs) leave it.
document.addEventListener("htmx:beforeRequest", (evt) => {
  const flash = document.getElementById("flash");
  if (flash && evt.detail.requestConfig && evt.detail.requestConfig.verb !== "get") flash.innerHTML = "";
});
document.addEventListener("htmx:sendError", () => {
  const flash = document.getElementById("flash");
  if (!flash) return;
  const box = document.createElement("div");
  box.className = "error";
  box.setAttribute("role", "alert");
  box.textContent = document.documentElement.lang === "ko"
    ? "서버에 연결할 수 없습니다. 연결을 확인하고 다시 시도하세요."
    : "The server could not be reached. Check the connection and try again.";
  flash.replaceChildren(box);
});

// Installable app: the service worker caches the app shell only (see /sw.js).
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(() => {});
}
