// ES module build for bundlers: import { init, trackEvent } from 'telltale'.
// The endpoint defaults to the page's own origin (a first-party proxy); pass `endpoint`
// when the collector lives elsewhere. Debug mode's lines are part of this build.
import * as core from './core.js'
import { describe } from './debug.js'

core.debugWith(describe)

// Server-side rendering imports the module without a window: calls made there do nothing
// (flush resolves false).
var browser = (fn, otherwise) => (...args) => (typeof window == 'undefined' ? otherwise : fn(...args))

export var init = browser(core.init)
export var trackEvent = browser(core.trackEvent)
export var setUserId = browser(core.setUserId)
export var identify = browser(core.identify)
export var reset = browser(core.reset)
export var flush = browser(core.flush, Promise.resolve(false))
export var getAnonymousId = browser(core.getAnonymousId)
export var optOut = browser(core.optOut)
export var optIn = browser(core.optIn)

export default { init, trackEvent, setUserId, identify, reset, flush, getAnonymousId, optOut, optIn }
