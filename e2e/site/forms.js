// The page's own handling of its single-page-app forms.
document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('form[data-spa]').forEach((form) =>
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      window.spaSubmits = (window.spaSubmits || 0) + 1
    }),
  )
})
