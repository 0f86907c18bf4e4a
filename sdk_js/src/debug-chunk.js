// sdk-debug.js: debug mode's console lines for the script tag, which loads this file
// only when debug mode is on. It prints the reports that waited in window.telltale.d,
// then prints each new one as the script tag pushes it there.
import { describe } from './debug.js'

var reports = telltale.d
reports.forEach((args) => describe(...args))
reports.push = (args) => describe(...args)
