// Builds the SDK with esbuild into ../static/ (served by the collector: telltale.js at
// GET /sdk.js) and ./dist/ (the npm package), prints raw/gzip/brotli sizes and fails
// when the script-tag build is over its gzip budget.
import { build } from 'esbuild'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

const BUDGET_GZIP = Number(process.env.TELLTALE_SIZE_BUDGET || 3500) // bytes; Plausible's full tracker is ~2.7 KB without batching or retries

const here = new URL('.', import.meta.url).pathname
const pkg = JSON.parse(readFileSync(here + 'package.json', 'utf8'))
const outdirs = [here + '../static/', here + 'dist/']

const common = {
  bundle: true,
  minify: true,
  target: 'es2017',
  legalComments: 'none',
  define: { __VERSION__: JSON.stringify(pkg.version) },
  write: false,
}
const outputs = [
  // The script tag always runs in a browser: the server-side-rendering checks go.
  ['telltale.js', { ...common, entryPoints: [here + 'src/script.js'], format: 'iife', define: { ...common.define, __BROWSER__: 'true' } }],
  ['telltale.mjs', { ...common, entryPoints: [here + 'src/index.js'], format: 'esm', define: { ...common.define, __BROWSER__: 'false' } }],
]

let failed = false
for (const dir of outdirs) mkdirSync(dir, { recursive: true })
for (const [name, options] of outputs) {
  const result = await build(options)
  const code = result.outputFiles[0].contents
  for (const dir of outdirs) writeFileSync(dir + name, code)
  const gzip = gzipSync(code, { level: 9 }).length
  const brotli = brotliCompressSync(code, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length
  let line = `${name.padEnd(13)} raw ${String(code.length).padStart(6)} B  gzip ${String(gzip).padStart(5)} B  brotli ${String(brotli).padStart(5)} B`
  if (name == 'telltale.js') {
    line += `  (budget ${BUDGET_GZIP} B gzip)`
    if (gzip > BUDGET_GZIP) {
      line += '  OVER BUDGET'
      failed = true
    }
  }
  console.log(line)
}
for (const dir of outdirs) copyFileSync(here + 'src/telltale.d.ts', dir + 'telltale.d.ts')
if (failed) {
  console.error(`telltale.js is over the ${BUDGET_GZIP} B gzip budget`)
  process.exit(1)
}
