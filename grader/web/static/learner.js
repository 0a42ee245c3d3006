/* The learner's pages, enhanced: every page works without this file.
 *
 * - A countdown for timed quiz attempts, in the learner's own time zone ([data-deadline]).
 * - Live status while a submission is graded: long-polls its status JSON (?wait=25) and reloads when
 *   it is done ([data-status-url]); without JavaScript the page has a "Check again" link.
 * - Handing in a quiz with unanswered questions asks first in a dialog; the server asks too.
 */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  /* ------------------------------------------------------------ countdown */

  function startCountdown(element) {
    var deadline = new Date(element.getAttribute("data-deadline"));
    if (isNaN(deadline.getTime())) {
      return;
    }
    var announce = document.getElementById("deadline-announce");
    var announced = {};
    var local = deadline.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      zone = "";
    }

    function render() {
      var left = Math.max(0, Math.round((deadline.getTime() - Date.now()) / 1000));
      var minutes = Math.floor(left / 60);
      var seconds = left % 60;
      var clock = minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
      element.textContent = left > 0
        ? "Time left: " + clock + " (hand in before " + local + (zone ? ", " + zone : "") + ")"
        : "Time is up: hand in now, or this attempt can no longer be handed in.";
      // A screen reader hears the time at a few moments only, not every second.
      [5, 1].forEach(function (mark) {
        if (minutes < mark && left > 0 && !announced[mark] && announce) {
          announced[mark] = true;
          announce.textContent = "Less than " + plural(mark, "minute") + " left.";
        }
      });
      if (left === 0) {
        window.clearInterval(timer);
      }
    }

    var timer = window.setInterval(render, 1000);
    render();
  }

  /* ------------------------------------------------------------ live status */

  function pollStatus(element) {
    var url = element.getAttribute("data-status-url");
    var text = element.querySelector(".live-text");
    var started = Date.now();

    function describe(status) {
      if (status.status === "queued") {
        var eta = status.eta_seconds === null || status.eta_seconds === undefined ? ""
          : ", done in about " + (status.eta_seconds < 90 ? plural(Math.max(1, Math.round(status.eta_seconds)), "second")
            : plural(Math.round(status.eta_seconds / 60), "minute"));
        return "Waiting to be graded" + (status.queue_position ? ": number " + status.queue_position + " in the queue" : "") + eta + ".";
      }
      if (status.status === "grading") {
        return "Being graded now.";
      }
      return "Graded: loading the result\u2026";
    }

    function check() {
      // A long poll: the server answers as soon as the result is written, or after 25 seconds.
      var waiting = url + (url.indexOf("?") === -1 ? "?" : "&") + "wait=25";
      fetch(waiting, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.json();
        })
        .then(function (status) {
          var message = describe(status);
          if (text && text.textContent.trim() !== message) {
            text.textContent = message;
          }
          if (status.done) {
            window.location.reload();
            return;
          }
          // Each answer came back after up to 25 s of waiting: ask again at once, for half an hour.
          if (Date.now() - started < 30 * 60000) {
            window.setTimeout(check, 100);
          }
        })
        .catch(function () {
          // The "Check again" link still works; stop asking.
        });
    }

    window.setTimeout(check, 0);
  }

  /* ------------------------------------------------------------ confirm unanswered questions */

  function answered(fieldset) {
    var type = fieldset.getAttribute("data-type");
    if (type === "single_choice" || type === "multiple_choice" || type === "true_false") {
      return fieldset.querySelector("input:checked") !== null;
    }
    var input = fieldset.querySelector("input[type=text]");
    return input !== null && input.value.trim() !== "";
  }

  function confirmUnanswered(form) {
    form.addEventListener("submit", function (event) {
      if (form.querySelector("input[name=confirm_unanswered]")) {
        return;
      }
      var submitter = event.submitter;
      if (submitter && submitter.name === "confirm_unanswered") {
        return;
      }
      var missing = Array.prototype.filter.call(form.querySelectorAll("fieldset[data-question]"), function (fieldset) {
        return !answered(fieldset);
      });
      if (missing.length === 0) {
        return;
      }
      var ok = window.confirm(
        plural(missing.length, "question") + (missing.length === 1 ? " has" : " have") +
        " no answer and will score no points. Hand in anyway?"
      );
      if (!ok) {
        event.preventDefault();
        var first = missing[0].querySelector("input");
        if (first) {
          first.focus();
        }
        return;
      }
      var flag = document.createElement("input");
      flag.type = "hidden";
      flag.name = "confirm_unanswered";
      flag.value = "1";
      form.appendChild(flag);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-deadline]"), startCountdown);
    Array.prototype.forEach.call(document.querySelectorAll("[data-status-url]"), pollStatus);
    Array.prototype.forEach.call(document.querySelectorAll("form.quiz"), confirmUnanswered);
  });
})();
