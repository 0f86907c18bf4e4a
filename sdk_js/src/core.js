// Telltale browser SDK: one instance per page, shared by the script-tag build (script.js)
// and the ES module (index.js). Nothing here runs at import time; index.js keeps calls
// made during server-side rendering (no window) from reaching it.
// Size is a feature: the script tag carries every feature in under 2,500 bytes gzipped
// (the build's budget), so the code is dense, and the small helpers
// exist because each saves bytes where the names they wrap would repeat. The limits are
// written as numbers where they are used (a named constant came out bigger).

/* global __VERSION__ */
var PREFIX = 'telltale_'

var options = {
  batchSize: 10,
  flushInterval: 1000,
  autoEvents: true,
  autoHook: true,
  // Links to files with these extensions count as downloads (a list or a comma-separated
  // string, lower case; false or "" for none).
  downloadExtensions: 'pdf,xlsx,docx,pptx,csv,txt,zip,rar,7z,gz,dmg,exe,msi,pkg,apk,mp3,wav,mp4,mov,avi',
}
var url // POST URL; set by init(), sends wait for it
var memory = {} // storage fallback when localStorage throws (Safari private mode, sandboxes)
var sending // the delivery in progress, if any: one at a time keeps retries in order
var timerAt = 0 // when the next send is due (a number: the build compares it unsafely)
var attempt = 0 // consecutive failed sends, for the backoff
var retryAt = 0
var lastUrl // the URL of the last page view
var referrer
var reporter // turns debug reports into console lines, see report()
// A page view waits for the router to set the new page's title (see watch).
var waiting // its timer
var title // the title when the URL changed
var checks // title checks made so far
var changedAt // when the URL changed: the page view's time
var seen // the URL then: by the time a popstate is seen, location is the next one
// The page on screen, for its engagement event (pageLeft).
var current // its page_viewed properties, until the engagement is queued
var shownAt // when it last became visible; 0 while hidden
var visibleMs // how long it has been visible, before shownAt
var deepest // the deepest scroll reached, in % of the page's height

export var assign = Object.assign
var now = () => Date.now()
var json = (value) => JSON.stringify(value)

// ---- storage: every access in try/catch, with an in-memory copy as the fallback -------

// Storage is the truth (another tab may have changed it), except for a key that storage
// could not keep (blocked storage, quota): memory's copy, kept from a failed write until a
// good one, comes first. Values are JSON; a removed key is written as undefined (the text
// "undefined", which no read parses), which is shorter than removing it. No value here is
// falsy.
var get = (key, value) => {
  try {
    value = JSON.parse(localStorage[PREFIX + key])
  } catch (e) {}
  return memory[key] || value
}

var set = (key, value) => {
  memory[key] = value
  try {
    localStorage[PREFIX + key] = json(value)
    memory[key] = 0
  } catch (e) {}
}

// ---- debug output -------------------------------------------------------------------

// What debug mode prints lives in debug.js: here each report is a one-letter code and
// its data. init() decides whether debug mode is on. __DEBUG__ is false in the script
// tag, which has no reports at all: in debug mode it hands over to its debug build (see
// script.js). Every call is written `__DEBUG__ && report(...)`, so that the script tag's
// build drops the call with its arguments.

/** Sets the function that turns debug reports into console lines (see debug.js). */
export var debugWith = (fn) => {
  reporter = fn
}

/* global __DEBUG__ */
export var report = (...args) => options.debug && reporter(...args)

/** Whether debug mode is asked for by the page's URL or a flag in localStorage. */
export var debugAsked = () => /telltale_debug=1/.test(location) || get('debug')

// ---- ids and event items ------------------------------------------------------------

// Version 7 UUIDs (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.
// Ids made at about the same time sort together, so the collector's message_id index
// grows at its end instead of dirtying a random page for every event (measured with
// bench/store_bench.py). The random bits come from Math.random, which works on plain
// http too (unlike randomUUID) and costs fewer bytes than getRandomValues: the ids are no
// secrets, and the browsers seed it from the system's entropy.
var uuid = (t) => (
  // 11 hex digits of milliseconds last until the year 2527.
  (t = '0' + now().toString(16)),
  // Random hex for each 0 and 1 of the template, 8 → 8…b (the variant); 7 stays.
  t.slice(0, 8) + '-' + t.slice(8) + '-7000-8000-100000000000'.replace(/[018]/g, (c) =>
    (c ^ (Math.random() * 16) & (15 >> (c / 4))).toString(16),
  )
)

export var getAnonymousId = (id) => get('id') || set('id', (id = uuid())) || id

