// Telltale browser SDK: one instance per page, shared by the script-tag build (script.js)
// and the ES module (index.js). Nothing here touches `window` at import time, so the ES
// module can be imported during server-side rendering; every entry point checks `window`.

/* global __VERSION__ */
var LIBRARY = { name: 'telltale', version: __VERSION__ }
var PREFIX = 'telltale_'
var MAX_QUEUE = 500 // events kept in localStorage while undelivered; the oldest go first
var MAX_EVENT_BYTES = 32000 // the collector refuses an event over 32 KB (413)
// A request body stays under the 64 KB that browsers allow in flight for sendBeacon and
// fetch keepalive together (and far under the collector's 512 KB).
var MAX_BODY_BYTES = 60000
var MAX_BACKOFF = 60000

// Server-side rendering imports the module without a window; the script-tag build
// defines __BROWSER__ so these checks compile away.
/* global __BROWSER__ */
const SSR = !__BROWSER__ && typeof window == 'undefined'

var options = { batchSize: 10, flushInterval: 1000, autoEvents: true, autoHook: true }
var url // POST URL; set by init(), sends wait for it
var queue = [] // undelivered events, oldest first, mirrored in localStorage
var done = {} // message_ids this page has delivered or given up, never re-adopted
var beaconed = {} // message_ids handed to sendBeacon since the page was last visible
var memory = {} // storage fallback when localStorage throws (Safari private mode, sandboxes)
var unsaved = {} // keys whose last write failed (blocked storage, quota): memory has them
var sending // the request in flight, if any: one at a time keeps retries in order
var timer
var timerAt
var attempt = 0 // consecutive failed sends, for the backoff
var retryAt = 0
var hooked // listeners installed
var lastUrl // the URL of the last page view
var referrer
// A page view waits for the router to set the new page's title (see watch).
var waiting // its timer
var title // the title when the URL changed
var checks // title checks made so far
var changedAt // when the URL changed: the page view's time
// The page on screen, for its engagement event (pageLeft).
var current // its page_viewed properties, until the engagement is queued
var shownAt // when it last became visible; 0 while hidden
var visibleMs // how long it has been visible, before shownAt
var deepest // the deepest scroll reached, in % of the page's height

// ---- storage: every access in try/catch, with an in-memory copy as the fallback -------

// Storage is the truth (another tab may have changed it), memory the fallback for a key
// that storage could not keep.
var get = (key) => {
  try {
    if (!unsaved[key]) return (memory[key] = localStorage.getItem(PREFIX + key))
  } catch (e) {}
  return memory[key]
}

var set = (key, value) => {
  memory[key] = value
  try {
    if (value == null) localStorage.removeItem(PREFIX + key)
    else localStorage.setItem(PREFIX + key, value)
    unsaved[key] = 0
  } catch (e) {
    unsaved[key] = 1
  }
}

// ---- debug output -------------------------------------------------------------------

// What debug mode prints lives in debug.js, which the script tag loads only when debug
// mode is on: here each report is a one-letter code and its data.
var reporter

/** Sets the function that turns debug reports into console lines (see debug.js). */
export var debugWith = (fn) => {
  reporter = fn
}

// ?telltale_debug=1 is remembered: an SPA navigation may drop it from the URL.
var debugging = () =>
  options.debug || (options.debug = /[?&]telltale_debug=1/.test(location.search)) || get('debug') == '1'

export var report = (...args) => {
  if (reporter && debugging()) reporter(...args)
}

// ---- ids and event items ------------------------------------------------------------

// Version 7 UUIDs (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.
// Ids made at about the same time sort together, so the collector's message_id index
// grows at its end instead of dirtying a random page for every event (measured with
// bench/store_bench.py). getRandomValues works on plain http too, unlike randomUUID.
var uuid = (t) => (
  (t = Date.now().toString(16).padStart(12, 0)),
  // Random hex for each 0 and 1 of the template, 8 → 8…b (the variant); 7 stays.
  t.slice(0, 8) + '-' + t.slice(8) + (-7e3 + '' + -8e3 + -1e11).replace(/[018]/g, (c) =>
    (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16),
  )
)

