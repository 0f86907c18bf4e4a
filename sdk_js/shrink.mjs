// The build's last step: the names and the order of a minified script's declarations,
// chosen for a smaller gzip.
//
// UglifyJS names locals by how often each character occurs and keeps the source's order,
// which is good for the raw size; gzip rewards something else: the same text in the same
// place of code that repeats (`e=>`, `(e,t)=>`, `.push(t)`), close to each other. This
// tries other choices with a hill climb and keeps each one after which the output gzips
// no larger:
// - a local takes another name, swapping with whoever had it where both are visible;
// - a declaration of the script's biggest `var` statement (or a run of a few) moves to
//   another place in it, when nothing its value needs at that moment comes after it.
// It is deterministic: the same input and options give the same output.
//
// Only what UglifyJS mangled is renamed (names of one or two characters that it declared;
// globals, `arguments`, exports' outside names and property names stay). A rename is
// valid when, in every scope, the variables that the scope needs (its own, and the outer
// ones used in it or in a scope inside it) have distinct names. Only declarations whose
// value runs no code move (a constant, a function, an object or array of those and of
// other declarations' values); the others keep their order, and whatever their values
// may use, functions' bodies included, stays on the side of them where it is. The result
// is parsed again and must resolve every name to the same variable as the input does.
import UglifyJS from 'uglify-js'
import { gzipSync } from 'node:zlib'

const RESERVED = new Set('do if in as of for let new try var case else enum eval null this true void with'.split(' '))
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ$_'

const gzipSize = (code) => gzipSync(code, { level: 9 }).length

const parse = (code) => {
  var ast = UglifyJS.parse(code)
  ast.figure_out_scope({})
  return ast
}

// Calls fn(def, node) for each symbol of `node` that names a variable.
const symbols = (node, fn) =>
  node.walk(
    new UglifyJS.TreeWalker((node) => {
      var def = node instanceof UglifyJS.AST_Symbol && !(node instanceof UglifyJS.AST_Label) && node.definition && node.definition()
      if (def) fn(def, node)
    }),
  )

// Each symbol of the tree, in order, as its variable's number (and a global's name): two
// trees whose lists are equal resolve every name alike.
const resolution = (ast) => {
  var ids = new Map()
  var list = []
  symbols(ast, (def) => {
    if (!ids.has(def)) ids.set(def, ids.size)
    list.push(ids.get(def) + (def.undeclared ? ':' + def.name : ''))
  })
  return list.join()
}

// A value that runs no code when it is made (refs: the variables it reads).
const inert = (node, refs) => {
  if (!node || node instanceof UglifyJS.AST_Constant || node instanceof UglifyJS.AST_Lambda) return true
  if (node instanceof UglifyJS.AST_UnaryPrefix) return /^[!-]$/.test(node.operator) && node.expression instanceof UglifyJS.AST_Constant
  if (node instanceof UglifyJS.AST_SymbolRef) return refs.push(node.definition()), true
  if (node instanceof UglifyJS.AST_Array) return node.elements.every((e) => inert(e, refs))
  if (node instanceof UglifyJS.AST_Object)
    return node.properties.every((p) => typeof p.key == 'string' && (p instanceof UglifyJS.AST_ObjectKeyVal || p instanceof UglifyJS.AST_ObjectMethod) && inert(p.value, refs))
  return false
}

