/* The portfolio hand-in page, enhanced: the page works in full without this file.
 *
 * - Drag and drop: a file dropped onto a file slot's box ([data-drop-target]) joins the files chosen in
 *   its input, up to the room the slot has left; the names and sizes chosen are listed.
 * - Sizes before sending: a file over its slot's limit, or a save over the request limit, is named at
 *   once instead of after the upload (the server checks again, by the content, whatever this says).
 * - A live word count under each statement, counted as the server counts; a screen reader hears it
 *   when typing pauses, not at every key.
 * - Hand in is sent once: a second click while the first is on its way does nothing.
 */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function plural(count, word) {
    return count.toLocaleString() + " " + word + (count === 1 ? "" : "s");
  }

  function size(bytes) {
    var value = bytes;
    var units = ["bytes", "KB", "MB", "GB"];
    for (var i = 0; i < units.length; i += 1) {
      if (value < 1024 || i === units.length - 1) {
        return i === 0 ? value + " bytes" : value.toFixed(1).replace(/\.0$/, "") + " " + units[i];
      }
      value /= 1024;
    }
    return bytes + " bytes";
  }

  /* ------------------------------------------------------------ files: choice, drop, sizes */

  function describeChoice(box, input) {
    var out = document.getElementById(input.id + "-chosen");
    if (!out) {
      return;
    }
    var limit = Number(box.getAttribute("data-limit")) || 0;
    var files = Array.prototype.slice.call(input.files || []);
    if (files.length === 0) {
      out.textContent = "";
      out.classList.remove("too-large");
      return;
    }
    var over = files.filter(function (file) { return limit && file.size > limit; });
    var list = files.map(function (file) { return file.name + " (" + size(file.size) + ")"; }).join(", ");
    out.textContent = "Chosen: " + list + "." + (over.length
      ? " " + over.map(function (file) { return file.name; }).join(", ") + (over.length === 1 ? " is" : " are") +
        " larger than " + box.getAttribute("data-limit-words") + " and will be refused: choose a smaller file."
      : " Save draft or Hand in to upload.");
    out.classList.toggle("too-large", over.length > 0);
  }

  function acceptDrops(box) {
    var input = document.getElementById(box.getAttribute("data-drop-target"));
    if (!input || typeof DataTransfer === "undefined") {
      return;
    }
    var room = Number(box.getAttribute("data-room")) || 1;
    var depth = 0;
    box.classList.add("droppable");
    input.addEventListener("change", function () { describeChoice(box, input); });

    box.addEventListener("dragenter", function (event) {
      if (!event.dataTransfer || Array.prototype.indexOf.call(event.dataTransfer.types, "Files") < 0) {
        return;
      }
      event.preventDefault();
      depth += 1;
      box.classList.add("dragging");
    });
    box.addEventListener("dragover", function (event) {
      if (event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
      }
    });
    box.addEventListener("dragleave", function () {
      depth = Math.max(0, depth - 1);
      if (depth === 0) {
        box.classList.remove("dragging");
      }
    });
    box.addEventListener("drop", function (event) {
      if (!event.dataTransfer || event.dataTransfer.files.length === 0) {
        return;
      }
      event.preventDefault();
      depth = 0;
      box.classList.remove("dragging");
      var merged = new DataTransfer();
      var kept = Array.prototype.slice.call(input.multiple ? input.files : []);
      kept.concat(Array.prototype.slice.call(event.dataTransfer.files)).slice(0, room).forEach(function (file) {
        merged.items.add(file);
      });
      input.files = merged.files;
      describeChoice(box, input);
      input.focus();
    });
  }

  function checkRequestSize(form) {
    var limit = Number(form.getAttribute("data-request-limit")) || 0;
    form.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      if (submitter && submitter.getAttribute("form") && submitter.getAttribute("form") !== form.id) {
        return;
      }
      var total = 0;
      Array.prototype.forEach.call(form.querySelectorAll("input[type=file]"), function (input) {
        Array.prototype.forEach.call(input.files || [], function (file) { total += file.size; });
      });
      var note = document.getElementById("request-size-note");
      if (limit && total > limit) {
        event.preventDefault();
        if (!note) {
          note = document.createElement("p");
          note.id = "request-size-note";
          note.className = "flash bad";
          note.setAttribute("role", "alert");
          form.querySelector(".actions").insertAdjacentElement("beforebegin", note);
        }
        note.textContent = "The files chosen add up to " + size(total) + ", more than the " +
          form.getAttribute("data-request-limit-words") + " one save can carry. Choose fewer files, save, " +
          "then add the others.";
        return;
      }
      if (note) {
        note.remove();
      }
      if (submitter && submitter.value === "hand_in") {
        if (form.getAttribute("data-sent") === "1") {
          event.preventDefault();
          return;
        }
        form.setAttribute("data-sent", "1");
        submitter.setAttribute("aria-disabled", "true");
        submitter.textContent = "Handing in\u2026";
      }
    });
  }

  /* ------------------------------------------------------------ statements: words as the server counts */

  // Scripts written without spaces between words: each character counts as one word (grader.intake).
  var IDEOGRAPHIC = /[\u3005\u3007\u3040-\u30ff\u3100-\u312f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\u{20000}-\u{3134f}]/u;
  var LETTER_OR_NUMBER = /[\p{L}\p{N}]/u;
  var WORD_CHARACTER = /[\p{L}\p{M}\p{N}]/u;

  function countWords(text) {
    var count = 0;
    text.split(/[\s\u200b]+/).forEach(function (token) {
      var inWord = false;
      Array.from(token).forEach(function (ch) {
        if (IDEOGRAPHIC.test(ch) && LETTER_OR_NUMBER.test(ch)) {
          count += 1;
          inWord = false;
        } else if (WORD_CHARACTER.test(ch)) {
          if (!inWord) {
            count += 1;
          }
          inWord = true;
        }
      });
    });
    return count;
  }

  function countAsTyped(area) {
    var shown = document.getElementById(area.id + "-count");
    var announce = document.getElementById(area.id + "-announce");
    var min = Number(area.getAttribute("data-min-words")) || 0;
    var max = Number(area.getAttribute("data-max-words")) || 0;
    var timer = null;

    function words() {
      var count = countWords(area.value);
      var state = "";
      if (count === 0) {
        state = "";
      } else if (count < min) {
        state = plural(min - count, "more word") + " needed";
      } else if (max && count > max) {
        state = plural(count - max, "word") + " over the limit";
      } else {
        state = "within the limits";
      }
      return { count: count, text: plural(count, "word") + (state ? ": " + state : ""), bad: count > 0 && (count < min || (max && count > max)) };
    }

    function render(speak) {
      var now = words();
      if (shown) {
        shown.textContent = now.text;
        shown.classList.toggle("over", Boolean(now.bad));
      }
      if (speak && announce) {
        announce.textContent = now.text;
      }
    }

    area.addEventListener("input", function () {
      render(false);
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { render(true); }, 1200);
    });
    render(false);
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-drop-target]"), acceptDrops);
    Array.prototype.forEach.call(document.querySelectorAll("textarea[data-max-words]"), countAsTyped);
    Array.prototype.forEach.call(document.querySelectorAll("form.portfolio"), checkRequestSize);
    var problems = document.getElementById("form-error");
    if (problems) {
      problems.focus();
    }
  });
})();
