// sdk-debug.js: debug mode's console lines for the script tag, which loads this file
// only when debug mode is on. It takes over window.telltale.d, printing the reports that
// waited there first.
import { describe } from './debug.js'

var waiting = telltale.d
telltale.d = describe
waiting.forEach((args) => describe(...args))