export var getAnonymousId = () => {
  var id = get('id')
  if (!id) set('id', (id = uuid()))
  return id
}

var timezone = () => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone
  } catch (e) {}
}

// The page as it is now; on SPA navigations the referrer is the previous URL.
var page = () => ({
  url: location.href,
  path: location.pathname,
  title: document.title,
  referrer: referrer == null ? document.referrer : referrer,
})

// An event item. `at` is when it happened (default now), `where` the page it happened on
// (default the current one).
var item = (fields, at, where) => {
  var context = Object.assign({}, where || page(), {
    locale: navigator.language,
    timezone: timezone(),
    screen: screen.width + 'x' + screen.height,
    library: LIBRARY,
  })
  // Automation says so itself; the collector flags the visitor as a bot.
  if (navigator.webdriver) context.webdriver = true
  var user = get('user')
  if (user) fields.user = user
  fields.message_id = uuid()
  fields.timestamp = new Date(at || Date.now()).toISOString()
  fields.anonymous_id = getAnonymousId()
  fields.context = context
  return fields
}

var blocked = () => {
  var n = navigator
  return (
    get('optout') == '1' || (options.respectDoNotTrack && (n.doNotTrack == '1' || !!n.globalPrivacyControl))
  )
}

var bytes = (s) => {
  return new Blob([s]).size
}

var enqueue = (event) => {
  if (blocked()) return report('o')
  if (bytes(JSON.stringify(event)) > MAX_EVENT_BYTES) return report('z', event)
  queue.push(event)
  save()
  report('q', event)
  schedule()
}

// ---- the persisted queue ------------------------------------------------------------

var stored = () => {
  try {
    return JSON.parse(get('queue')) || []
  } catch (e) {
    return []
  }
}

// Writes the queue back, first adopting events another tab (or an earlier page) left in
// storage: a duplicate send is harmless (the collector dedupes by message_id), a lost
// event is not.
var save = () => {
  var have = {}
  queue.forEach((e) => (have[e.message_id] = 1))
  // Adopted events go first: they are usually the older ones.
  queue = stored()
    .filter((e) => !have[e.message_id] && !done[e.message_id])
    .concat(queue)
  var over = queue.length - MAX_QUEUE
  if (over > 0) {
    report('f', over)
    queue.splice(0, over).forEach(forget)
  }
  set('queue', JSON.stringify(queue))
}

var forget = (e) => {
  done[e.message_id] = 1
}

var remove = (batch) => {
  batch.forEach(forget)
  queue = queue.filter((e) => {
    return !done[e.message_id]
  })
  save()
}

// Events not yet handed to a beacon: a beacon'd event waits for the page to be visible
// again (or the next load) before it is resent with fetch and confirmed.
var pending = () => {
  return queue.filter((e) => {
    return !beaconed[e.message_id]
  })
}

// The first events of `list` that fit one request: at most `max` events and
// MAX_BODY_BYTES, and always at least one.
var take = (list, max) => {
  var out = []
  var size = 200 // the envelope around the events
  for (var i = 0; i < list.length && out.length < max; i++) {
    size += bytes(JSON.stringify(list[i])) + 1
    if (out.length && size > MAX_BODY_BYTES) break
    out.push(list[i])
  }
  return out
}

var body = (batch) => {
  return JSON.stringify({ app_id: options.appId, sent_at: new Date().toISOString(), events: batch })
}

// ---- delivery -----------------------------------------------------------------------

// A string body goes as Content-Type text/plain;charset=UTF-8 (for sendBeacon too): a
// "simple" request, so no CORS preflight. keepalive lets the request outlive the page
// (the sendBeacon fallback).
var post = (data, keepalive) =>
  fetch(url, {
    method: 'POST',
    body: data,
    keepalive: keepalive,
    credentials: 'omit',
  })

