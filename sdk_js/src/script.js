// Script-tag build: <script async src=".../sdk.js" data-app-id="app_…"></script>.
// Reads the data-* options, replaces the pre-load stub with the real API and replays the
// calls the stub kept, in order.
import * as core from './core.js'

var script = document.currentScript
var stub = window.telltale
// The stub is a function that pushes its arguments to .q, or a plain array of calls.
var calls = Array.isArray(stub) ? stub : (stub && stub.q) || []

// data-app-id → appId, data-batch-size → batchSize, ...: dataset already camel-cases them.
// A bare attribute (data-debug) is true; "false" and "0" are false; digits are numbers.
// The endpoint is the collector that served this script, unless data-endpoint names a
// first-party proxy.
var defaults = { endpoint: script && new URL(script.src).origin }
for (var key in script && script.dataset) {
  var value = script.dataset[key]
  defaults[key == 'respectDnt' ? 'respectDoNotTrack' : key] =
    value == '' || value == 'true' || (value != 'false' && (isNaN(value) ? value : +value))
}

// telltale('trackEvent', 'x', {...}) and telltale.trackEvent('x', {...}) both work.
var api = (method, ...args) => (api[method] ? api[method](...args) : core.report('u', method))

// Debug mode's lines come from a second file next to this one (sdk.js → sdk-debug.js),
// loaded with the first report: a visitor without debug mode never downloads it. Until
// it has loaded, reports wait in telltale.d; it then prints them and takes over that
// list's push.
var reports = (api.d = [])
core.debugWith(
  (...args) =>
    reports.push(args) == 1 &&
    script &&
    (document.head.appendChild(document.createElement('script')).src = script.src.replace(/(\.js)?(?=[?#]|$)/, '-debug.js')),
)
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

// Queued init calls merge into one, so the options they set apply before any event.
// Without an app id, init() warns and waits: a later telltale.init({appId}) supplies it
// while the events wait in the queue.
// The script tag's own options come first.
calls.forEach((call) => call[0] == 'init' && core.assign(defaults, call[1]))
api.init(defaults)
calls.forEach((call) => call[0] != 'init' && api(...call))
