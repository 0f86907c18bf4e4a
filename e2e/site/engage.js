// Lets the test wait for a scroll to have been handled, and hide or show the page the
// way a tab switch does (headless Chromium's pages are always visible).
addEventListener('scroll', () => (window.scrolledTo = scrollY))
window.setHidden = (hidden) => {
  Object.defineProperty(document, 'hidden', { value: hidden, configurable: true })
  Object.defineProperty(document, 'visibilityState', { value: hidden ? 'hidden' : 'visible', configurable: true })
  document.dispatchEvent(new Event('visibilitychange'))
}
