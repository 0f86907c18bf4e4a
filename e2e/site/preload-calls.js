// Runs before the SDK has loaded: only the stub exists.
window.stubWasActive = typeof window.telltale.trackEvent !== 'function'
telltale('setUserId', 'u_early', { plan: 'trial' })
telltale('trackEvent', 'signup_started', { step: 1 })