// Sends when a batch is full, else after flushInterval; never before a backoff ends.
var schedule = () => {
  if (!url || sending || !pending().length) return
  var at = Math.max(retryAt, Date.now() + (pending().length >= options.batchSize ? 0 : options.flushInterval))
  if (timer && timerAt <= at) return
  clearTimeout(timer)
  timerAt = at
  timer = setTimeout(() => {
    timer = 0
    send()
  }, at - Date.now())
}

var retryAfter = (response) => {
  var h = response && response.headers && response.headers.get('Retry-After')
  if (!h) return 0
  return isNaN(h) ? Date.parse(h) - Date.now() : h * 1000
}

// One request with the oldest pending events. Resolves true when the collector answered
// for good (accepted, or refused with a 4xx that a retry cannot fix), false otherwise.
var send = () => {
  if (sending) return sending
  var batch = pending()
  if (!url || !batch.length || blocked()) return Promise.resolve(false)
  batch = take(batch, options.batchSize)
  report('s', batch, url)
  sending = post(body(batch))
    .then((response) => {
      var status = response.status
      if (status == 408 || status == 429 || status >= 500) throw response
      attempt = retryAt = 0
      return response
        .json()
        .catch(() => {})
        .then((answer) => {
          report('a', status, answer || {}, batch)
          remove(batch)
          return true
        })
    })
    .catch((failure) => {
      // Offline, unreachable, 408, 429 or 5xx: the events stay queued and are retried
      // after a jittered exponential backoff, or when the collector says (Retry-After).
      var wait = retryAfter(failure) || Math.min(MAX_BACKOFF, 1000 * Math.pow(2, attempt))
      attempt++
      retryAt = Date.now() + wait * (1 + Math.random() / 2)
      // A refused origin gets no CORS headers, so the browser reports it like a network
      // error: say so.
      report('e', failure, wait)
      return false
    })
    .then((ok) => {
      sending = 0
      schedule() // the rest of the queue, or the retry
      return ok
    })
  return sending
}

/** Sends everything queued now. Resolves true when the queue is empty, false when a send failed (the events stay queued and are retried). */
export var flush = () => {
  if (SSR) return Promise.resolve(false)
  return send().then((ok) => {
    return ok && pending().length ? flush() : !pending().length
  })
}

// The page is going away (or hidden, which on mobile may be the last chance): hand every
// pending event to sendBeacon. Beacons give no answer, so the events stay in storage and
// are sent again on the next load; the collector stores each message_id once.
var beacon = () => {
  var list = pending()
  if (!url || blocked()) return
  while (list.length) {
    var batch = take(list, 1e9)
    var data = body(batch)
    list = list.slice(batch.length)
    batch.forEach((e) => {
      beaconed[e.message_id] = 1
    })
    report('b', batch)
    if (!(navigator.sendBeacon && navigator.sendBeacon(url, data))) post(data, true).catch(() => {})
  }
}

var visible = () => {
  beaconed = {}
  schedule()
}

// ---- automatic events ---------------------------------------------------------------

var track = (name, properties, at, where) =>
  enqueue(item({ event: name, properties: properties || {} }, at, where))

// A page view: once per real URL change (a replaceState to the same URL, a hash change's
// popstate + hashchange pair count once), timed when the URL changed. A return from the
// back/forward cache passes its time as `restored`: it counts although the URL is the same.
var pageView = (restored) => {
  clearTimeout(waiting)
  waiting = checks = 0
  var href = location.href
  if (href == lastUrl && !restored) return
  if (lastUrl && href != lastUrl) referrer = lastUrl // an SPA navigation: the previous URL
  lastUrl = href
  var at = restored || changedAt
  pageLeft(at)
  current = page()
  visibleMs = deepest = 0
  shownAt = document.hidden ? 0 : at
  scrolled()
  track('page_viewed', current, at, current)
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
  if (!options.autoEvents) return
  clearTimeout(waiting)
  title = before
  checks = 0
  changedAt = Date.now()
  waiting = setTimeout(check)
}

