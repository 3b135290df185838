// checker status page: live heartbeats. The page works without this
// script; it only keeps the heartbeat table current from the server's
// event stream (/ui/events) and ages every heartbeat as time passes.
// Text from heartbeats is only ever set as textContent, never as HTML.
"use strict";
(function () {
  var table = document.getElementById("beats");
  var live = document.getElementById("live");
  if (!table || !live || !window.EventSource) {
    return;
  }
  var body = table.tBodies[0];
  // offset is the server's clock minus this one: ages are judged by the
  // server's clock, as its peers and alerts judge them.
  var offset = Number(document.body.dataset.now) - Date.now();
  var rows = new Map();
  Array.prototype.forEach.call(body.rows, function (tr) {
    if (tr.dataset.service) {
      rows.set(tr.dataset.service, tr);
    }
  });

  function ago(ms) {
    if (ms < 0) {
      return "in the future";
    }
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s ago";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m ago";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h ago";
  }

  // state mirrors the server's: a heartbeat more than 5 s ahead of the
  // server's clock cannot be aged.
  function state(tr, now) {
    var age = now - Number(tr.dataset.ts);
    if (age < -5000) return "future";
    if (age < Number(tr.dataset.alive)) return "alive";
    if (age < Number(tr.dataset.stale)) return "stale";
    return "dead";
  }

  var classes = { alive: "ok", stale: "warn", dead: "bad", future: "bad" };

  function cell(tr, name) {
    return tr.querySelector("." + name);
  }

  function newRow(service) {
    var tr = document.createElement("tr");
    tr.dataset.service = service;
    [["th", "name", "Service"], ["td", "state", "State"], ["td", "when", "Last heartbeat"],
     ["td", "instance", "Instance"], ["td", "uptime", "Uptime"], ["td", "count", "Beats"],
     ["td", "memory", "Memory"], ["td", "cpu", "CPU"], ["td", "data", "Data"]].forEach(function (c) {
      var el = document.createElement(c[0]);
      el.className = c[1];
      el.dataset.label = c[2];
      if (c[0] === "th") el.scope = "row";
      tr.appendChild(el);
    });
    var badge = document.createElement("span");
    badge.className = "badge";
    cell(tr, "state").appendChild(badge);
    cell(tr, "when").appendChild(document.createElement("time"));
    cell(tr, "name").textContent = service;
    // Keep the table sorted by service, as the server sorts it.
    var before = null;
    rows.forEach(function (other, name) {
      if (name > service && (before === null || name < before.dataset.service)) {
        before = other;
      }
    });
    body.insertBefore(tr, before);
    var empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    rows.set(service, tr);
    return tr;
  }

  function show(b, flash) {
    var tr = rows.get(b.service) || newRow(b.service);
    tr.dataset.ts = b.ts;
    tr.dataset.alive = b.alive;
    tr.dataset.stale = b.stale;
    var time = cell(tr, "when").querySelector("time");
    time.dateTime = b.when;
    time.title = b.when;
    cell(tr, "instance").textContent = b.instance;
    cell(tr, "uptime").textContent = b.uptime;
    cell(tr, "count").textContent = String(b.count);
    cell(tr, "memory").textContent = b.memory;
    cell(tr, "cpu").textContent = b.cpu;
    cell(tr, "data").textContent = b.data;
    if (flash) {
      tr.classList.remove("flash");
      void tr.offsetWidth; // restart the animation
      tr.classList.add("flash");
    }
  }

  function plural(n, word) {
    return n === 1 ? "1 " + word : n + " " + word + "s";
  }

  // tick ages every row and recounts the summary.
  function tick() {
    var now = Date.now() + offset;
    var count = { alive: 0, stale: 0, dead: 0, future: 0 };
    rows.forEach(function (tr) {
      var st = state(tr, now);
      count[st]++;
      var badge = cell(tr, "state").querySelector(".badge");
      badge.textContent = st;
      badge.className = "badge " + classes[st];
      cell(tr, "when").querySelector("time").textContent = st === "future" ? "in the future" : ago(now - Number(tr.dataset.ts));
    });
    // A page showing only some of the services (data-more) keeps the
    // server's count of them all.
    if (table.dataset.more) return;
    var set = function (id, text) {
      var el = document.getElementById(id);
      if (el) el.textContent = text;
    };
    set("sum-beats", plural(rows.size, "heartbeat"));
    set("sum-alive", count.alive + " alive");
    set("sum-stale", count.stale + " stale");
    set("sum-dead", (count.dead + count.future) + " dead");
  }

  function status(st, text) {
    live.dataset.state = st;
    live.textContent = text;
  }

  var source = new EventSource("/ui/events");
  source.addEventListener("open", function () {
    status("on", "live");
  });
  source.addEventListener("snapshot", function (e) {
    var d = JSON.parse(e.data);
    offset = d.now - Date.now();
    d.beats.forEach(function (b) { show(b, false); });
    var err = document.getElementById("beats-error");
    if (err && !d.error) err.remove();
    tick();
  });
  source.addEventListener("beat", function (e) {
    var d = JSON.parse(e.data);
    offset = d.now - Date.now();
    show(d.beat, true);
    tick();
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      // The server refused the stream (too many viewers, or the login
      // expired): the page stays as it is; a reload tries again.
      status("full", "live updates unavailable; reload to try again");
    } else {
      status("retry", "reconnecting…");
    }
  });
  window.setInterval(tick, 1000);
})();
