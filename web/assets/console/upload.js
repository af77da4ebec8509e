// The film page's upload: tus-js-client against the console's tus endpoint
// (/admin/uploads, the session cookie, the CSRF header). Progress with bytes, speed and
// ETA; pause and resume; after a dropped connection or a reload, choosing the same file
// again resumes from the server's offset (the upload's URL is kept in localStorage by
// tus-js-client under the file's fingerprint — an address, not a credential). A refusal
// (422 not a film, 413 over the limit) is shown with the server's code and words.

const box = document.getElementById("upload");
const tus = window.tus;
if (box && tus) {
  const input = document.getElementById("upload-file");
  const start = document.getElementById("upload-start");
  const pause = document.getElementById("upload-pause");
  const resume = document.getElementById("upload-resume");
  const bar = document.getElementById("upload-progress");
  const percent = document.getElementById("upload-percent");
  const status = document.getElementById("upload-status");
  const errorBox = document.getElementById("upload-error");
  const resumable = document.getElementById("upload-resumable");
  const film = box.dataset.film;
  let upload = null;
  // Speed over this session's bytes only: a resumed upload starts counting afresh.
  let since = 0;
  let sinceBytes = 0;

  const size = (n) => {
    if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
    if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
    return `${n} B`;
  };
  const clock = (s) => {
    s = Math.max(0, Math.round(s));
    const m = Math.floor(s / 60);
    return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
  };
  const showError = (code, message) => {
    errorBox.replaceChildren();
    const p = document.createElement("p");
    p.textContent = message;
    errorBox.append(p);
    if (code) {
      const c = document.createElement("p");
      c.className = "code";
      const k = document.createElement("code");
      k.textContent = code;
      c.append("code: ", k);
      errorBox.append(c);
    }
    errorBox.hidden = false;
  };
  const buttons = (running) => {
    start.disabled = running || !input.files.length;
    pause.disabled = !running;
    resume.disabled = running || !upload;
  };

  // Unfinished uploads of this film that a reload left behind: say how far they got.
  const remembered = async () => {
    const all = await tus.defaultOptions.urlStorage.findAllUploads().catch(() => []);
    return all.filter((u) => u.metadata && u.metadata.film_id === film);
  };
  remembered().then((left) => {
    if (!left.length) return;
    const u = left[left.length - 1];
    resumable.textContent =
      `An upload of ${u.metadata.filename || "a file"} (${size(u.size || 0)}) was interrupted. ` +
      "Choose the same file to resume where it stopped.";
    resumable.hidden = false;
  });

  // The server's refusal in words: its JSON {"error":{code,message}}, or the status.
  const reason = (err) => {
    const res = err && err.originalResponse;
    if (!res) return { code: "", message: `The upload failed: ${err && err.message ? err.message : err}` };
    let code = "";
    let message = `The server answered ${res.getStatus()}.`;
    try {
      const body = JSON.parse(res.getBody() || "{}");
      if (body.error) {
        code = body.error.code || "";
        message = body.error.message || message;
      }
    } catch (_) { /* not JSON: keep the status */ }
    return { code, message, status: res.getStatus() };
  };

  const forget = async () => {
    if (!upload) return;
    const previous = await upload.findPreviousUploads().catch(() => []);
    for (const p of previous) await upload.options.urlStorage.removeUpload(p.urlStorageKey).catch(() => {});
  };

  input.addEventListener("change", () => {
    upload = null;
    errorBox.hidden = true;
    buttons(false);
  });

  start.addEventListener("click", async () => {
    const file = input.files[0];
    if (!file) return;
    errorBox.hidden = true;
    upload = new tus.Upload(file, {
      endpoint: box.dataset.endpoint,
      chunkSize: Number(box.dataset.chunkSize) || 16 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      metadata: { film_id: film, filename: file.name },
      headers: { "X-Requested-With": "cinegate" },
      removeFingerprintOnSuccess: true,
      onProgress(sent, total) {
        const pct = total ? Math.floor((sent / total) * 100) : 0;
        bar.value = pct;
        bar.textContent = `${pct}%`;
        percent.textContent = `${pct}%`;
        const secs = (performance.now() - since) / 1000;
        const speed = secs > 0.2 ? (sent - sinceBytes) / secs : 0;
        const eta = speed > 0 ? clock((total - sent) / speed) : "…";
        status.textContent = `${size(sent)} of ${size(total)} · ${speed ? `${size(speed)}/s` : "…"} · ${eta} left`;
        box.dataset.offset = String(sent);
      },
      onSuccess() {
        bar.value = 100;
        percent.textContent = "100%";
        status.textContent = "Uploaded. The film is queued for packaging.";
        resumable.hidden = true;
        upload = null;
        // Done with this file: a new upload starts from choosing one.
        input.value = "";
        buttons(false);
        // The packaging box now has a job to follow.
        if (window.htmx) {
          window.htmx.ajax("GET", `/admin/films/${film}/packaging?poll=0`, { target: "#packaging", swap: "outerHTML" });
        }
      },
      async onError(err) {
        const r = reason(err);
        // A refusal is final: nothing is left on the server, so forget the upload's URL
        // (before saying so, so that what the page shows is what is stored).
        if (r.status && r.status >= 400 && r.status < 500) {
          await forget();
          upload = null;
          bar.value = 0;
          bar.textContent = "0%";
          percent.textContent = "0%";
        }
        showError(r.code, r.message);
        status.textContent = "The upload stopped.";
        buttons(false);
      },
    });
    const previous = await upload.findPreviousUploads().catch(() => []);
    if (previous.length) {
      upload.resumeFromPreviousUpload(previous[0]);
      status.textContent = "Resuming the interrupted upload…";
    }
    since = performance.now();
    sinceBytes = 0;
    resumable.hidden = true;
    upload.start();
    buttons(true);
  });

  pause.addEventListener("click", () => {
    if (!upload) return;
    upload.abort();
    status.textContent = `Paused at ${percent.textContent}.`;
    buttons(false);
  });

  resume.addEventListener("click", () => {
    if (!upload) return;
    since = performance.now();
    sinceBytes = Number(box.dataset.offset || 0);
    upload.start();
    buttons(true);
  });
}
