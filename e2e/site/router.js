// A client-side router as most are: the history call first, the new page's title after
// it, in one of the ways routers do that.
window.go = (path, title, when) => {
  history.pushState({}, '', path)
  var setTitle = () => (document.title = title)
  if (when == 'now') setTitle() // in the code that follows the history call
  else if (when == 'frame') requestAnimationFrame(setTitle) // after rendering
  else if (typeof when == 'number') setTimeout(setTitle, when) // once the route's data has loaded
}
