// Sign in: check the key against the API, keep it in this tab's session storage, go back.
"use strict";

(() => {
  const { api, setKey, problemText, root } = Atelier;
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const params = new URLSearchParams(location.search);
  const next = params.get("next") || "";
  // Only a path of this UI: never send a person to another site after signing in.
  const target = next.startsWith(`${root}/ui/`) && !next.startsWith("//") ? next : `${root}/ui/`;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const value = document.getElementById("key").value.trim();
    setKey(value);
    try {
      await api("/api/v1/jobs?limit=1", { noRedirect: true });
      location.assign(target);
    } catch (failure) {
      setKey(null);
      error.textContent = failure.status === 401 ? "That key is not valid (or was revoked)." : problemText(failure);
      error.hidden = false;
    }
  });
  document.getElementById("key").focus();
})();