// The page at `at` (a URL; default the one on screen); on SPA navigations the referrer
// is the previous URL.
var page = (at = location) => ({
  url: at.href,
  path: at.pathname,
  title: document.title,
  referrer: referrer || document.referrer,
})

var blocked = () =>
  get('optout') || (options.respectDoNotTrack && (navigator.doNotTrack == 1 || navigator.globalPrivacyControl))

// ---- the persisted queue ------------------------------------------------------------

// Undelivered events, oldest first. Storage is the queue (with memory as the fallback):
// every change reads it, changes it and writes it back, so events that another tab or an
// earlier page left there are sent too. A duplicate send is harmless (the collector
// stores each message_id once); a lost event is not.
var load = () => get('queue') || []

// Writes the queue back, keeping the newest 500 events (while undelivered; the oldest go
// first).
var store = (queue) => {
  var over = queue.length - 500
  if (__DEBUG__ && over > 0) report('f', over)
  set('queue', queue.slice(-500))
}

// Queues an event item. `at` is when it happened (default now), `where` the page it
// happened on (default the current one).
var enqueue = (fields, at, where) => {
  if (blocked()) {
    __DEBUG__ && report('o')
    return
  }
  var event = assign(fields, {
    user: get('user'), // none while anonymous (JSON leaves out an undefined user)
    message_id: uuid(),
    timestamp: at || now(), // epoch ms
    anonymous_id: getAnonymousId(),
    context: assign({}, where || page(), {
      locale: navigator.language,
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      screen: screen.width + 'x' + screen.height,
      library: { name: 'telltale', version: __VERSION__ },
      // Automation says so itself; the collector flags the visitor as a bot.
      webdriver: navigator.webdriver,
    }),
  })
  store([...load(), event])
  __DEBUG__ && report('q', event)
  schedule()
}

// The first queued events that fit one request (at most `max` events and 60,000 bytes,
// and always at least one), and that request's body. A body stays under the 64 KB that
// browsers allow in flight for sendBeacon and fetch keepalive together (and far under the
// collector's 512 KB). An event over the collector's 32 KB is refused on its own (in the
// answer's errors), the others in its batch are stored.
var take = (max) => {
  var batch = []
  var size = 200 // the envelope around the events
  // Stops before an event that would not fit, or after the max-th.
  load().some((e) => ((size += new Blob([json(e)]).size + 1) > 6e4 && batch[0]) || !batch.push(e) || !--max)
  return [batch, json({ app_id: options.appId, sent_at: now(), events: batch })]
}

// ---- delivery -----------------------------------------------------------------------

// A string body goes as Content-Type text/plain;charset=UTF-8 (for sendBeacon too): a
// "simple" request, so no CORS preflight. keepalive lets the request outlive the page
// (the sendBeacon fallback). fetch's default credentials send no cookies to a collector
// on another origin.
var post = (data, keepalive) => fetch(url, { method: 'POST', body: data, keepalive })

// Sends when a batch is full, else after flushInterval; never before a backoff ends. A
// timer that is still to come and no later stays; an earlier one is added (the later
// one then finds less or nothing to send).
var schedule = () => {
  var count = load().length
  var at = Math.max(retryAt, now() + (count < options.batchSize && options.flushInterval))
  if (url && !sending && count && !(timerAt > now() && timerAt <= at)) setTimeout(send, (timerAt = at) - now())
}

// One delivery at a time: requests of at most batchSize events, oldest first, until
// nothing is pending. Resolves true when the queue is empty, false when a send failed
// (the events stay queued and are retried).
var send = () =>
  sending ||
  (sending = deliver().then((ok) => {
    sending = 0
    schedule() // what came meanwhile, or the retry
    return ok
  }))

var deliver = async () => {
  for (;;) {
    var [batch, data] = take(options.batchSize)
    if (!url || !batch[0]) return !batch[0]
    __DEBUG__ && report('s', batch, url)
    try {
      var response = await post(data)
      if (/^(408|429|5)/.test(response.status)) throw response
      attempt = retryAt = 0
      // Any other 4xx is final: retrying cannot fix it, so the events go too.
      __DEBUG__ && report('a', response, batch)
      // The batch leaves the queue: its body names each of its message_ids.
      store(load().filter((e) => !data.includes(e.message_id)))
    } catch (failure) {
      // Offline, unreachable, 408, 429 or 5xx: the events stay queued and are retried
      // when the collector says (Retry-After, in seconds), else after a jittered
      // exponential backoff of at most a minute.
      var wait = (failure.headers && failure.headers.get('Retry-After') * 1000) || Math.min(6e4, 1000 * 2 ** attempt++)
      retryAt = now() + wait * (1 + Math.random() / 2)
      __DEBUG__ && report('e', failure, wait)
      return false
    }
  }
}

