// Who is using the page: the sign-in form (shown when GET /api/auth/me answers 401, or when a session
// ends), and the account menu in the top bar (name, API keys, sign out). With auth off neither shows.

import { ApiError, getJSON, sendJSON, setCsrfToken } from "./api.js";
import { dismissable } from "./widgets.js";

const NOTICE_KEY = "ragchat.notice";

/**
 * Drives `#login-view` and `#account`. `onSignedIn(user)` runs after every sign-in (and at start when the
 * session cookie is still good), `onSignedOut()` whenever the form shows, `onOpenKeys()` from the menu.
 */
export class Auth {
  constructor({ loginView, account, onSignedIn, onSignedOut, onOpenKeys }) {
    this.view = loginView;
    this.account = account;
    this.onSignedIn = onSignedIn;
    this.onSignedOut = onSignedOut;
    this.user = null;
    this.form = loginView.querySelector("#login-form");
    this.username = loginView.querySelector("#login-username");
    this.password = loginView.querySelector("#login-password");
    this.submit = loginView.querySelector("#login-submit");
    this.error = loginView.querySelector("#login-error");
    this.notice = loginView.querySelector("#login-notice");
    this.sso = loginView.querySelector("#login-sso");
    this.methods = { password: true, sso: false };
    this.sso.addEventListener("click", () => window.location.assign("/api/auth/oidc/login"));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn();
    });
    dismissable(account);
    account.querySelector("#open-keys").addEventListener("click", () => {
      account.open = false;
      onOpenKeys();
    });
    account.querySelector("#sign-out").addEventListener("click", () => this.signOut());
  }

  /** Ask the server who this is: signs in from the session cookie, or shows the form. */
  async start() {
    let me = null;
    try {
      me = await getJSON("/api/auth/me");
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) {
        this.showForm(`${error.message} Reload the page to try again.`);
        return;
      }
    }
    const notice = takeSsoError() || takeNotice();
    if (me) this.signedIn(me);
    else this.showForm(notice);
  }

  /** The session ended behind the page's back (expired, or the account was disabled). */
  ended() {
    // Only once: later 401s of requests already on their way must not wipe what is being typed.
    if (!this.user || this.user.auth !== "session" || document.body.dataset.view !== "app") return;
    this.showForm("Your session has ended. Sign in again to go on where you left off.");
  }

  /** Which ways to sign in this server offers (GET /api/auth/methods): the form, an SSO button, or both. */
  async loadMethods() {
    try {
      this.methods = await getJSON("/api/auth/methods");
    } catch {
      this.methods = { password: true, sso: false };
    }
    this.sso.hidden = !this.methods.sso;
    for (const part of this.form.querySelectorAll(".field, #login-submit")) part.hidden = !this.methods.password;
  }

  showForm(notice = "") {
    this.loadMethods();
    setCsrfToken(null);
    this.account.hidden = true;
    this.account.open = false;
    this.notice.textContent = notice;
    this.setError("");
    this.password.value = "";
    document.body.dataset.view = "login";
    this.onSignedOut();
    (this.username.value ? this.password : this.username).focus();
  }

  async signIn() {
    const username = this.username.value.trim();
    const password = this.password.value;
    if (!username || !password) {
      this.setError("Enter your username and your password.");
      (username ? this.password : this.username).focus();
      return;
    }
    this.submit.disabled = true;
    this.setError("");
    try {
      const answer = await sendJSON("POST", "/api/auth/login", { username, password });
      this.password.value = "";
      this.notice.textContent = "";
      this.signedIn(answer);
    } catch (error) {
      this.setError(loginErrorText(error));
      this.password.select();
      this.password.focus();
    } finally {
      this.submit.disabled = false;
    }
  }

  /**
   * `answer` is GET /api/auth/me's or POST /api/auth/login's body: `{user, csrf_token}`, the user being
   * `{name, role, groups, auth}` with `auth` one of "session", "key", "off".
   */
  signedIn(answer) {
    const user = answer.user;
    if (answer.login) this.methods = answer.login;
    setCsrfToken(answer.csrf_token);
    this.user = user;
    const showAccount = user.auth !== "off";
    this.account.hidden = !showAccount;
    if (showAccount) {
      this.account.querySelector("#account-name").textContent = user.name;
      this.account.querySelector(".avatar").textContent = (user.name || "?").slice(0, 1).toUpperCase();
      this.account.querySelector("#account-who").textContent = user.name;
      this.account.querySelector("#account-role").textContent = user.role === "admin" ? "(admin)" : "";
      this.account.querySelector("summary").setAttribute("aria-label", `Account: ${user.name}. Show menu`);
      this.account.querySelector("#open-keys").hidden = user.auth !== "session";
      this.account.querySelector("#sign-out").hidden = user.auth !== "session";
    }
    document.body.dataset.view = "app";
    this.onSignedIn(user);
  }

  /** End the session; the page reloads, so nothing of it stays on screen. */
  async signOut() {
    try {
      if (this.methods.sso) {
        // Also end the session at the identity provider, whose page then returns here.
        const { redirect } = await sendJSON("POST", "/api/auth/oidc/logout");
        storeNotice("You have signed out.");
        window.location.assign(redirect);
        return;
      }
      await sendJSON("POST", "/api/auth/logout");
      storeNotice("You have signed out.");
    } catch (error) {
      storeNotice(`Signing out may not have finished (${error.message}); sign in and out again to be sure.`);
    }
    window.location.reload();
  }

  setError(text) {
    this.error.textContent = text;
    for (const input of [this.username, this.password]) input.setAttribute("aria-invalid", String(Boolean(text)));
  }
}

function loginErrorText(error) {
  if (error.status === 401) return "Wrong username or password.";
  if (error.status === 429) {
    const wait = error.retryAfter === null ? "a while" : formatWait(error.retryAfter);
    return `Too many sign-in attempts. Wait ${wait}, then try again.`;
  }
  return error.message;
}

function formatWait(seconds) {
  if (seconds < 90) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minutes`;
}

/** Why a single sign-on failed: the callback sends the browser to /#sso_error=CODE&message=TEXT. */
function takeSsoError() {
  const fields = new URLSearchParams(window.location.hash.slice(1));
  if (!fields.has("sso_error")) return "";
  history.replaceState(null, "", window.location.pathname + window.location.search);
  return `Single sign-on failed: ${fields.get("message") || fields.get("sso_error")}.`;
}

/** A line for the sign-in form after the page reloads (e.g. "You have signed out."). */
function storeNotice(text) {
  try {
    sessionStorage.setItem(NOTICE_KEY, text);
  } catch {
    // storage disabled: the form shows without the line
  }
}

function takeNotice() {
  try {
    const text = sessionStorage.getItem(NOTICE_KEY) || "";
    sessionStorage.removeItem(NOTICE_KEY);
    return text;
  } catch {
    return "";
  }
}
