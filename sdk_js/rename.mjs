// Gzip-aware renaming of a minified script's local names, the build's last step.
//
// UglifyJS names locals by how often each character occurs, which is good for the raw
// size; gzip rewards something else: the same name in the same place of code that repeats
// (`e=>`, `(e,t)=>`, `.push(t)`). This tries other names (a hill climb: a local takes
// another name, swapping with whoever had it where both are visible, and the change is
// kept when the output gzips no larger) and returns the smallest output it found. It is
// deterministic: the same input and options give the same output.
//
// Only what UglifyJS mangled is renamed (names of one or two characters that it declared;
// globals, `arguments`, exports' outside names and property names stay). A rename is
// valid when, in every scope, the names of the variables that the scope needs (its own,
// and the outer ones used in it or in a scope inside it) are distinct; the result is
// parsed again and must resolve every name to the same variable as the input does.
import UglifyJS from 'uglify-js'
import { gzipSync } from 'node:zlib'

const RESERVED = new Set('do if in as of for let new try var case else enum eval null this true void with'.split(' '))
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ$_'

const gzipSize = (code) => gzipSync(code, { level: 9 }).length

// Each symbol of the tree, in order, as its variable's number (and a global's name): two
// trees whose lists are equal resolve every name alike.
const resolution = (ast) => {
  var ids = new Map()
  var list = []
  ast.walk(
    new UglifyJS.TreeWalker((node) => {
      var def = node instanceof UglifyJS.AST_Symbol && node.definition && node.definition()
      if (def) {
        if (!ids.has(def)) ids.set(def, ids.size)
        list.push(ids.get(def) + (def.undeclared ? ':' + def.name : ''))
      }
    }),
  )
  return list.join()
}

/** Renames the locals of minified `code` for a smaller gzip; returns the new code. */
export function rename(code, { iterations = 4000, seed = 1 } = {}) {
  var ast = UglifyJS.parse(code)
  ast.figure_out_scope({})
  // For each scope, the variables it needs: declared in it, or used in it (or in a scope
  // inside it) and declared outside.
  var needs = new Map()
  ast.walk(
    new UglifyJS.TreeWalker((node) => {
      var def = node instanceof UglifyJS.AST_Symbol && !(node instanceof UglifyJS.AST_Label) && node.definition && node.definition()
      if (!def) return
      for (var scope = node.scope; scope; scope = scope.parent_scope) {
        if (!needs.has(scope)) needs.set(scope, new Set())
        needs.get(scope).add(def)
        if (scope === def.scope) break
      }
      if (!needs.has(def.scope)) needs.set(def.scope, new Set())
      needs.get(def.scope).add(def)
    }),
  )
  var sets = [...needs.values()]
  var defs = [...new Set(sets.flatMap((set) => [...set]))]
  var renamable = defs.filter((def) => !def.undeclared && def.name != 'arguments' && def.name.length <= 2)
  var setsOf = new Map(renamable.map((def) => [def, sets.filter((set) => set.has(def))]))
  var nameOf = (def) => def.mangled_name || def.name
  var valid = () =>
    sets.every((set) => {
      var names = new Set()
      for (var def of set) names.add(nameOf(def))
      return names.size == set.size
    })

  // Names to try: every one-character name, then two-character ones.
  var pool = [...LETTERS]
  for (var a of LETTERS) for (var b of LETTERS + '0123456789') if (!RESERVED.has(a + b)) pool.push(a + b)
  var state = seed >>> 0 || 1
  var random = (n) => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 8) % n

  for (var def of renamable) def.mangled_name = def.name
  var best = gzipSize(ast.print_to_string())
  for (var i = 0; i < iterations && renamable.length; i++) {
    var mine = renamable[random(renamable.length)]
    var old = mine.mangled_name
    // Half the time another local's name (a swap), else a name from the pool, mostly short.
    var name = random(2) ? nameOf(renamable[random(renamable.length)]) : pool[random(random(3) ? LETTERS.length : pool.length)]
    if (name == old) continue
    // Whoever is called `name` where `mine` is visible takes `mine`'s old name.
    var others = new Set()
    for (var set of setsOf.get(mine)) for (var other of set) if (other !== mine && nameOf(other) == name) others.add(other)
    if ([...others].some((other) => !setsOf.has(other))) continue // a global, or a name that stays
    mine.mangled_name = name
    for (var other of others) other.mangled_name = old
    var size = valid() && gzipSize(ast.print_to_string())
    if (size && size <= best) best = size
    else {
      mine.mangled_name = old
      for (var other of others) other.mangled_name = name
    }
  }
  var out = ast.print_to_string()
  var check = UglifyJS.parse(out)
  check.figure_out_scope({})
  var before = UglifyJS.parse(code)
  before.figure_out_scope({})
  if (resolution(check) != resolution(before)) throw new Error('renaming changed what a name refers to')
  return gzipSize(out) <= gzipSize(code) ? out : code
}
