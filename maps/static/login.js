// The sign-in page: POST /token (which sets the HttpOnly cookie), then back to where we were
// (data-next, already checked by the server; checked again here: this site's paths only).
(function () {
  "use strict";
  var form = document.getElementById("login");
  var error = document.getElementById("error");

  function target() {
    var next = form.dataset.next || "/";
    if (next.charAt(0) !== "/" || next.charAt(1) === "/" || /[\\\u0000-\u001f]/.test(next)) {
      return "/";
    }
    try {
      var url = new URL(next, window.location.origin);
      if (url.origin === window.location.origin) { return url.pathname + url.search + url.hash; }
    } catch (e) { /* not a URL: home */ }
    return "/";
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    error.textContent = "";
    fetch("/token", {method: "POST", body: new URLSearchParams(new FormData(form)),
                     credentials: "same-origin"})
      .then(function (r) {
        if (r.ok) { window.location.assign(target()); return null; }
        return r.json().then(function (p) {
          error.textContent = r.status === 401 ? "用户名或密码错误，或账户已停用" :
            (p.detail || ("登录失败 " + r.status));
        });
      })
      .catch(function () { error.textContent = "无法连接服务器，请稍后再试"; });
  });
})();