var navigated = () => watch(document.title)

// ---- engagement: how long the page was visible, how far down it was read ----------------

var scrolled = () => {
  var depth = Math.min(100, Math.round((100 * (scrollY + innerHeight)) / document.documentElement.scrollHeight))
  if (depth > deepest) deepest = depth
}

var shown = (at) => {
  if (shownAt) visibleMs += at - shownAt
  shownAt = document.hidden ? 0 : at
}

// The page is left (another page view, hidden, or unloaded): its engagement, once per
// page view, as an event of its own on the page it measures. A page that was never
// visible has none. Visit duration and scroll figures read it; it never makes a visit
// with one page view a non-bounce.
var pageLeft = (at) => {
  if (!current) return
  shown(at)
  if (visibleMs) track('page_left', { engaged_ms: visibleMs, scroll_depth: deepest }, at, current)
  current = 0
}

// The page is going away or hidden: a page view still waiting for its title is taken
// now, the engagement is queued, and everything queued leaves with a beacon.
var hidden = () => {
  var now = Date.now()
  if (waiting) pageView()
  pageLeft(now)
  beacon()
}

// ---- outbound links and file downloads --------------------------------------------------

var DOWNLOADS =
  'pdf,xlsx,xls,docx,doc,pptx,ppt,pps,odt,ods,odp,txt,rtf,csv,key,epub,exe,msi,dmg,pkg,deb,rpm,apk,iso,zip,7z,rar,gz,tgz,bz2,xz,mp3,wav,wma,mp4,mov,avi,wmv,mpeg,midi'

// A click (primary button, with or without a modifier key) or a middle click (auxclick)
// on a link. The event is only queued: the browser follows the link as it would without
// the SDK, and a page that unloads sends the queue with a beacon.
var linkClicked = (event) => {
  var link = event.target.closest && event.target.closest('a[href]')
  if (!options.autoEvents || !link || event.button != (event.type == 'auxclick' ? 1 : 0) || link.closest(IGNORE))
    return
  var to = new URL(link.href, location.href)
  var extension = (to.pathname.toLowerCase().match(/\.(\w+)$/) || [])[1]
  var downloads = options.downloadExtensions
  // A list or a comma-separated string; false or "" tracks no extension.
  downloads = (',' + (downloads == null ? DOWNLOADS : downloads || '') + ',').replace(/\s/g, '').toLowerCase()
  if (link.hasAttribute('download') || (extension && downloads.includes(',' + extension + ',')))
    track('file_downloaded', { url: to.href, extension: extension || null })
  else if (/^https?:$/.test(to.protocol) && to.host != location.host) track('outbound_link_clicked', { url: to.href })
}

var SENSITIVE_TYPE = /^(password|hidden|submit|button|reset|image|file)$/
var SENSITIVE_NAME = /card|cvv|cvc|iban|ssn|(^|[^a-z])cc/i
var IGNORE = '[data-telltale-ignore]'

var formSubmitted = (event) => {
  var form = event.target
  if (!options.autoHook || !form || !form.closest || form.closest(IGNORE)) return
  var fields = []
  form.querySelectorAll('input,select,textarea').forEach((el) => {
    var name = el.name || el.id
    if (
      name &&
      fields.indexOf(name) < 0 &&
      !SENSITIVE_TYPE.test(el.type) &&
      !/(^|\s)cc-/.test(el.getAttribute('autocomplete')) &&
      !SENSITIVE_NAME.test(name) &&
      !el.closest(IGNORE)
    )
      fields.push(name)
  })
  // getAttribute, not form.id/.action/...: an input named "action" would shadow those.
  var action = new URL(form.getAttribute('action') || '', location.href)
  trackEvent('form_submitted', {
    form_id: form.getAttribute('id'),
    form_name: form.getAttribute('name'),
    form_action: action.origin + action.pathname, // no query string: it may carry values
    form_method: (form.getAttribute('method') || 'get').toLowerCase(),
    fields: fields,
  })
}

