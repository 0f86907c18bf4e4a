// ES module build for bundlers: import { init, trackEvent } from 'telltale'.
// The endpoint defaults to the page's own origin (a first-party proxy); pass `endpoint`
// when the collector lives elsewhere. Debug mode's lines are part of this build.
import { init, trackEvent, setUserId, identify, reset, flush, getAnonymousId, optOut, optIn, debugWith } from './core.js'
import { describe } from './debug.js'

debugWith(describe)

export { init, trackEvent, setUserId, identify, reset, flush, getAnonymousId, optOut, optIn }
export default { init, trackEvent, setUserId, identify, reset, flush, getAnonymousId, optOut, optIn }
