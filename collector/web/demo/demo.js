// The demo page's buttons. Loaded with `defer`, so the SDK (async) may or may not be
// there yet: calls go through the documented pre-load stub, which the SDK replays.
window.telltale =
  window.telltale ||
  function () {
    ;(telltale.q = telltale.q || []).push(arguments)
  }

var log = document.getElementById('log')

function show(line) {
  log.textContent = new Date().toLocaleTimeString() + '  ' + line + '\n' + log.textContent
}

function refresh() {
  document.getElementById('path').textContent = location.pathname + location.hash
  if (typeof telltale.getAnonymousId == 'function') {
    document.getElementById('anonymous-id').textContent = telltale.getAnonymousId()
  }
  document.getElementById('user-id').textContent = localStorage.getItem('telltale_user') || 'none'
}

function on(id, handler) {
  document.getElementById(id).addEventListener('click', function () {
    handler()
    setTimeout(refresh, 0)
  })
}

on('track', function () {
  telltale('trackEvent', 'plan_upgraded', { plan: 'pro' })
  show('queued plan_upgraded')
})
on('generic', function () {
  telltale('trackEvent', 'click')
  show('queued click (see the naming warning in the console)')
})
on('login', function () {
  telltale('setUserId', 'u_demo', { plan: 'pro' })
  show('setUserId u_demo: the anonymous id is now linked to u_demo')
})
on('logout', function () {
  telltale('reset')
  show('reset: no user, a new anonymous id')
})
on('nav-pricing', function () {
  history.pushState({}, '', '/pricing')
  document.title = 'Pricing · Telltale demo'
})
on('nav-docs', function () {
  history.pushState({}, '', '/docs')
  document.title = 'Docs · Telltale demo'
})
on('nav-back', function () {
  history.back()
})
on('flush', function () {
  var sent = telltale('flush')
  if (sent && sent.then) {
    sent.then(function (empty) {
      show(empty ? 'flush: everything delivered' : 'flush: some events wait for a retry')
    })
  }
})
on('opt-out', function () {
  telltale('optOut')
  show('optOut: nothing is tracked in this browser until optIn()')
})
on('opt-in', function () {
  telltale('optIn')
  show('optIn: tracking again')
})

// The page handles its form itself, like a single-page app: the SDK still records it.
document.getElementById('signup').addEventListener('submit', function (event) {
  event.preventDefault()
  show('form submitted (handled by the page; form_submitted recorded without values)')
})

addEventListener('popstate', refresh)
refresh()
// The SDK may load after this script: refresh the ids once it has.
window.addEventListener('load', refresh)
