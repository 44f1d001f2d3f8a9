// Shared helpers of the console pages: the CSRF header on unsafe requests.
(function () {
  "use strict";
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrfToken = meta ? meta.content : "";
  const unsafe = new Set(["POST", "PUT", "PATCH", "DELETE"]);

  // fetch() with the session's CSRF token on every unsafe method.
  function consoleFetch(url, options) {
    const init = Object.assign({ credentials: "same-origin" }, options || {});
    const method = (init.method || "GET").toUpperCase();
    if (unsafe.has(method)) {
      init.headers = Object.assign({}, init.headers || {}, { "X-CSRF-Token": csrfToken });
    }
    return fetch(url, init);
  }

  // htmx, where a page loads it, sends the same header.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken;
  });

  window.diptych = { fetch: consoleFetch, csrfToken: csrfToken };
})();