var hook = () => {
  if (hooked) return
  hooked = 1
  ;['pushState', 'replaceState'].forEach((name) => {
    var original = history[name]
    history[name] = function () {
      // A page view still waiting for its title is for the URL that is about to change.
      if (checks) pageView()
      var result = original.apply(this, arguments)
      navigated()
      return result
    }
  })
  addEventListener('popstate', navigated)
  addEventListener('hashchange', navigated)
  addEventListener('pageshow', (e) => {
    // Restored from the back/forward cache: no load happened, but it is a page view.
    if (e.persisted) {
      visible()
      if (options.autoEvents) pageView(Date.now())
    }
  })
  addEventListener('scroll', () => current && scrolled(), { passive: true })
  // Capture phase on document: runs before the page's own handlers, so a submit that
  // the page prevents still counts; the SDK never prevents, delays or re-submits it.
  document.addEventListener('submit', formSubmitted, true)
  document.addEventListener('click', linkClicked, true)
  document.addEventListener('auxclick', linkClicked, true)
  addEventListener('pagehide', hidden)
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) hidden()
    else {
      shown(Date.now())
      visible()
    }
  })
  addEventListener('online', () => {
    retryAt = 0
    schedule()
  })
}

// ---- public API ---------------------------------------------------------------------

// Merges options, skipping the unset ones so that defaults survive.
export var configure = (config) => {
  for (var key in config) if (config[key] != null) options[key] = config[key]
}

/** Configures the SDK and starts sending. Calling it again updates the options. */
export var init = (config) => {
  if (SSR) return
  configure(config)
  if (!options.appId) return report('m')
  var endpoint = new URL(options.endpoint || location.origin, location.href).href.replace(/\/+$/, '')
  url = endpoint + '/v1/events'
  report('i', options)
  if (blocked()) clear()
  save() // adopt what earlier pages left undelivered
  hook()
  if (lastUrl == null && !waiting) watch()
  schedule()
}

/** Tracks an event named in snake_case, e.g. trackEvent('plan_upgraded', {plan: 'pro'}). */
export var trackEvent = (name, properties) => {
  if (SSR) return
  if (!name || typeof name != 'string') return report('n')
  track(name, properties)
}

/** Links this visitor's anonymous id to your user id (after login or signup), with optional traits. */
export var setUserId = (id, traits) => {
  if (SSR || id == null || id === '') return
  id = String(id)
  // Traits given by identify() while anonymous are sent with the first user id.
  var pendingTraits = JSON.parse(get('traits') || '{}')
  traits = Object.assign(pendingTraits, traits)
  var known = get('user') == id
  set('user', id)
  set('traits', null)
  if (!known || Object.keys(traits).length) enqueue(item({ type: 'identify', traits: traits }))
}

/** Merges traits into the current user; while anonymous they wait for setUserId. */
export var identify = (traits) => {
  if (SSR) return
  if (get('user')) enqueue(item({ type: 'identify', traits: traits || {} }))
  else set('traits', JSON.stringify(Object.assign(JSON.parse(get('traits') || '{}'), traits)))
}

/** Forgets the user (logout): the next events carry a new anonymous id and no user. */
export var reset = () => {
  if (SSR) return
  set('user', null)
  set('traits', null)
  set('id', uuid())
}

/** Stops tracking in this browser (remembered in localStorage) and drops the queue. */
export var optOut = () => {
  if (SSR) return
  set('optout', '1')
  clear()
}

var clear = () => {
  queue.forEach(forget)
  queue = []
  set('queue', null)
}

/** Undoes optOut(). */
export var optIn = () => {
  if (SSR) return
  set('optout', null)
}
