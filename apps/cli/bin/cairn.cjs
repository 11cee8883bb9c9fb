#!/usr/bin/env node
// The `cairn` command's entry: checks the Node.js version before anything else loads, so an old
// Node says what it needs instead of failing inside a dependency. Plain CommonJS in syntax that
// Node 12 parses; keep it that way.
'use strict';

var version = process.versions.node;
var major = Number(version.split('.')[0]);
if (!(major >= 22)) {
  process.stderr.write('cairn needs Node.js 22 or newer (found ' + version + '). Install Node.js 24 LTS: https://nodejs.org\n');
  process.exit(1);
}

var path = require('path');
var url = require('url');
import(url.pathToFileURL(path.join(__dirname, '..', 'dist', 'main.js')).href).catch(function (err) {
  process.stderr.write('cairn could not load: ' + ((err && err.stack) || err) + '\n');
  process.exit(1);
});
