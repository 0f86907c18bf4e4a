// Debug mode's console lines. The core reports what happens as a one-letter code and its
// data (core.report); this turns each report into lines prefixed [telltale], and checks
// event names and property keys against the naming guide. It is part of the ES module and
// of the script tag's debug build (telltale-debug.js), which the script tag loads from the
// collector only when debug mode is on.

var log = (...args) => console.log('[telltale]', ...args)
var warn = (...args) => console.warn('[telltale]', ...args)

// Names from the event-naming guide: say what the user did, in snake_case.
var SNAKE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/
var GENERIC = /^(click(ed)?|tap|event|action|submit|track|test|view|page_?view|(user_)?action(_performed)?)$|(^|_)\d+(_|$)|^page_view_/
var PII = /mail|passw|pwd|phone|ssn|card|cvv|cvc|iban|birth|address/i

var queued = (event) => {
  var name = event.event
  if (name) {
    var snake = SNAKE.test(name)
    if (!snake || GENERIC.test(name))
      warn('event name "' + name + '" is ' + (snake ? 'too generic' : 'not snake_case') + ', e.g. user_signed_up')
  }
  for (var key in event.properties)
    if (PII.test(key)) warn('property "' + key + '" looks like personal data')
  log('queued', name || event.type, event)
}

var answered = (response, batch) =>
  response
    .json()
    .catch(() => {})
    .then((answer) => {
      var status = response.status
      answer = answer || {}
      if (status < 300) {
        log('answer ' + status + ': accepted ' + (answer.accepted || []).length, answer)
        ;(answer.errors || []).forEach((e) => {
          warn('event rejected:', batch[e.index] && batch[e.index].event, e.errors)
        })
      } else if (status == 403) warn('origin rejected (403): allow ' + location.origin + ' in the app')
      else warn('answer ' + status + ': dropped ' + batch.length + ' event(s)', answer)
    })

// A refused origin gets no CORS headers, so the browser reports it like a network error:
// say so.
var failed = (failure, wait) =>
  warn(
    'send failed (' + (failure.status || failure + ': offline, or origin not allowed?') + '), retry in ' +
      Math.round(wait / 1000) + ' s',
  )

var lines = {
  i: (options) => log('init', options),
  m: () => warn('missing app id: use data-app-id or init({appId})'),
  u: (method) => warn('unknown method', method),
  o: () => log('not tracking (opted out or Do Not Track)'),
  q: queued,
  f: (over) => warn('queue full: dropped ' + over + ' oldest events'),
  s: (batch, url) => log('sending ' + batch.length + ' event(s) to ' + url),
  a: answered,
  e: failed,
  b: (batch) => log('beacon ' + batch.length + ' event(s)'),
}

/** Prints one report of the core (a code and its data) as console lines. */
export var describe = (code, ...args) => lines[code](...args)
