// Sends one of each call with @segment/analytics-node, unmodified, to the collector
// named by TELLTALE_HOST with the write key TELLTALE_KEY; prints what the library
// reported ({"errors": [...], "responses": [status, ...]}) as one JSON line.
import { Analytics } from '@segment/analytics-node'

const analytics = new Analytics({
  writeKey: process.env.TELLTALE_KEY,
  host: process.env.TELLTALE_HOST,
  maxRetries: 0,
  flushInterval: 50,
})
const errors = []
const responses = []
analytics.on('error', (err) => errors.push(String(err.reason ?? err.code ?? err)))
analytics.on('http_request', (req) => responses.push(req.url))

const done = (err) => {
  if (err) errors.push(String(err))
}
analytics.track({ userId: 'node-prev', event: 'trial_started', properties: { plan: 'pro' } }, done)
analytics.identify({ userId: 'node-u', anonymousId: 'node-anon', traits: { plan: 'pro' } }, done)
analytics.track({ userId: 'node-u', event: 'order_completed', properties: { total: 10 } }, done)
analytics.page({ userId: 'node-u', category: 'Docs', name: 'Pricing', properties: { url: 'https://shop.example.com/pricing' } }, done)
analytics.screen({ userId: 'node-u', name: 'Settings', properties: { tab: 'billing' } }, done)
analytics.group({ userId: 'node-u', groupId: 'g-node', traits: { name: 'Acme' } }, done)
analytics.alias({ userId: 'node-u', previousId: 'node-prev' }, done)
await analytics.closeAndFlush({ timeout: 20000 })
console.log(JSON.stringify({ errors, responses }))
process.exit(errors.length ? 1 : 0)
