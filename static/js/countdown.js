// Counts down to the access token's expiry on the session inspector.
// The expiry comes from the page (data-expires, Unix seconds): this script
// never sees a token, and could not read the HttpOnly cookies if it tried.
(function () {
  var el = document.getElementById("countdown");
  if (!el) return;
  var expires = Number(el.dataset.expires) * 1000;
  function tick() {
    var left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    el.textContent = left > 0 ? left + " s" : "expired: the next request refreshes it";
  }
  tick();
  setInterval(tick, 1000);
})();
