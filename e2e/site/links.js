// Records whether each click reached the page with its default action intact: the SDK
// must never prevent or delay a link.
window.clicks = []
addEventListener('click', (e) => clicks.push({ id: e.target.closest('a') && e.target.closest('a').id, prevented: e.defaultPrevented }))
addEventListener('auxclick', (e) => clicks.push({ id: e.target.closest('a') && e.target.closest('a').id, prevented: e.defaultPrevented, button: e.button }))