/** Renames and reorders the declarations of minified `code` for a smaller gzip; returns the new code. */
export function shrink(code, { iterations = 6000, seed = 1 } = {}) {
  var ast = parse(code)

  // Names. For each scope, the variables it needs: declared in it, or used in it (or in
  // a scope inside it) and declared outside.
  var needs = new Map()
  var need = (scope, def) => (needs.get(scope) || needs.set(scope, new Set()).get(scope)).add(def)
  symbols(ast, (def, node) => {
    for (var scope = node.scope; scope && scope !== def.scope; scope = scope.parent_scope) need(scope, def)
    need(def.scope, def)
  })
  var sets = [...needs.values()]
  var defs = [...new Set(sets.flatMap((set) => [...set]))]
  var renamable = defs.filter((def) => !def.undeclared && def.name != 'arguments' && def.name.length <= 2)
  var setsOf = new Map(renamable.map((def) => [def, sets.filter((set) => set.has(def))]))
  var nameOf = (def) => def.mangled_name || def.name
  var distinct = () => sets.every((set) => new Set([...set].map(nameOf)).size == set.size)
  var pool = [...LETTERS]
  for (var a of LETTERS) for (var b of LETTERS + '0123456789') if (!RESERVED.has(a + b)) pool.push(a + b)
  for (var def of renamable) def.mangled_name = def.name

  // Order. The biggest var statement; for each declaration, those that must come first.
  var statement
  ast.walk(
    new UglifyJS.TreeWalker((node) => {
      if (node instanceof UglifyJS.AST_Var && node.definitions.length > (statement ? statement.definitions.length : 1)) statement = node
    }),
  )
  var list = statement ? statement.definitions.slice() : []
  var index = new Map(list.map((d, i) => [d.name.definition(), i]))
  var after = list.map(() => new Set()) // after[i]: the declarations that must precede i
  var fixed = []
  list.forEach((d, i) => {
    var refs = []
    if (inert(d.value, refs)) {
      for (var def of refs) if (index.has(def)) after[i].add(index.get(def))
      // A local from elsewhere, or one declared here without a value (set by code that
      // runs in between, perhaps): it keeps its place among the others that do.
      if (refs.some((def) => (index.has(def) ? !list[index.get(def)].value : !def.undeclared))) fixed.push(i)
      return
    }
    fixed.push(i)
    // Everything its value may reach, through the functions it may call too.
    var seen = new Set()
    var visit = (node) =>
      symbols(node, (def) => {
        if (index.has(def) && !seen.has(def)) {
          seen.add(def)
          var j = index.get(def)
          // What comes after it in the source stays after it (its value may read it unset).
          if (j < i) after[i].add(j)
          else if (j > i) after[j].add(i)
          if (list[j].value) visit(list[j].value)
        }
      })
    visit(d.value)
  })
  fixed.forEach((i, k) => k && after[i].add(fixed[k - 1]))
  var order = list.map((_, i) => i)
  var valid = (order) => {
    var at = []
    order.forEach((d, p) => (at[d] = p))
    return order.every((d) => [...after[d]].every((b) => at[b] < at[d]))
  }
  if (!valid(order)) throw new Error('shrink: the declarations are not in an order it can keep')
  var arrange = (order) => statement && (statement.definitions = order.map((i) => list[i]))

  // Printing the tree for each try is slow: the output is printed once with a marker for
  // each renamable name (and for the var statement's declarations), and each try joins
  // the pieces. The result is checked against the printed tree at the end.
  var markers = renamable.map((def, i) => '$$' + i + '$$')
  var pieces = (text) => text.split(/\$\$(\d+)\$\$/).map((piece, i) => (i % 2 ? renamable[piece] : piece))
  renamable.forEach((def, i) => (def.mangled_name = markers[i]))
  var declarations = list.map((d) => pieces(d.print_to_string()))
  var frame = [[]]
  if (statement) {
    var hole = new UglifyJS.AST_VarDef({ name: new UglifyJS.AST_SymbolVar({ name: '$$hole$$' }) })
    statement.definitions = [hole]
    frame = ast.print_to_string().split('$$hole$$').map(pieces)
  } else frame = [pieces(ast.print_to_string())]
  renamable.forEach((def) => (def.mangled_name = def.name))
  arrange(list.map((_, i) => i))
  var join = (parts) => parts.map((part) => (typeof part == 'string' ? part : part.mangled_name)).join('')
  var render = () =>
    frame.length == 1 ? join(frame[0]) : join(frame[0]) + order.map((i) => join(declarations[i])).join(',') + join(frame[1])

  var state = seed >>> 0 || 1
  var random = (n) => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 8) % n
  if (render() != ast.print_to_string()) throw new Error('shrink: the pieces do not make the output')
  var best = gzipSize(render())
  var accept = (size) => size <= best && (best = size)
  for (var i = 0; i < iterations; i++) {
    if (random(3) || list.length < 2) {
      if (!renamable.length) continue
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
      if (!(distinct() && accept(gzipSize(render())))) {
        mine.mangled_name = old
        for (var other of others) other.mangled_name = name
      }
    } else {
      var moved = order.slice()
      // One declaration, or a run of a few.
      var run = moved.splice(random(moved.length), random(2) ? 1 : 2 + random(4))
      moved.splice(random(moved.length + 1), 0, ...run)
      if (!valid(moved)) continue
      var kept = order
      order = moved
      if (!accept(gzipSize(render()))) order = kept
    }
  }
  arrange(order)
  if (render() != ast.print_to_string()) throw new Error('shrink: the pieces do not make the output')
  // The same order with UglifyJS's names, to check the renaming against.
  var names = renamable.map(nameOf)
  renamable.forEach((def) => (def.mangled_name = def.name))
  var reference = ast.print_to_string()
  renamable.forEach((def, i) => (def.mangled_name = names[i]))
  var out = ast.print_to_string()
  if (resolution(parse(out)) != resolution(parse(reference))) throw new Error('shrink: a name refers to another variable')
  return gzipSize(out) <= gzipSize(code) ? out : code
}
