// The viewer's player (watch.html). Everything it needs is in the <video>'s data
// attributes, written by the server with a fresh playback token. hls.js wherever Media
// Source Extensions exist; the browser's own HLS (Safari, iOS) otherwise, with the same
// URLs. A non-buyer's playlist ends at the preview boundary: when playback ends there,
// the paywall shows. A refused fetch (403: a purchase refunded mid-film) reads in words.

const video = document.getElementById("player");
const startBox = document.getElementById("start-box");
const startButton = document.getElementById("start");
const paywall = document.getElementById("paywall");
const errorBox = document.getElementById("player-error");
const coverage = () => document.getElementById("coverage");

const say = (message) => {
  if (!errorBox) return;
  errorBox.textContent = message;
  errorBox.hidden = false;
};

// What the test reads: when play was pressed and when the first frame played.
const timing = { pressedAt: null, playingAt: null, engine: null };
window.cinegatePlayer = timing;

if (video && video.dataset.src) {
  const d = video.dataset;
  const src = d.src;
  const start = Number(d.start) || 0;
  const preview = d.entitlement !== "full";
  let hls = null;

  if (window.Hls && window.Hls.isSupported()) {
    timing.engine = "hls.js";
    // At most 30 s ahead (hls.js would otherwise fill up to 60 MB, a whole film at low
    // bitrates): the server resumes 30 s before the last segment fetched
    // (RESUME_BACKOFF_SECONDS), and a refund is noticed within that much playing.
    hls = new window.Hls({ startPosition: start, maxBufferLength: 30, maxMaxBufferLength: 30 });
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      const status = data.response && data.response.code;
      // Refused (a refund, an ended account): hls.js would try the other renditions and
      // skip on; nothing more will be given with this token, so stop and say why.
      if (status === 403) {
        say(d.tRefunded);
        hls.stopLoad();
        video.pause();
      } else if (data.fatal) {
        say(`${d.tFailed} (${data.details})`);
      }
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    timing.hls = hls;
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    timing.engine = "native";
    video.src = src;
    video.addEventListener("loadedmetadata", () => {
      if (start > 0) video.currentTime = start;
    }, { once: true });
    video.addEventListener("error", () => {
      // Safari says nothing of the status; a refused segment is the likely cause past the
      // boundary of a film that was bought.
      say(video.error && video.error.code === 2 ? d.tRefunded : d.tFailed);
    });
  } else {
    say(d.tNoHls);
  }

  const play = () => {
    timing.pressedAt = performance.now();
    timing.playingAt = null;
    startBox.hidden = true;
    paywall.hidden = true;
    video.controls = true;
    video.play().catch(() => {
      // Refused without a gesture (autoplay): the button again.
      startBox.hidden = false;
      video.controls = false;
    });
  };
  startButton.addEventListener("click", play);

  video.addEventListener("playing", () => {
    if (timing.pressedAt !== null && timing.playingAt === null) timing.playingAt = performance.now();
  });

  // The server counts what it delivered: ask again when the viewer stops.
  const refresh = () => {
    const box = coverage();
    if (box) box.dispatchEvent(new Event("refresh"));
  };
  video.addEventListener("pause", refresh);
  video.addEventListener("ended", () => {
    refresh();
    if (preview && paywall) {
      video.controls = false;
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      paywall.hidden = false;
      const first = paywall.querySelector("button");
      if (first) first.focus();
    }
  });

  const replay = document.getElementById("replay");
  if (replay) {
    replay.addEventListener("click", () => {
      video.currentTime = 0;
      play();
    });
  }

  // Kakao Pay has a page for phones: the checkout picks it from this hint.
  const hint = document.getElementById("mobile-hint");
  if (hint) hint.value = window.matchMedia("(max-width: 700px)").matches ? "1" : "0";

  // Back from a payment: continue at once where the preview ended.
  if (d.autoplay === "1") play();
}
