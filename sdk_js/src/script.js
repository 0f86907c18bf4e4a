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
var defaults = {
  // The collector that served this script, unless data-endpoint names a first-party proxy.
  endpoint: script && script.src ? new URL(script.src).origin : undefined,
}
var data = (script && script.dataset) || {}
for (var key in data) {
  var value = data[key]
  defaults[key == 'respectDnt' ? 'respectDoNotTrack' : key] =
    value == '' || value == 'true' || (value != 'false' && (isNaN(value) ? value : +value))
}

// telltale('trackEvent', 'x', {...}) and telltale.trackEvent('x', {...}) both work.
function api(method, ...args) {
  var fn = api[method]
  return typeof fn == 'function' ? fn(...args) : core.report('u', method)
}

// Debug mode's lines come from a second file next to this one (sdk.js → sdk-debug.js),
// loaded on the first report: a visitor without debug mode never downloads it. Until it
// has loaded, reports wait in telltale.d; it then puts its own function there.
api.d = []
core.debugWith((...args) => {
  if (typeof api.d == 'function') return api.d(...args)
  if (!api.d.length && script)
    document.head.appendChild(document.createElement('script')).src = script.src.replace(/(\.js)?(\?|#|$)/, '-debug.js$2')
  api.d.push(args)
})
Object.assign(api, {
  init: (config) => core.init(Object.assign({}, defaults, config)),
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
var config = {}
calls.forEach((call) => call[0] == 'init' && Object.assign(config, call[1]))
api.init(config)
calls.forEach((call) => call[0] != 'init' && api(...call))