/** Sends everything queued now. Resolves true when the queue is empty, false when a send failed (the events stay queued and are retried). */
export var flush = send

// ---- automatic events ---------------------------------------------------------------

// Without properties the collector stores {}.
var track = (name, properties, at, where) => enqueue({ event: name, properties }, at, where)

// A page view: once per real URL change (a replaceState to the same URL counts once),
// timed when the URL changed.
var pageView = () => {
  clearTimeout(waiting)
  waiting = checks = 0
  if (seen == lastUrl) return
  // After an SPA navigation the referrer is the previous URL (none before the first).
  referrer = lastUrl
  lastUrl = seen
  pageLeft(changedAt)
  current = page(new URL(seen))
  visibleMs = deepest = 0
  scrolled()
  track('page_viewed', current, changedAt, current)
}

// Routers set the new page's title after the history call: in their own code that
// follows, on the next animation frame, or once the route's data has loaded. The page
// view waits for the title to change (checked on the next task, then every 50 ms) for
// at most half a second, then takes the title as it is (some pages share a title).
// Several history calls in one task make one page view, for the final URL.
var check = () => {
  if (document.title != title || checks++ > 9) pageView()
  else waiting = setTimeout(check, 50)
}

// `before` is the title to wait a change from; without one the page view is taken on the
// next task (the page's first, whose title is in its HTML).
var watch = (before) => {
  // A page view still waiting for its title is for the previous URL, which counts once
  // whatever changes the URL next (a history call, back/forward, a hash change).
  if (checks) pageView()
  seen = location.href
  if (options.autoEvents) {
    clearTimeout(waiting) // several history calls in one task: one page view, for the last URL
    title = before
    changedAt = now()
    waiting = setTimeout(check)
  }
}

// A history call that keeps the URL (routers save scroll positions and state so) is no
// navigation: a page view waiting for its title keeps waiting.
var navigated = () => location.href != seen && watch(document.title)

// ---- engagement: how long the page was visible, how far down it was read --------------

var scrolled = () => {
  deepest = Math.max(
    deepest,
    // Rounded with +.5|0, which also makes NaN (nothing to scroll in, in an empty frame) 0.
    Math.min(100, ((100 * (scrollY + innerHeight)) / document.documentElement.scrollHeight + 0.5) | 0),
  )
}

var shown = (at) => {
  if (shownAt) visibleMs += at - shownAt
  shownAt = !document.hidden && at
}

// The page is left (another page view, hidden, or unloaded): its engagement, once per
// page view, as an event of its own on the page it measures. A page that was never
// visible has none. Visit duration and scroll figures read it; it never makes a visit
// with one page view a non-bounce.
var pageLeft = (at) => {
  shown(at)
  if (current && visibleMs) track('page_left', { engaged_ms: visibleMs, scroll_depth: deepest }, at, current)
  current = 0
}

// The page is going away or hidden (which on mobile may be the last chance): a page view
// still waiting for its title is taken now, the engagement is queued, and the queued
// events go with sendBeacon (or fetch with keepalive), as many as one request takes:
// browsers allow 64 KB in flight for those together. Beacons give no answer, so the
// events stay queued and are sent again (by the next send, or the next page); the
// collector stores each message_id once.
var hidden = () => {
  if (waiting) pageView()
  pageLeft(now())
  var [batch, data] = take(1e9)
  if (url && batch[0]) {
    __DEBUG__ && report('b', batch)
    if (!navigator.sendBeacon(url, data)) post(data, true).catch(() => {})
  }
}

// ---- outbound links and file downloads ------------------------------------------------

var IGNORE = '[data-telltale-ignore]'

// A click (primary button, with or without a modifier key) or a middle click (auxclick)
// on a link: button 0 for a click, 1 for an auxclick (the right button's 2 is neither).
// The event is only queued: the browser follows the link as it would without the SDK,
// and a page that unloads sends the queue with a beacon.
var linkClicked = (event) => {
  var link = event.target
  link = link.closest && link.closest('a[href]')
  if (options.autoEvents && link && event.button == (event.type == 'auxclick') && !link.closest(IGNORE)) {
    // An HTML link resolves its own URL (href, pathname, host, protocol).
    var extension = link.pathname.toLowerCase().split(/\.(\w+)$/)[1]
    if (link.hasAttribute('download') || ('' + options.downloadExtensions).split(/\W+/).includes(extension))
      track('file_downloaded', { url: link.href, extension })
    else if (/^http/.test(link.href) && link.host != location.host) track('outbound_link_clicked', { url: link.href })
  }
}

// ---- form submits -------------------------------------------------------------------

