// ES module build for bundlers: import { init, trackEvent } from 'telltale'.
// The endpoint defaults to the page's own origin (a first-party proxy); pass `endpoint`
// when the collector lives elsewhere.
import { init, trackEvent, setUserId, identify, reset, flush, getAnonymousId, optOut, optIn } from './core.js'

export { init, trackEvent, setUserId, identify, reset, flush, getAnonymousId, optOut, optIn }
export default { init, trackEvent, setUserId, identify, reset, flush, getAnonymousId, optOut, optIn }
