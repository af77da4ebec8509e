// The viewer app's service worker: it keeps the app shell (styles, scripts, icons) for
// offline starts and never touches anything else — no page, no API answer, and above all
// no playlist, key or segment (/hls/…): those are behind a token, counted by the server,
// and must always come from it.
const SHELL = "cinegate-shell-v1";
const SHELL_FILES = [
  "/assets/viewer/viewer.css",
  "/assets/viewer/viewer.js",
  "/assets/vendor/htmx.min.js",
  "/assets/vendor/hls.min.js",
  "/assets/viewer/icon.svg",
  "/assets/viewer/icon-192.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.addAll(SHELL_FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  // Only the shell's own files, fetched with GET from this origin; everything else goes
  // to the network untouched.
  if (event.request.method !== "GET" || url.origin !== location.origin || !SHELL_FILES.includes(url.pathname)) {
    return;
  }
  // Network first (a new binary brings new files), the cache when offline.
  event.respondWith(
    fetch(event.request)
      .then((res) => {
        const copy = res.clone();
        if (res.ok) caches.open(SHELL).then((c) => c.put(event.request, copy));
        return res;
      })
      .catch(() => caches.match(event.request)),
  );
});
