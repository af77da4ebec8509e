// The account page: linking a provider. `POST /auth/{provider}/link` answers the
// provider's authorize URL (fetch cannot follow a redirect off the site), so the page
// asks for it with the session cookie and the CSRF header, then goes there.

function showError(message, code) {
  const flash = document.getElementById("flash");
  if (!flash) return;
  const box = document.createElement("div");
  box.className = "error";
  box.setAttribute("role", "alert");
  const text = document.createElement("p");
  text.textContent = message;
  box.append(text);
  if (code) {
    const c = document.createElement("p");
    c.className = "code";
    c.textContent = code;
    box.append(c);
  }
  flash.replaceChildren(box);
}

for (const button of document.querySelectorAll("button[data-link]")) {
  button.addEventListener("click", async () => {
    const provider = button.dataset.link;
    button.disabled = true;
    try {
      const answer = await fetch(`/auth/${encodeURIComponent(provider)}/link?return_to=/account`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-Requested-With": "cinegate", Accept: "application/json" },
      });
      const body = await answer.json().catch(() => ({}));
      if (answer.ok && body.authorize_url) {
        location.assign(body.authorize_url);
        return;
      }
      const err = body.error || {};
      showError(err.message || `HTTP ${answer.status}`, err.code);
    } catch {
      showError(document.documentElement.lang === "ko"
        ? "서버에 연결할 수 없습니다. 연결을 확인하고 다시 시도하세요."
        : "The server could not be reached. Check the connection and try again.");
    }
    button.disabled = false;
  });
}
