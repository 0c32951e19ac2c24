// The attacker page's script: each attempt marks its requests with a random
// probe, then asks this origin's /report what ChangeBank saw of them.
"use strict";
(() => {
  const app = document.body.dataset.app;
  const probe = () => Array.from(crypto.getRandomValues(new Uint8Array(12)), b => b.toString(16).padStart(2, "0")).join("");
  const wait = ms => new Promise(r => setTimeout(r, ms));
  const withProbe = (path, id) => app + path + "?probe=" + id;

  // post submits a form into the hidden frame, as a CSRF page would.
  function post(path, id, fields) {
    return new Promise(resolve => {
      const sink = document.getElementById("sink");
      const form = document.createElement("form");
      form.method = "post"; form.action = withProbe(path, id); form.target = "sink";
      for (const [k, v] of Object.entries(fields)) {
        const input = document.createElement("input");
        input.type = "hidden"; input.name = k; input.value = v; form.append(input);
      }
      document.body.append(form);
      sink.addEventListener("load", () => resolve(""), {once: true});
      setTimeout(() => resolve(""), 4000);
      form.submit();
      form.remove();
    });
  }

  const tries = {
    "form-post": id => post("/make-change", id, {amount: "1000.00"}),
    "refresh-post": id => post("/session/refresh", id, {}),
    "fetch-api": async id => {
      try {
        const res = await fetch(withProbe("/api/me", id), {credentials: "include"});
        return "This page could read the answer (" + res.status + ").";
      } catch (e) {
        return "This page saw: the browser refused to hand over the answer (" + e.name + ").";
      }
    },
    "img-logout": id => new Promise(resolve => {
      const img = new Image();
      img.onload = img.onerror = () => resolve("");
      setTimeout(() => resolve(""), 4000);
      img.src = withProbe("/logout", id);
    }),
    "frame-account": id => new Promise(resolve => {
      const frame = document.getElementById("frame");
      frame.hidden = false;
      frame.addEventListener("load", () => resolve(""), {once: true});
      setTimeout(() => resolve(""), 4000);
      frame.src = withProbe("/account", id);
    }),
    "navigate-account": async id => {
      const win = window.open(withProbe("/account", id), "_blank");
      if (!win) return "The browser blocked the new window.";
      for (let i = 0; i < 50; i++) {
        await wait(100);
        try {
          void win.document.body.innerHTML; // about:blank is readable until ChangeBank's page arrives
        } catch (e) {
          win.close();
          return "This page saw: reading the new window threw " + e.name + ".";
        }
      }
      win.close();
      return "";
    },
  };

  // report asks what ChangeBank saw of one attempt and fills in its card.
  async function report(name, id, observed) {
    let v;
    for (let i = 0; i < 20; i++) {
      v = await (await fetch("/report?probe=" + id + "&attempt=" + name)).json();
      if (v.arrived) break;
      await wait(150);
    }
    const out = document.getElementById("result-" + name);
    out.textContent = v.text + (observed ? " " + observed : "");
    out.className = "verdict " + (v.stopped ? "ok" : "bad");
    out.dataset.stopped = v.stopped ? "yes" : "no";
    out.dataset.stoppedBy = v.stopped_by.join(", ");
    out.dataset.cookiesSent = v.seen ? String(v.seen.session_cookies.length) : "";
  }

  function running(name) {
    const out = document.getElementById("result-" + name);
    out.textContent = "Running…";
    out.className = "verdict running";
  }

  document.getElementById("run").addEventListener("click", async () => {
    const run = document.getElementById("run");
    run.disabled = true;
    document.getElementById("done").hidden = true;
    // The new window first, while the click still counts as the user's.
    // Each card fills in as soon as its attempt has ended, before the next
    // one starts: the learner reads one while the others run.
    const order = ["navigate-account", "form-post", "refresh-post", "fetch-api", "img-logout", "frame-account"];
    for (const name of order) {
      const out = document.getElementById("result-" + name);
      out.textContent = "Waiting for the attempts before it.";
      out.className = "verdict";
      for (const k of ["stopped", "stoppedBy", "cookiesSent"]) delete out.dataset[k];
    }
    for (const name of order) {
      const id = probe();
      running(name);
      const observed = await tries[name](id);
      await report(name, id, observed);
    }
    document.getElementById("done").hidden = false;
    run.disabled = false;
  });
})();
