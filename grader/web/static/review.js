/* The review pages, enhanced: keys, the live score preview, drafts saved before leaving for another
   file, the comment bank inserted in place, and a line number that opens the inline comment box.
   Everything here is optional: each action is also a plain form or link that works without it. */
(function () {
  "use strict";

  var form = document.getElementById("rubric");
  if (!form) {
    return;
  }
  document.documentElement.classList.add("js");

  var dataNode = document.getElementById("rubric-data");
  var rubric = dataNode ? JSON.parse(dataNode.textContent) : { criteria: [] };
  var fieldsets = Array.prototype.slice.call(document.querySelectorAll("fieldset.criterion"));
  var current = -1;
  var dirty = false;
  var leaving = false;

  Array.prototype.forEach.call(document.querySelectorAll(".js-only"), function (node) {
    node.hidden = false;
  });

  // ------------------------------------------------------------ the score preview

  function round(value, digits) {
    var scale = Math.pow(10, digits);
    return Math.round(value * scale) / scale;
  }

  function show(value) {
    return String(round(value, 2));
  }

  function pointsOf(criterion) {
    var prefix = "c-" + criterion.id + "-";
    if (criterion.scoring === "levels") {
      var picked = document.querySelector('input[name="' + prefix + 'level"]:checked');
      if (!picked || picked.value === "") {
        return null;
      }
      var level = criterion.levels.filter(function (lv) { return lv.label === picked.value; })[0];
      return level ? level.points : null;
    }
    if (criterion.scoring === "items") {
      var raw = criterion.mode === "negative" ? criterion.top : 0;
      Array.prototype.forEach.call(
        document.querySelectorAll('input[name="' + prefix + 'item"]:checked'),
        function (box) {
          var item = criterion.items.filter(function (it) { return it.id === box.value; })[0];
          raw += item ? item.points : 0;
        }
      );
      return Math.min(Math.max(raw, criterion.floor), criterion.ceiling);
    }
    var input = document.getElementById(prefix + "points");
    if (!input || input.value.trim() === "") {
      return null;
    }
    var given = parseFloat(input.value.replace(",", "."));
    if (!isFinite(given) || given < 0 || given > criterion.top) {
      return null;
    }
    return given;
  }

  function update() {
    var manual = 0;
    var open = 0;
    rubric.criteria.forEach(function (criterion) {
      var points = pointsOf(criterion);
      var output = document.querySelector('output[data-points-for="' + criterion.id + '"]');
      if (points === null) {
        open += 1;
        if (output) { output.textContent = "nothing yet"; }
        return;
      }
      var weighted = round(points * criterion.weight, 4);
      manual += weighted;
      if (output) { output.textContent = show(weighted); }
    });
    var adjustmentInput = document.getElementById("adjustment");
    var adjustment = adjustmentInput ? parseFloat(adjustmentInput.value.replace(",", ".").replace("\u2212", "-")) : 0;
    if (!isFinite(adjustment)) {
      adjustment = 0;
    }
    var manualTotal = Math.min(Math.max(manual + adjustment, 0), rubric.manual_max);
    var total = Math.min(rubric.automatic + manualTotal, rubric.max_score);
    var set = function (id, text) {
      var node = document.getElementById(id);
      if (node) { node.textContent = text; }
    };
    set("preview-total", show(total));
    set("preview-manual", show(manualTotal));
    var passes = rubric.max_score > 0 && total / rubric.max_score >= rubric.pass_mark - 1e-9;
    set(
      "preview-verdict",
      open ? open + (open === 1 ? " criterion" : " criteria") + " still open." :
        passes ? "This would pass (unless a criterion is below its minimum)." : "This would not pass."
    );
  }

  // ------------------------------------------------------------ drafts are never lost

  function belongs(node) {
    return node && (node.form === form || form.contains(node));
  }

  document.addEventListener("input", function (event) {
    if (belongs(event.target)) {
      dirty = true;
      update();
    }
  });
  document.addEventListener("change", function (event) {
    if (belongs(event.target)) {
      dirty = true;
      update();
    }
  });
  form.addEventListener("submit", function () {
    leaving = true;
  });
  window.addEventListener("beforeunload", function (event) {
    if (dirty && !leaving) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  // Opening another file with unsaved changes saves the draft first, then goes there.
  function go(href) {
    var goto = document.getElementById("goto");
    if (dirty && goto) {
      goto.value = new URL(href, window.location.href).pathname + new URL(href, window.location.href).search;
      leaving = true;
      form.submit();
      return;
    }
    window.location.href = href;
  }

  Array.prototype.forEach.call(document.querySelectorAll("a.file-link"), function (link) {
    link.addEventListener("click", function (event) {
      if (dirty) {
        event.preventDefault();
        go(link.href);
      }
    });
  });

  // ------------------------------------------------------------ inline comments from a line number

  var box = document.getElementById("new-inline");
  Array.prototype.forEach.call(document.querySelectorAll(".code a.ln"), function (link) {
    link.addEventListener("click", function (event) {
      if (!box) {
        return;
      }
      event.preventDefault();
      var line = link.parentNode;
      Array.prototype.forEach.call(document.querySelectorAll(".code .line.picked"), function (node) {
        node.classList.remove("picked");
      });
      line.classList.add("picked");
      line.parentNode.insertBefore(box, line.nextSibling);
      document.getElementById("new_inline_line").value = link.getAttribute("data-line");
      history.replaceState(null, "", "#L" + link.getAttribute("data-line"));
      document.getElementById("new_inline_body").focus();
    });
  });

  // ------------------------------------------------------------ the comment bank

  var target = document.getElementById("bank_target");
  var token = form.querySelector('input[name="csrf_token"]');

  document.addEventListener("focusin", function (event) {
    var node = event.target;
    var fieldset = node.closest ? node.closest("fieldset.criterion") : null;
    if (fieldset) {
      mark(fieldsets.indexOf(fieldset));
    }
    if (target && node.tagName === "TEXTAREA" && node.classList.contains("comment")) {
      target.value = fieldset ? fieldset.getAttribute("data-criterion") : "comment";
    }
  });

  Array.prototype.forEach.call(document.querySelectorAll("button.bank-insert"), function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var into = target && target.value !== "comment" ? "c-" + target.value + "-comment" : "comment";
      var area = document.getElementById(into);
      if (!area) {
        return;
      }
      var text = button.getAttribute("data-text");
      area.value = area.value.replace(/\s+$/, "") + (area.value.trim() ? "\n\n" : "") + text;
      dirty = true;
      area.focus();
      window.fetch(button.getAttribute("data-use"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": token ? token.value : "" }
      }).catch(function () { /* the count is a convenience; the insert stands */ });
    });
  });

  var search = document.getElementById("bank_q");
  if (search) {
    search.addEventListener("input", function () {
      var query = search.value.trim().toLowerCase();
      Array.prototype.forEach.call(document.querySelectorAll(".bank-entry"), function (entry) {
        entry.hidden = query !== "" && entry.getAttribute("data-search").indexOf(query) < 0;
      });
    });
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault(); // filtering happens as one types; Enter must not submit the review
      }
    });
  }

  // ------------------------------------------------------------ keys

  function mark(index) {
    if (index < 0 || index >= fieldsets.length) {
      return;
    }
    fieldsets.forEach(function (fieldset, i) {
      fieldset.classList.toggle("current", i === index);
    });
    current = index;
  }

  function focusCriterion(index) {
    if (!fieldsets.length) {
      return;
    }
    index = Math.max(0, Math.min(index, fieldsets.length - 1));
    mark(index);
    var first = fieldsets[index].querySelector("input:checked") || fieldsets[index].querySelector("input");
    (first || fieldsets[index]).focus();
    fieldsets[index].scrollIntoView({ block: "nearest" });
  }

  function typing(node) {
    if (!node || !node.tagName) {
      return false;
    }
    if (node.tagName === "TEXTAREA" || node.tagName === "SELECT" || node.isContentEditable) {
      return true;
    }
    return node.tagName === "INPUT" && ["radio", "checkbox", "button", "submit"].indexOf(node.type) < 0;
  }

  var keys = document.getElementById("keys");

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    var node = event.target;
    if (event.key === "Escape") {
      if (keys && keys.classList.contains("shown")) {
        keys.classList.remove("shown");
        return;
      }
      if (typing(node)) {
        node.blur();
        if (current >= 0) { fieldsets[current].focus(); }
      }
      return;
    }
    if (typing(node)) {
      return;
    }
    var key = event.key;
    if (key >= "1" && key <= "9") {
      if (current < 0) { mark(0); }
      var fieldset = fieldsets[current];
      if (!fieldset) { return; }
      var choices = fieldset.querySelectorAll('input[type="radio"][data-points], input[type="checkbox"]');
      var choice = choices[Number(key) - 1];
      if (!choice) { return; }
      event.preventDefault();
      choice.checked = choice.type === "radio" ? true : !choice.checked;
      choice.focus();
      choice.dispatchEvent(new Event("change", { bubbles: true }));
    } else if (key === "j") {
      event.preventDefault();
      focusCriterion(current + 1);
    } else if (key === "k") {
      event.preventDefault();
      focusCriterion(current - 1);
    } else if (key === "c") {
      if (current < 0) { mark(0); }
      var area = fieldsets[current] && fieldsets[current].querySelector("textarea");
      if (area) {
        event.preventDefault();
        area.focus();
      }
    } else if (key === "n") {
      var next = document.querySelector("a.next-file");
      if (next) {
        event.preventDefault();
        go(next.href);
      }
    } else if (key === "s") {
      var submitNext = document.getElementById("submit-next");
      if (submitNext) {
        event.preventDefault();
        if (window.confirm("Submit this review and open the next submission?")) {
          leaving = true;
          submitNext.click();
        }
      }
    } else if (key === "?") {
      if (keys) {
        event.preventDefault();
        keys.classList.toggle("shown");
        if (keys.classList.contains("shown")) { keys.focus(); }
      }
    }
  });

  update();
})();
