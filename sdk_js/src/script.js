// Script-tag build: <script async src=".../sdk.js" data-app-id="app_…"></script>.
// Reads the data-* options, replaces the pre-load stub with the real API and replays the
// calls the stub kept, in order.
//
// Built twice: telltale.js (GET /sdk.js, __DEBUG__ false) and its debug build
// telltale-debug.js (GET /sdk-debug.js, __DEBUG__ true, with debug mode's console lines).
// In debug mode the first loads the second, next to it, and leaves everything to it: a
// visitor without debug mode never downloads those lines, and the script tag carries no
// debug code at all.
import * as core from './core.js'
import { describe } from './debug.js'

/* global __DEBUG__ */
var script = document.currentScript
var stub = window.telltale
// The stub (docs/sdk.md) is a function that pushes its arguments to .q.
var calls = (stub && stub.q) || []

// data-app-id → appId, data-batch-size → batchSize, ...: dataset already camel-cases them.
// A bare attribute (data-debug) is true; values are read as JSON where they parse ("false",
// "0", "10"), else kept as text.
// The endpoint is the collector that served this script, unless data-endpoint names a
// first-party proxy.
var defaults = { endpoint: script && new URL(script.src).origin }
for (var key in script && script.dataset) {
  var value = script.dataset[key]
  try {
    value = JSON.parse(value)
  } catch (e) {}
  defaults[key] = value === '' || value
}
// Queued init calls merge into one, so the options they set apply before any event.
// Without an app id, init() warns and waits: a later telltale.init({appId}) supplies it
// while the events wait in the queue. The script tag's own options come first.
calls.forEach((call) => call[0] == 'init' && core.assign(defaults, call[1]))

if (!__DEBUG__ && script && (defaults.debug || core.debugAsked())) {
  // Debug mode: the debug build takes over, with this tag's data-* options; the stub
  // (and the calls it keeps) stays for it.
  var debug = document.createElement('script')
  core.assign(debug.dataset, script.dataset)
  debug.src = new URL('sdk-debug.js', script.src)
  document.head.append(debug)
} else {
  if (__DEBUG__) core.debugWith(describe)
  // telltale('trackEvent', 'x', {...}) and telltale.trackEvent('x', {...}) both work.
  var api = (method, ...args) => {
    __DEBUG__ && !api[method] && core.report('u', method)
    return api[method] && api[method](...args)
  }
  core.assign(api, {
    init: core.init,
    trackEvent: core.trackEvent,
    setUserId: core.setUserId,
    identify: core.identify,
    reset: core.reset,
    flush: core.flush,
    getAnonymousId: core.getAnonymousId,
    optOut: core.optOut,
    optIn: core.optIn,
  })
  window.telltale = api
  api.init(defaults)
  // The init calls again, in their place among the others: with the options they have
  // already set, they change nothing.
  calls.forEach((call) => api(...call))
}
