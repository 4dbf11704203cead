// hero_aibroker console: the viewer's time zone, local times, charts, copy buttons and the
// playground's streamed answer. Everything else is htmx.
(function () {
  "use strict";
  // The server buckets usage in the viewer's time zone: tell it the offset (minutes east of UTC).
  document.cookie = "tzo=" + (-new Date().getTimezoneOffset()) + "; path=/; SameSite=Strict";

  function pad(n) { return String(n).padStart(2, "0"); }
  function localTimes(root) {
    root.querySelectorAll("time[data-ms]").forEach(function (t) {
      var d = new Date(Number(t.dataset.ms));
      t.textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
        pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
      t.title = d.toISOString();
    });
  }

  // Hourly columns summed into the viewer's calendar days: each hour goes to the local date it
  // falls on, so days stay whole across daylight-saving changes.
  function localDays(data) {
    var days = [], req = [], err = [], at = {};
    for (var i = 0; i < data[0].length; i++) {
      var d = new Date(data[0][i] * 1000);
      var key = d.getFullYear() + "-" + d.getMonth() + "-" + d.getDate();
      if (!(key in at)) {
        at[key] = days.length;
        days.push(new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime() / 1000);
        req.push(0); err.push(0);
      }
      req[at[key]] += data[1][i]; err[at[key]] += data[2][i];
    }
    return [days, req, err];
  }

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function charts(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll(".chart[data-series]").forEach(function (el) {
      var data;
      try { data = JSON.parse(el.dataset.series); } catch (e) { return; }
      if (el.dataset.localDays) data = localDays(data);
      el.textContent = "";
      if (!data[0] || data[0].length === 0) { el.textContent = "No requests in this range."; el.className += " muted"; return; }
      var axis = { stroke: css("--muted"), grid: { stroke: css("--line") }, ticks: { stroke: css("--line") } };
      new uPlot({
        width: Math.max(300, el.clientWidth - 4), height: 180,
        scales: { x: { time: true } },
        axes: [axis, axis],
        series: [{}, { label: "requests", stroke: css("--accent"), fill: css("--bar"), width: 1.5 },
                 { label: "errors", stroke: css("--bad"), width: 1.5 }],
      }, data, el);
    });
  }

  function copyButtons(root) {
    root.querySelectorAll("[data-copy]").forEach(function (b) {
      if (b.dataset.bound) return;
      b.dataset.bound = "1";
      b.addEventListener("click", function () {
        var src = document.querySelector(b.dataset.copy);
        if (src && navigator.clipboard) navigator.clipboard.writeText(src.textContent).then(function () { b.textContent = "Copied"; });
      });
    });
  }

  function playground() {
    var form = document.getElementById("playground");
    if (!form) return;
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var f = new FormData(form);
      var body = { model: f.get("model"), system: f.get("system"), message: f.get("message") };
      if (f.get("temperature")) body.temperature = Number(f.get("temperature"));
      if (f.get("max_tokens")) body.max_tokens = Number(f.get("max_tokens"));
      var out = document.getElementById("answer"), meta = document.getElementById("answer-meta");
      out.textContent = ""; meta.textContent = "waiting…"; out.dataset.done = "";
      var t0 = performance.now(), ttft = null, usage = null;
      try {
        var resp = await fetch("/playground/stream", {
          method: "POST",
          headers: { "content-type": "application/json", "x-csrf-token": document.body.dataset.csrf },
          body: JSON.stringify(body),
        });
        var provider = resp.headers.get("x-aibroker-provider") || "?";
        if (!resp.ok || !resp.body) {
          var err = await resp.text();
          try { err = JSON.parse(err).error.message; } catch (e) { /* keep the text */ }
          meta.textContent = "Error " + resp.status + ": " + err; out.dataset.done = "error"; return;
        }
        var reader = resp.body.getReader(), dec = new TextDecoder(), buf = "";
        for (;;) {
          var r = await reader.read();
          if (r.done) break;
          buf += dec.decode(r.value, { stream: true });
          var i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            var ev2 = buf.slice(0, i); buf = buf.slice(i + 2);
            ev2.split("\n").forEach(function (line) {
              if (line.indexOf("data:") !== 0) return;
              var data = line.slice(5).trim();
              if (data === "[DONE]") return;
              var chunk; try { chunk = JSON.parse(data); } catch (e) { return; }
              if (chunk.error) { meta.textContent = "Error: " + chunk.error.message; return; }
              var delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
              if (delta && delta.content) {
                if (ttft === null) ttft = performance.now() - t0;
                out.textContent += delta.content;
              }
              if (chunk.usage) usage = chunk.usage;
              // The header names the instance (fake-0); the chunk only the provider.
              if (chunk.provider && provider === "?") provider = chunk.provider;
            });
          }
        }
        var parts = ["answered by " + provider];
        if (ttft !== null) parts.push("first token " + Math.round(ttft) + " ms");
        parts.push("total " + Math.round(performance.now() - t0) + " ms");
        if (usage) {
          parts.push((usage.prompt_tokens || 0) + " + " + (usage.completion_tokens || 0) + " tokens");
          if (usage.cost !== undefined) parts.push("$" + Number(usage.cost).toFixed(6));
        }
        meta.textContent = parts.join(" · "); out.dataset.done = "ok";
      } catch (e) {
        meta.textContent = "The console could not reach the broker: " + e; out.dataset.done = "error";
      }
    });
  }

  function refresh(root) { localTimes(root); charts(root); copyButtons(root); }
  document.addEventListener("DOMContentLoaded", function () { refresh(document); playground(); });
  document.addEventListener("htmx:afterSwap", function (e) { refresh(e.detail.target || document); });
})();