// The form's fields (form.elements: its controls, with those outside it that name it in
// their form attribute). Tested on "type name autocomplete": fields of these types
// (buttons, fieldsets and outputs hold nothing a visitor typed), fields named like card
// numbers or codes, and autocomplete="cc-…" fields never appear.
var SENSITIVE = /^(password|hidden|submit|button|reset|image|file|fieldset|output) |card|cv[vc]|iban|ssn|[^a-z]cc/i

// A submit event's target is the form (an element: it has closest).
var formSubmitted = (event) => {
  var form = event.target
  var attr = (name) => form.getAttribute(name)
  var fields = []
  if (options.autoHook && !form.closest(IGNORE)) {
    [...form.elements].forEach((el) => {
      var name = el.name || el.id
      if (
        name &&
        !fields.includes(name) &&
        !SENSITIVE.test(el.type + ' ' + name + ' ' + el.autocomplete) &&
        !el.closest(IGNORE)
      )
        fields.push(name)
    })
    // getAttribute, not form.id/.action/...: an input named "action" would shadow those.
    var action = new URL(attr('action') || '', location)
    track('form_submitted', {
      form_id: attr('id'),
      form_name: attr('name'),
      form_action: action.origin + action.pathname, // no query string: it may carry values
      form_method: (attr('method') || 'get').toLowerCase(),
      fields,
    })
  }
}

var hook = () => {
  ;['pushState', 'replaceState'].forEach((name) => {
    var original = history[name]
    history[name] = function () {
      original.apply(this, arguments) // returns nothing
      navigated()
    }
  })
  // Capture phase (as every listener here): runs before the page's own handlers, so a
  // submit or a click that the page prevents still counts; the SDK never prevents,
  // delays or repeats one.
  for (var type in listeners) addEventListener(type, listeners[type], true)
}

// Every listener is on window in the capture phase: window sees events dispatched at the
// document and its elements before anything on the page does.
var listeners = {
  // A hash change is a history step too: every browser that runs this SDK (ES2017) fires
  // popstate for it, so no hashchange listener (only Internet Explorer fired that alone).
  popstate: navigated,
  pageshow(e) {
    // Restored from the back/forward cache: no load happened, but it is a page view,
    // although the URL is the same (and so is its referrer).
    if (e.persisted) (lastUrl = referrer), watch()
  },
  scroll: scrolled,
  submit: formSubmitted,
  click: linkClicked,
  auxclick: linkClicked,
  pagehide: hidden,
  visibilitychange() {
    shown(now())
    if (document.hidden) hidden() // which finds the time already counted
  },
  online() {
    retryAt = 0
    schedule()
  },
}

// ---- public API ---------------------------------------------------------------------

/** Configures the SDK and starts sending. Calling it again updates the options. */
export var init = (config) => {
  // Unset options keep their defaults.
  for (var key in config) if (config[key] != null) options[key] = config[key]
  // ?telltale_debug=1 is read once: an SPA navigation may drop it from the URL.
  if (__DEBUG__) options.debug = options.debug || debugAsked()
  if (!options.appId) {
    __DEBUG__ && report('m')
    return
  }
  // The first init with an app id installs the listeners.
  if (!url) hook()
  url = new URL(options.endpoint || '/', location).href.replace(/\/*$/, '/v1/events')
  __DEBUG__ && report('i', options)
  if (blocked()) set('queue')
  if (!lastUrl && !waiting) watch()
  schedule()
}

/** Tracks an event named in snake_case, e.g. trackEvent('plan_upgraded', {plan: 'pro'}). */
// A missing or bad name is the collector's to refuse (in its answer, which debug mode
// prints).
export var trackEvent = (name, properties) => track(name, properties)

// The traits kept while anonymous, with `more` merged in.
var traits = (more) => assign(get('traits') || {}, more)

var identified = (more) => enqueue({ type: 'identify', traits: more })

/** Links this visitor's anonymous id to your user id (after login or signup), with optional traits. */
export var setUserId = (id, more) => {
  if (id || id === 0) {
    // Traits given by identify() while anonymous are sent with the first user id.
    more = traits(more)
    if (get('user') != (id += '') || Object.keys(more)[0]) {
      set('user', id)
      set('traits')
      identified(more)
    }
  }
}

/** Merges traits into the current user; while anonymous they wait for setUserId. */
export var identify = (more) =>
  get('user') ? identified(more || {}) : set('traits', traits(more))

/** Forgets the user (logout): the next events carry a new anonymous id and no user. */
export var reset = () => {
  set('user')
  set('traits')
  set('id') // a new one is made when next needed
}

/** Stops tracking in this browser (remembered in localStorage) and drops the queue. */
export var optOut = () => {
  set('optout', 1)
  set('queue')
}

/** Undoes optOut(). */
export var optIn = () => set('optout')
