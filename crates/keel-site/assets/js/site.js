/* keel site: live "new post" notice (Server-Sent Events) and the admin
 * Markdown live preview. Plain ES5-style JavaScript, no dependencies.
 * Loaded with `defer` from base.html; there is no inline script anywhere,
 * so the pages can run under a strict Content-Security-Policy. */
(function () {
  "use strict";

  var RETRY_MS = 5000;
  var PREVIEW_DEBOUNCE_MS = 300;

  /* Only same-origin paths ("/posts/slug/") are used as link targets, so a
   * message can never smuggle in a "javascript:" or off-site URL. */
  function isSafePath(url) {
    return typeof url === "string" && url.charAt(0) === "/" &&
      url.charAt(1) !== "/" && url.charAt(1) !== "\\";
  }

  /* ---- a) live "new post" notice ------------------------------------ */

  function hideNotice(box) {
    box.hidden = true;
    while (box.firstChild) {
      box.removeChild(box.firstChild);
    }
  }

  /* Built with DOM APIs and textContent only: the title comes from the
   * network and must never be parsed as HTML. */
  function showNewPost(box, title, url) {
    hideNotice(box);

    var text = document.createElement("span");
    text.className = "live-notice-text";
    text.appendChild(document.createTextNode("New post: "));

    var link = document.createElement("a");
    link.href = url;
    link.textContent = title;
    text.appendChild(link);

    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "live-notice-dismiss";
    dismiss.setAttribute("aria-label", "Dismiss");
    dismiss.textContent = "\u00d7";
    dismiss.addEventListener("click", function () {
      hideNotice(box);
    });

    box.appendChild(text);
    box.appendChild(dismiss);
    box.hidden = false;
  }

  function handleMessage(box, event) {
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      return; /* ignore malformed messages */
    }
    if (!data || typeof data !== "object" || data.type !== "post_published") {
      return;
    }
    if (typeof data.title !== "string" || !isSafePath(data.url)) {
      return;
    }
    showNewPost(box, data.title, data.url);
  }

  function startLiveNotice() {
    var box = document.getElementById("live-notice");
    if (!box || typeof window.EventSource !== "function") {
      return;
    }

    var source = null;
    var retryTimer = null;

    function onMessage(event) {
      handleMessage(box, event);
    }

    function connect() {
      retryTimer = null;
      source = new window.EventSource("/stream/?channel=site");
      source.onmessage = onMessage;
      /* also accept messages sent as a named "post_published" event */
      source.addEventListener("post_published", onMessage);
      source.onerror = function () {
        /* While CONNECTING the browser reconnects by itself; once CLOSED it
         * gives up, so open a fresh connection after a pause. Only one
         * EventSource is ever open per page. */
        if (source && source.readyState === window.EventSource.CLOSED) {
          source.close();
          source = null;
          if (retryTimer === null) {
            retryTimer = window.setTimeout(connect, RETRY_MS);
          }
        }
      };
    }

    /* A page left for another one may stay alive in the back/forward cache, and
     * its open stream with it: over HTTP/1.1 the browser's six connections per host
     * are gone after a few clicks and the next page never loads. Close the stream
     * when the page is hidden; open it again if the page comes back from the cache. */
    window.addEventListener("pagehide", function () {
      if (retryTimer !== null) {
        window.clearTimeout(retryTimer);
        retryTimer = null;
      }
      if (source) {
        source.close();
        source = null;
      }
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted && source === null && retryTimer === null) {
        connect();
      }
    });

    connect();
  }

  /* ---- b) admin Markdown live preview -------------------------------- */

  function startPreview() {
    var textarea = document.getElementById("body");
    var preview = document.getElementById("preview");
    if (!textarea || textarea.tagName !== "TEXTAREA" || !preview || !textarea.form) {
      return;
    }
    var csrf = textarea.form.querySelector('input[name="csrf_token"]');
    if (!csrf || typeof window.fetch !== "function" ||
        typeof window.URLSearchParams !== "function") {
      return;
    }

    var timer = null;
    var latest = 0;

    function render() {
      timer = null;
      var seq = ++latest;
      var params = new window.URLSearchParams();
      params.append("csrf_token", csrf.value);
      params.append("body", textarea.value);

      window.fetch("/admin/preview", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: params.toString()
      }).then(function (response) {
        if (!response.ok) {
          throw new Error("preview failed: " + response.status);
        }
        return response.text();
      }).then(function (html) {
        if (seq !== latest) {
          return; /* a newer request was sent meanwhile */
        }
        /* The fragment is rendered from Markdown and sanitized on the
         * server (ammonia) before it is sent, so it is safe to insert as
         * HTML here; this is the only place that uses innerHTML. */
        preview.innerHTML = html;
        preview.hidden = html.trim() === "";
      })["catch"](function () {
        /* ignore: the Preview button still works without JavaScript */
      });
    }

    textarea.addEventListener("input", function () {
      if (timer !== null) {
        window.clearTimeout(timer);
      }
      timer = window.setTimeout(render, PREVIEW_DEBOUNCE_MS);
    });
  }

  /* ---- c) quizzes: autosave, the countdown, a file read into the import box ---- */

  var AUTOSAVE_DEBOUNCE_MS = 800;

  /* Each change is saved in the background (the server keeps the answers;
   * grading happens only there). Without JavaScript the Save button does it. */
  function startQuizAutosave() {
    var form = document.querySelector("form[data-autosave]");
    if (!form || typeof window.fetch !== "function" ||
        typeof window.FormData !== "function" ||
        typeof window.URLSearchParams !== "function") {
      return;
    }
    var state = form.querySelector(".quiz-save-state");
    var timer = null;

    function save() {
      timer = null;
      var params = new window.URLSearchParams();
      var data = new window.FormData(form);
      data.forEach(function (value, key) {
        params.append(key, value);
      });
      params.append("action", "save");
      window.fetch(form.getAttribute("data-autosave"), {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          "Accept": "application/json"
        },
        body: params.toString()
      }).then(function (response) {
        if (state) {
          state.textContent = response.ok ? "Saved." :
            "Not saved (" + response.status + "): use the Save button.";
        }
      })["catch"](function () {
        if (state) {
          state.textContent = "Offline: your answers are not saved yet.";
        }
      });
    }

    form.addEventListener("change", function () {
      if (timer !== null) {
        window.clearTimeout(timer);
      }
      timer = window.setTimeout(save, AUTOSAVE_DEBOUNCE_MS);
    });
  }

  /* The deadline is the server's; this only shows it. At zero the page
   * reloads, and the server grades what was saved. */
  function startQuizTimer() {
    var box = document.querySelector(".quiz-timer[data-seconds-left]");
    if (!box) {
      return;
    }
    var value = box.querySelector(".quiz-timer-value");
    var end = Date.now() + parseInt(box.getAttribute("data-seconds-left"), 10) * 1000;
    function tick() {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      var minutes = Math.floor(left / 60);
      var seconds = left % 60;
      value.textContent = minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
      if (left <= 30) {
        box.className = "quiz-timer urgent";
      }
      if (left === 0) {
        /* A live room's host closes the question at zero; a player waits for
         * the host's reveal; a quiz attempt reloads and the server grades it. */
        var reveal = document.querySelector("[data-auto-reveal]");
        if (reveal) {
          reveal.click();
        } else if (!box.hasAttribute("data-no-reload")) {
          window.location.reload();
        }
        return;
      }
      window.setTimeout(tick, 1000);
    }
    tick();
  }

  function startFileFill() {
    var inputs = document.querySelectorAll("input[type=file][data-fills]");
    Array.prototype.forEach.call(inputs, function (input) {
      var target = document.getElementById(input.getAttribute("data-fills"));
      if (!target || typeof window.FileReader !== "function") {
        return;
      }
      input.addEventListener("change", function () {
        var file = input.files && input.files[0];
        if (!file) {
          return;
        }
        var reader = new window.FileReader();
        reader.onload = function () {
          target.value = String(reader.result);
        };
        reader.readAsText(file);
      });
    });
  }

  /* A live quiz room follows its events: a new question, a reveal or the
   * podium reloads the page (the server renders the room's state); tallies
   * and new players update in place, as text. */
  function startLiveRoom() {
    var room = document.querySelector("[data-live-events]");
    if (!room || typeof window.EventSource !== "function") {
      return;
    }
    var url = room.getAttribute("data-live-events");
    if (!isSafePath(url)) {
      return;
    }
    var phase = room.getAttribute("data-phase");
    var index = parseInt(room.getAttribute("data-index"), 10);
    var shownTally = -1;
    var source = new window.EventSource(url);
    source.onmessage = function (message) {
      var event;
      try {
        event = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      if (event.type === "tally" && event.index === index) {
        /* Counts only grow: one from another process may arrive late. */
        if (event.answered > shownTally) {
          shownTally = event.answered;
          Array.prototype.forEach.call(room.querySelectorAll("[data-tally]"), function (e) {
            e.textContent = event.answered + " of " + event.players;
          });
        }
      } else if (event.type === "players") {
        Array.prototype.forEach.call(room.querySelectorAll("[data-players-count]"), function (e) {
          e.textContent = String(event.count);
        });
        /* The host's lobby lists the names: it reloads for new ones. */
        var list = room.querySelector("[data-players]");
        if (list && event.count > list.children.length) {
          source.close();
          window.location.reload();
        }
      } else if ((event.type === "question" && (phase !== "question" || event.index !== index)) ||
                 (event.type === "reveal" && phase !== "reveal") ||
                 (event.type === "podium" && phase !== "finished")) {
        source.close();
        window.location.reload();
      }
    };
    /* Leaving the page frees the connection at once (browsers allow six per
     * host over HTTP/1.1). */
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  /* ---- e) the AI Interviewer: its words as they are produced ----------
   * The transcript line the server just added carries data-say: its words
   * arrive over Server-Sent Events (a model's tokens, or the rubric's
   * sentences) and replace the line's text as they come. Stop closes the
   * stream, which ends the model call on the server; the line then shows
   * the interviewer's full reply as the server rendered it. */
  function startInterview() {
    var line = document.querySelector("[data-say]");
    var url = line && line.getAttribute("data-say");
    if (!line || !isSafePath(url) || typeof window.EventSource !== "function") {
      return;
    }
    var box = line.querySelector(".interview-text");
    var full = box.innerHTML;
    var stop = document.querySelector(".interview-stop");
    var answer = document.getElementById("id_answer");
    var text = document.createElement("p");
    box.innerHTML = "";
    box.appendChild(text);
    line.classList.add("speaking");
    if (stop) {
      stop.hidden = false;
    }
    var source = new window.EventSource(url);
    function finish(restore) {
      source.close();
      line.classList.remove("speaking");
      if (restore) {
        /* Rendered and sanitized by the server (Markdown), as on load. */
        box.innerHTML = full;
      }
      if (stop) {
        stop.hidden = true;
      }
      if (answer) {
        answer.focus();
      }
    }
    source.onmessage = function (message) {
      var event;
      try {
        event = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      if (event.t === "token" || event.t === "sentence") {
        text.appendChild(document.createTextNode(event.text));
      } else if (event.t === "fallback") {
        text.textContent = "";
        var note = document.createElement("p");
        note.className = "muted";
        note.textContent = event.text;
        box.insertBefore(note, text);
      } else if (event.t === "done") {
        finish(false);
      }
    };
    source.onerror = function () {
      finish(true);
    };
    if (stop) {
      stop.querySelector("[data-stop]").addEventListener("click", function () {
        finish(true);
      });
    }
    /* Dictation through the browser's own speech recognition, where it exists. */
    var dictate = document.querySelector("[data-dictate]");
    var Recognition = window.SpeechRecognition || window.webkitSpeechRecognition;
    if (dictate && answer && typeof Recognition === "function") {
      dictate.hidden = false;
      dictate.addEventListener("click", function () {
        var recognition = new Recognition();
        recognition.lang = document.documentElement.lang || "en";
        recognition.onresult = function (e) {
          var said = e.results[0][0].transcript;
          answer.value = (answer.value ? answer.value + " " : "") + said;
        };
        recognition.start();
      });
    }
  }

  /* ---- f) /events/: the demo_stream log ----------------------------------
   * Each message is added as text (never parsed as HTML). A 503 (server full)
   * ends an EventSource for good, so the page retries itself. */
  function startEventLog() {
    var log = document.querySelector("[data-event-log]");
    var status = document.getElementById("status");
    var url = log && log.getAttribute("data-event-log");
    if (!log || !status || !isSafePath(url) || typeof window.EventSource !== "function") {
      return;
    }
    var source = null;
    function show(text, cls) {
      status.textContent = text;
      status.className = "event-status " + (cls || "");
    }
    function add(data, id) {
      var item = document.createElement("li");
      var when = document.createElement("small");
      when.textContent = new Date().toLocaleTimeString() + (id ? " #" + id : "");
      item.appendChild(when);
      item.appendChild(document.createTextNode(" " + data));
      log.insertBefore(item, log.firstChild);
      while (log.children.length > 200) {
        log.removeChild(log.lastChild);
      }
    }
    function connect() {
      source = new window.EventSource(url);
      source.onopen = function () {
        show("live", "live");
      };
      source.onmessage = function (event) {
        add(event.data, event.lastEventId);
      };
      source.onerror = function () {
        if (source.readyState === window.EventSource.CLOSED) {
          show("disconnected; retrying in 3 s", "down");
          window.setTimeout(connect, 3000);
        } else {
          show("reconnecting…", "down");
        }
      };
    }
    window.addEventListener("pagehide", function () {
      if (source) {
        source.close();
        source = null;
      }
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted && !source) {
        connect();
      }
    });
    connect();
  }

  function init() {
    startEventLog();
    startInterview();
    startLiveRoom();
    startLiveNotice();
    startPreview();
    startQuizAutosave();
    startQuizTimer();
    startFileFill();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
