// The npm package's ES module, as a bundler would use it.
import telltale, { trackEvent } from '{{COLLECTOR}}/telltale.mjs'

telltale.init({ appId: '{{APP_ID}}', endpoint: '{{COLLECTOR}}' })
trackEvent('module_loaded', { build: 'esm' })
window.telltale = telltale
