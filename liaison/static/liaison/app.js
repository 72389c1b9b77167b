// Automatic logoff: when the idle timeout passes without a request, leave the page so that
// nothing stays on screen; the server has ended the session by then (IdleLogoutMiddleware).
(function () {
  const body = document.body;
  const minutes = parseFloat(body.dataset.idleTimeout || "0");
  if (!minutes) return;
  let timer;
  function arm() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      const next = encodeURIComponent(window.location.pathname);
      window.location.assign(body.dataset.loginUrl + "?idle=1&next=" + next);
    }, minutes * 60 * 1000 + 5000);
  }
  arm();
  document.addEventListener("htmx:afterRequest", function (evt) {
    // Polling (progress bars) does not count as activity, on the server either.
    if (!evt.detail.requestConfig || !evt.detail.requestConfig.headers["X-Liaison-Poll"]) arm();
  });
})();
