/* Telltale dashboard: progressive enhancement only. Every page works without this file;
   with it, the overview's tables show share bars, the live page streams, the segment
   builder edits the rules as a tree instead of JSON, and funnel steps add and remove
   property filters in place. */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  /* The app picker has no script: a select that navigated on change would leave the
     page at the first arrow key (WCAG 3.2.2), so its form's Go button (or Enter)
     chooses the app. */

  /* A refused form's summary takes focus, so that a keyboard or screen-reader user
     starts at the list of problems, whose links lead to each field. */
  function errorSummary() {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) summary.focus();
  }

  /* Overview share bars --------------------------------------------------------------
     The CSP (style-src 'self') refuses style attributes in the markup, but not a
     property set through the CSSOM, so each row's share is set here from data-share. */
  function shareBars() {
    document.querySelectorAll("tr[data-share]").forEach(function (row) {
      var share = parseFloat(row.getAttribute("data-share"));
      if (isFinite(share)) row.style.setProperty("--share", Math.max(0, Math.min(100, share)) + "%");
    });
  }

  /* Period forms ----------------------------------------------------------------------
     From and To apply only to the Custom period: typing a date chooses it, so Show
     does not answer for the preset the select still names. */
  function periodDates() {
    document.querySelectorAll("select[name=period]").forEach(function (select) {
      var form = select.form;
      if (!form) return;
      ["from", "to"].forEach(function (name) {
        var field = form.elements.namedItem(name);
        if (!field || !field.addEventListener) return;
        field.addEventListener("input", function () { select.value = "custom"; });
        field.addEventListener("change", function () { select.value = "custom"; });
      });
    });
  }

  /* Live ------------------------------------------------------------------------- */
  var MAX_ROWS = 200;

  function eventRow(app, e, fresh) {
    var who = e.person || (e.user_id ? e.user_id : "anon:" + e.anonymous_id);
    var base = "/dashboard/apps/" + encodeURIComponent(app);
    var name = el("td", {}, [el("a", { href: base + "/events?event=" + encodeURIComponent(e.event), text: e.event })]);
    if (e.is_bot || (e.context && e.context.is_bot)) { name.appendChild(document.createTextNode(" ")); name.appendChild(el("span", { "class": "badge warn", text: "bot" })); }
    var props = JSON.stringify(e.properties || {});
    if (props.length > 160) props = props.slice(0, 157) + "...";
    return el("tr", fresh ? { "class": "new" } : {}, [
      el("td", {}, [el("time", { datetime: e.timestamp, text: (e.timestamp || "").replace("T", " ").slice(0, 19) })]),
      name,
      el("td", {}, [el("a", { href: base + "/people/" + encodeURIComponent(who), text: e.user_id || e.anonymous_id })]),
      el("td", { "class": "props" }, [el("code", { text: props })]),
    ]);
  }

  function live() {
    var box = document.querySelector("[data-live]");
    var rows = document.querySelector("[data-live-rows]");
    if (!box || !rows || !window.EventSource) return;
    var app = rows.getAttribute("data-app");
    var status = box.querySelector("[data-live-status]");
    var button = box.querySelector("[data-live-pause]");
    var paused = false;
    var held = [];
    var source = new EventSource(box.getAttribute("data-stream"));
    function show(e) {
      var empty = rows.querySelector("[data-live-empty]");
      if (empty) rows.removeChild(empty);
      rows.insertBefore(eventRow(app, e, true), rows.firstChild);
      while (rows.children.length > MAX_ROWS) rows.removeChild(rows.lastChild);
    }
    function say(text) { status.textContent = text; }
    button.hidden = false;
    source.addEventListener("open", function () { if (!paused) say("Live: newest first."); });
    source.addEventListener("event", function (msg) {
      var e = JSON.parse(msg.data);
      if (paused) { held.push(e); say("Paused: " + held.length + " new event" + (held.length === 1 ? "" : "s") + " held."); }
      else show(e);
    });
    source.addEventListener("revoked", function () { source.close(); say("Your session has ended: log in again."); });
    source.addEventListener("error", function () { if (!paused) say("Reconnecting..."); });
    button.addEventListener("click", function () {
      paused = !paused;
      button.setAttribute("aria-pressed", String(paused));
      if (!paused) { held.forEach(show); held = []; say("Live: newest first."); }
      else say("Paused.");
    });
  }

  /* Segment builder ---------------------------------------------------------------- */
  var EVENT_KINDS = ["has_done", "has_not_done", "count", "first_done_within", "last_done_within"];
  var KIND_LABELS = {
    has_done: "has done", has_not_done: "has not done", count: "did N times",
    first_done_within: "first did within days", last_done_within: "last did within days",
    trait: "trait"
  };
  /* The type select offers the leaf conditions only: "not" and "group" are buttons
     (Negate, Wrap in a group), so that arrowing through the types, which fires a change
     on each key, never nests the condition. */
  var LEAF_KINDS = EVENT_KINDS.concat(["trait"]);
  var MATCH_LABELS = { all: "all of", any: "any of" };
  var TEST_OPS = ["eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "exists"];
  var COUNT_OPS = ["gt", "gte", "lt", "lte", "eq"];
  var uid = 0;

  function scalar(text) {
    try {
      var v = JSON.parse(text);
      if (v === null || ["string", "number", "boolean"].indexOf(typeof v) >= 0) return v;
    } catch (err) { /* plain text */ }
    return text;
  }
  function show(v) { return typeof v === "string" ? v : JSON.stringify(v); }

  /* The tree, as plain objects: {type: "group", match, items}, {type: "not", item},
     {type: "trait", key, tests}, {type: KIND, event, tests, days, cmp, n}. */
  function testsFrom(where) {
    var tests = [];
    Object.keys(where || {}).forEach(function (key) {
      var t = where[key];
      if (t !== null && typeof t === "object" && !Array.isArray(t)) {
        Object.keys(t).forEach(function (op) { tests.push({ key: key, op: op, value: t[op] }); });
      } else tests.push({ key: key, op: "eq", value: t });
    });
    return tests;
  }
  function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function fromJSON(raw) {
    if (isObject(raw) && (raw.conditions || raw.match)) {
      var items = Array.isArray(raw.conditions) ? raw.conditions : [];
      return { type: "group", match: raw.match === "any" ? "any" : "all", items: items.map(fromJSON) };
    }
    var kind = isObject(raw) ? Object.keys(raw)[0] : undefined;
    var body = kind !== undefined && isObject(raw[kind]) ? raw[kind] : {};
    if (kind === "not") return { type: "not", item: fromJSON(body) };
    if (kind === "trait") {
      var tests = Object.keys(body).filter(function (k) { return k !== "key"; })
        .map(function (op) { return { key: body.key, op: op, value: body[op] }; });
      return { type: "trait", key: body.key || "", tests: tests.length ? tests : [{ key: body.key || "", op: "eq", value: "" }] };
    }
    if (EVENT_KINDS.indexOf(kind) < 0) throw new Error("unknown condition " + kind);
    var node = { type: kind, event: body.event || "", tests: testsFrom(isObject(body.where) ? body.where : {}),
      days: body.days !== undefined ? body.days : body.within_days, cmp: "gte", n: 1 };
    COUNT_OPS.forEach(function (op) { if (body[op] !== undefined) { node.cmp = op; node.n = body[op]; } });
    return node;
  }
  function whereOf(tests) {
    var where = {};
    tests.forEach(function (t) {
      if (!t.key) return;
      where[t.key] = where[t.key] || {};
      where[t.key][t.op] = t.value;
    });
    return where;
  }
  function toJSON(node) {
    if (node.type === "group") return { match: node.match, conditions: node.items.map(toJSON) };
    if (node.type === "not") return { not: toJSON(node.item) };
    if (node.type === "trait") {
      var t = { key: node.key };
      node.tests.forEach(function (x) { t[x.op] = x.value; });
      return { trait: t };
    }
    var body = { event: node.event };
    var where = whereOf(node.tests);
    if (Object.keys(where).length) body.where = where;
    if (node.days !== undefined && node.days !== "" && node.days !== null) {
      body[node.type === "first_done_within" || node.type === "last_done_within" ? "days" : "within_days"] = Number(node.days);
    }
    if (node.type === "count") body[node.cmp] = Number(node.n);
    var out = {}; out[node.type] = body; return out;
  }
  function blank(type) {
    if (type === "group") return { type: "group", match: "any", items: [blank("has_done")] };
    if (type === "trait") return { type: "trait", key: "", tests: [{ key: "", op: "eq", value: "" }] };
    return { type: type, event: "", tests: [], days: type.indexOf("within") > 0 ? 7 : "", cmp: "gte", n: 1 };
  }
  function isList(op) { return op === "in" || op === "not_in"; }
  /* A test's value as its new operator takes it: in and not_in a list, exists a
     boolean, the others one value. */
  function converted(value, op) {
    if (op === "exists") return typeof value === "boolean" ? value : value !== "false";
    if (isList(op)) {
      if (Array.isArray(value)) return value;
      return value === "" || value === undefined || value === null ? [] : [value];
    }
    if (Array.isArray(value)) return value.length ? value[0] : "";
    return value;
  }
  /* A condition of another type keeps what was typed, and what it had typed in the
     other family: an event condition its event, filters and days; a trait its key and
     tests. Walking the types with the arrow keys (trait on the way) thus loses nothing:
     back on an event type, the event is there again. `kept` is never sent. */
  function retyped(old, type) {
    if (old.type === type) return old;
    var node = blank(type);
    var kept = {};
    Object.keys(old.kept || {}).forEach(function (k) { kept[k] = old.kept[k]; });
    if (old.type === "trait") kept.trait = { key: old.key, tests: old.tests };
    else kept.event = { type: old.type, event: old.event, tests: old.tests, days: old.days, cmp: old.cmp, n: old.n };
    node.kept = kept;
    if (type === "trait") {
      if (kept.trait) { node.key = kept.trait.key; node.tests = kept.trait.tests; }
      return node;
    }
    var from = kept.event;
    if (from) {
      node.event = from.event;
      node.tests = from.tests;
      // Days the old type required (first/last done within) are not carried into an
      // optional window: that would narrow the new condition unasked.
      var within = type.indexOf("_within") > 0;
      if (from.days !== undefined && from.days !== null && from.days !== "" &&
          (within || from.type.indexOf("_within") < 0)) node.days = from.days;
      node.cmp = from.cmp || node.cmp;
      node.n = from.n === undefined ? node.n : from.n;
    }
    return node;
  }

  /* A label whose visible text is short ("event") and whose name says which condition
     it belongs to ("Condition 2: event"), for a screen reader's list of fields. */
  function labelled(text, input, prefix) {
    var id = "b" + (++uid);
    input.id = id;
    var label = el("label", { "for": id });
    if (prefix) label.appendChild(el("span", { "class": "sr", text: prefix + ": " }));
    label.appendChild(document.createTextNode(text));
    return [label, input];
  }
  function input(value, onchange, attrs) {
    var i = el("input", attrs || {});
    i.value = value === undefined || value === null ? "" : show(value);
    i.addEventListener("input", function () { onchange(i.value); });
    return i;
  }
  function select(options, value, onchange, labels) {
    var s = el("select", {});
    options.forEach(function (o) {
      var opt = el("option", { value: o, text: labels ? labels[o] : o });
      if (o === value) opt.selected = true;
      s.appendChild(opt);
    });
    s.addEventListener("change", function () { onchange(s.value); });
    return s;
  }
  /* A button's name starts with its visible text (WCAG 2.5.3: a voice user says what
     they see) and goes on to say which condition it acts on. */
  function button(text, onclick, label) {
    var b = el("button", { type: "button", "class": "link", text: text });
    if (label) b.setAttribute("aria-label", label);
    b.addEventListener("click", onclick);
    return b;
  }

  /* Every action redraws the tree; each control carries a key (its condition's path and
     its role) so that focus lands back on the control acted on, or the one it made,
     instead of falling to the page. */
  function keyed(node, key) { node.setAttribute("data-focus", key); return node; }
  function append(parent, nodes) { nodes.forEach(function (n) { parent.appendChild(n); }); }

  function builder() {
    var box = document.querySelector("[data-builder]");
    var area = document.querySelector("[data-rules]");
    if (!box || !area) return;
    var copy = document.querySelector("[data-rules-copy]");
    var root;
    try {
      root = fromJSON(JSON.parse(area.value));
      if (root.type !== "group") throw new Error("not a group");
    } catch (err) { return; /* the JSON stays the editor */ }
    box.hidden = false;
    // Conditions and groups are numbered in reading order on each drawing, for the
    // legends and the fields' names.
    var counts;
    function sync() {
      var text = JSON.stringify(toJSON(root));
      area.value = text;
      if (copy) copy.value = text;
    }
    function rerender(focus) {
      counts = { condition: 0, group: 0 };
      box.textContent = "";
      box.appendChild(render(root, null, "r", 0));
      sync();
      var target = focus && box.querySelector('[data-focus="' + focus + '"]');
      if (target) target.focus();
    }
    function testRows(node, holder, path, name) {
      var trait = node.type === "trait";
      var more = path + ":" + (trait ? "add-test" : "add-filter");
      node.tests.forEach(function (t, i) {
        var at = path + ".t" + i;
        var what = (trait ? "test " : "filter ") + (i + 1);
        var prefix = name + ", " + what;
        var row = el("div", { "class": "builder-row" });
        if (!trait) append(row, labelled("where", keyed(input(t.key, function (v) { t.key = v; sync(); }, { placeholder: "property" }), at + ":key"), prefix));
        append(row, labelled("test", keyed(select(TEST_OPS, t.op, function (v) {
          t.value = converted(t.value, v);
          t.op = v;
          rerender(at + ":op");
        }), at + ":op"), prefix));
        // A value of another type than the operator takes (hand-written JSON) is shown
        // as text rather than refused: the Query API names it when the rules are run.
        var val = isList(t.op) && Array.isArray(t.value) ? t.value.map(show).join(", ") : t.value;
        append(row, labelled("value", input(val, function (v) {
          if (isList(t.op)) t.value = v.split(",").map(function (x) { return scalar(x.trim()); }).filter(function (x) { return x !== ""; });
          else if (t.op === "exists") t.value = v !== "false";
          else t.value = scalar(v);
          sync();
        }, { "class": "narrow" }), prefix));
        if (!trait || node.tests.length > 1) {
          var verb = trait ? "Remove test" : "Remove filter";
          row.appendChild(button(verb, function () { node.tests.splice(i, 1); rerender(more); },
            verb + " " + (i + 1) + " of " + name.toLowerCase()));
        }
        holder.appendChild(row);
      });
    }
    /* A condition or group, drawn into a fieldset whose legend numbers it. `replace`
       puts another node (or, given null, nothing) in its place: null for the root.
       `negated` is the number of the negation the node is drawn inside, else 0: a
       condition there shares the negation's fieldset and number, and the negation
       holds the buttons that act on the pair. */
    function render(node, replace, path, negated) {
      var isGroup = node.type === "group";
      var no = negated && !isGroup ? negated : ++counts[isGroup ? "group" : "condition"];
      var name = (isGroup ? "Group " : "Condition ") + no;
      var wrap, legend;
      if (negated && !isGroup) wrap = el("div", {});
      else {
        wrap = el("fieldset", { "class": "builder-group" });
        legend = el("legend", { text: isGroup ? name + " (" + MATCH_LABELS[node.match] + ")" : node.type === "not" ? name + " (negated)" : name });
        wrap.appendChild(legend);
      }
      var head = el("div", { "class": "builder-row" });
      wrap.appendChild(head);
      if (node.type === "not") {
        wrap.appendChild(render(node.item, function (replacement, focus) {
          node.item = replacement || blank("has_done");
          rerender(focus);
        }, path + ".n", no));
      } else if (isGroup) {
        append(head, labelled(replace ? "match" : "People who match", keyed(select(["all", "any"], node.match, function (v) {
          node.match = v;
          legend.textContent = name + " (" + MATCH_LABELS[v] + ")";
          sync();
        }, MATCH_LABELS), path + ":match"), name));
        node.items.forEach(function (child, i) {
          wrap.appendChild(render(child, function (replacement, focus) {
            if (replacement === null) node.items.splice(i, 1); else node.items[i] = replacement;
            rerender(focus);
          }, path + "." + i, 0));
        });
        var add = el("div", { "class": "builder-row" });
        var into = " in " + name.toLowerCase();
        add.appendChild(keyed(button("+ condition", function () {
          node.items.push(blank("has_done"));
          rerender(path + "." + (node.items.length - 1) + ":kind");
        }, "+ condition" + into), path + ":add-condition"));
        add.appendChild(keyed(button("+ group", function () {
          node.items.push(blank("group"));
          rerender(path + "." + (node.items.length - 1) + ":match");
        }, "+ group" + into), path + ":add-group"));
        wrap.appendChild(add);
      } else {
        append(head, labelled("type", keyed(select(LEAF_KINDS, node.type, function (v) {
          replace(retyped(node, v), path + ":kind");
        }, KIND_LABELS), path + ":kind"), name));
        if (node.type === "trait") {
          append(head, labelled("key", input(node.key, function (v) { node.key = v; node.tests.forEach(function (t) { t.key = v; }); sync(); }, { placeholder: "e.g. plan" }), name));
          testRows(node, wrap, path, name);
          wrap.appendChild(keyed(button("+ test", function () {
            node.tests.push({ key: node.key, op: "eq", value: "" });
            rerender(path + ".t" + (node.tests.length - 1) + ":op");
          }, "+ test for " + name.toLowerCase()), path + ":add-test"));
        } else {
          append(head, labelled("event", input(node.event, function (v) { node.event = v; sync(); }, { placeholder: "event name" }), name));
          if (node.type === "count") {
            append(head, labelled("times", select(COUNT_OPS, node.cmp, function (v) { node.cmp = v; sync(); }), name));
            append(head, labelled("count", input(node.n, function (v) { node.n = v; sync(); }, { "class": "narrow", inputmode: "numeric" }), name));
          }
          var within = node.type.indexOf("_within") > 0 ? "days" : "within days (optional)";
          append(head, labelled(within, input(node.days, function (v) { node.days = v; sync(); }, { "class": "narrow", inputmode: "decimal" }), name));
          testRows(node, wrap, path, name);
          wrap.appendChild(keyed(button("+ property filter", function () {
            node.tests.push({ key: "", op: "eq", value: "" });
            rerender(path + ".t" + (node.tests.length - 1) + ":key");
          }, "+ property filter for " + name.toLowerCase()), path + ":add-filter"));
        }
      }
      if (replace && !negated) {
        var acts = el("div", { "class": "builder-row" });
        var what = name.toLowerCase();
        if (node.type === "not") {
          acts.appendChild(keyed(button("Remove negation", function () {
            replace(node.item, path + (node.item.type === "group" ? ":match" : ":negate"));
          }, "Remove negation of " + what), path + ":unnegate"));
        } else {
          acts.appendChild(keyed(button("Negate", function () {
            replace({ type: "not", item: node }, path + ":unnegate");
          }, "Negate " + what), path + ":negate"));
          acts.appendChild(keyed(button("Wrap in a group", function () {
            replace({ type: "group", match: "any", items: [node] }, path + ":match");
          }, "Wrap in a group: " + what), path + ":wrap"));
        }
        // Removed, a condition leaves focus on its group's "+ condition".
        var parent = path.slice(0, path.lastIndexOf("."));
        acts.appendChild(button("Remove", function () { replace(null, parent + ":add-condition"); }, "Remove " + what));
        wrap.appendChild(acts);
      }
      return wrap;
    }
    rerender();
    area.addEventListener("change", function () {
      try { root = fromJSON(JSON.parse(area.value)); rerender(); } catch (err) { /* keep typing */ }
    });
    document.querySelector("[data-save-segment]").addEventListener("submit", sync);
  }

  /* Funnels: per-step property filters ---------------------------------------------
     Without the script each step has one blank filter row (fill it and submit to add
     one; clear a property to remove it). With it, a step shows only its filters, with
     "+ property filter" and "Remove" buttons. */
  var filterIds = 0;

  function funnelFilters() {
    document.querySelectorAll("[data-filters]").forEach(function (box) {
      var n = box.getAttribute("data-filters");
      var blank = box.querySelector("[data-blank-filter]");
      if (!blank) return;
      var template = blank.cloneNode(true);
      template.removeAttribute("data-blank-filter");
      blank.parentNode.removeChild(blank);
      function withRemove(row) {
        row.appendChild(button("Remove", function () {
          row.parentNode.removeChild(row);
          add.focus();
        }, "Remove this filter from step " + n));
        return row;
      }
      box.querySelectorAll(".step-filter").forEach(withRemove);
      var add = button("+ property filter", function () {
        var row = template.cloneNode(true);
        filterIds += 1;
        row.querySelectorAll("input, select").forEach(function (field) {
          var id = field.id + "-js" + filterIds;
          row.querySelector("label[for='" + field.id + "']").setAttribute("for", id);
          field.id = id;
        });
        box.insertBefore(withRemove(row), add);
        row.querySelector("input").focus();
      }, "Add a property filter to step " + n);
      box.appendChild(add);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    errorSummary(); shareBars(); periodDates(); live(); builder(); funnelFilters();
  });
})();
