// The film page's preview player: the whole film through the same playback token any
// viewer gets (an administrator is entitled to everything). hls.js wherever Media Source
// Extensions exist (it reports fatal errors in words, and behaves the same in every
// browser); the browser's own HLS where there is no MSE (Safari on older iOS).

const video = document.getElementById("player");
const errorBox = document.getElementById("player-error");
const fail = (message) => {
  if (!errorBox) return;
  errorBox.textContent = message;
  errorBox.hidden = false;
};

if (video && video.dataset.src) {
  const src = video.dataset.src;
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls({ maxBufferLength: 30 });
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) fail(`The preview could not be played (${data.type}: ${data.details}).`);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    window.consolePlayer = hls;
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = src;
  } else {
    fail("This browser cannot play HLS.");
  }
  video.addEventListener("error", () => {
    if (video.error) fail(`The preview could not be played (media error ${video.error.code}).`);
  });
}
