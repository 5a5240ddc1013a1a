// The API token of this browser tab: asked for in a login dialog when the API answers 401, kept in
// sessionStorage (this tab only, gone when it closes), never in a file the server hands out.

const KEY = "vectorflow.api-token";
let pending = null;
// Where the token lives when sessionStorage refuses it (a private window may).
let memory = "";

// `make run` prints the dashboard's address with the token in the fragment (#token=...), which
// never reaches a server: taken into this tab's session, then dropped from the address bar.
(function takeTokenFromFragment() {
  const m = /^#token=([^&]+)/.exec(window.location.hash);
  if (!m) return;
  store(decodeURIComponent(m[1]));
  history.replaceState(null, "", window.location.pathname + window.location.search);
})();

/** The token entered in this tab, or "". */
export function token() {
  try {
    return sessionStorage.getItem(KEY) || "";
  } catch {
    return "";
  }
}

function store(value) {
  try {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage refused (private mode): the token lasts as long as the page.
  }
  memory = value;
}

/** The token to send: the stored one, or the one entered since the page loaded. */
export function currentToken() {
  return token() || memory;
}

/**
 * WebSocket subprotocols that carry the token (browsers cannot set headers on a WebSocket):
 * the socket's own protocol (`vectorflow.frames`, `vectorflow.events`), which the API picks, and
 * `bearer.<token>`.
 */
export function socketProtocols(protocol = "vectorflow.frames") {
  const t = currentToken();
  return t ? [protocol, `bearer.${t}`] : [];
}

/**
 * Shows the login dialog (once, however many requests were refused) and resolves when a token
 * was entered. `wrong`: the token sent was refused, so it is forgotten and the dialog says so.
 */
export function askForToken(wrong) {
  if (wrong) store("");
  if (pending) return pending;
  const dialog = document.getElementById("login");
  const input = document.getElementById("login-token");
  const error = document.getElementById("login-error");
  error.textContent = wrong ? "That token was not accepted." : "";
  error.hidden = !wrong;
  input.value = "";
  pending = new Promise((resolve) => {
    const form = document.getElementById("login-form");
    const done = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) {
        error.textContent = "Enter the API token (VF_API_TOKEN).";
        error.hidden = false;
        return;
      }
      form.removeEventListener("submit", done);
      store(value);
      if (dialog.open) dialog.close();
      pending = null;
      resolve(value);
    };
    form.addEventListener("submit", done);
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return pending;
}
