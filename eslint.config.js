// One lint setup for the whole repository: type-aware rules for promises and exhaustive switches,
// and the plane boundary in the import graph.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const dataPlanePackages = ['@cairn/sdk', '@cairn/worker', '@cairn/payload-store', '@cairn/gateway'];
const controlPlanePackages = ['@cairn/control-plane'];
const serverModules = ['pg', '@grpc/grpc-js', 'fastify', '@nestjs/*', 'pino', '@cairn/worker', '@cairn/payload-store', '@cairn/proto'];

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      'packages/proto/src/gen/**',
      'packages/client/src/gen/**',
      'apps/cli/src/gen/**',
      'apps/console/src/gen/**',
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
      '.cairn/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      '@typescript-eslint/no-unsafe-argument': 'error',
      // `onClick={() => setOpen(false)}`, `.then(() => resolve())`, `(e) => void navigate(…)`: an
      // arrow whose body is a void call is the codebase's shorthand for a callback; it is not
      // confusing there. Returning or assigning a void value elsewhere still fails.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // With noUncheckedIndexedAccess every `rows[0]` after `INSERT … RETURNING`, every `xs[i]` inside
      // a bounds check and every `split(…)[0]` is `T | undefined`; `!` there states what the code
      // has already checked. Replacing each with a throwing helper adds noise without catching bugs.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // The objects deleted from are JSON documents used as dictionaries (the CLI's config file, the
      // console's saved gateways in web storage, process.env): they are read and written as JSON, so
      // a Map would need converting at every read and write; delete is how a key leaves them.
      '@typescript-eslint/no-dynamic-delete': 'off',
      // A NestJS module is a decorated class, sometimes with only a static forRoot().
      '@typescript-eslint/no-extraneous-class': ['error', { allowWithDecorator: true }],
    },
  },
  {
    // The control plane never imports data-plane code.
    files: ['apps/control-plane/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: dataPlanePackages, message: 'The control plane must not import data-plane code (see docs/architecture.md).' },
          ],
        },
      ],
    },
  },
  {
    // Data-plane code never imports control-plane code.
    files: ['packages/worker/**/*.ts', 'packages/payload-store/**/*.ts', 'apps/gateway/**/*.ts', 'examples/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: controlPlanePackages, message: 'Data-plane code must not import the control plane (see docs/architecture.md).' },
          ],
        },
      ],
    },
  },
  {
    // What a workflow author imports pulls in no server code.
    files: ['packages/sdk/**/*.ts'],
    ignores: ['packages/sdk/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: controlPlanePackages, message: 'The SDK must not import the control plane.' },
            { group: serverModules, message: 'The SDK a workflow author imports must pull in no server code.' },
          ],
          paths: [{ name: '@cairn/common', message: 'The SDK imports only @cairn/common/core (no logger or config libraries).' }],
        },
      ],
    },
  },
  {
    // The client runs in browsers too: fetch only, no Node module, no server code, the SDK for types only.
    files: ['packages/client/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: '@cairn/client runs in browsers: no Node modules.' },
            { group: controlPlanePackages, message: 'The client must not import the control plane.' },
            { group: [...serverModules, '@cairn/gateway'], message: 'The client must pull in no server code.' },
            { group: ['@cairn/sdk'], message: 'The client reads workflow definitions structurally; import no SDK code.' },
          ],
          paths: [{ name: '@cairn/common', message: 'The client imports only @cairn/common/core (browser-safe).' }],
        },
      ],
    },
  },
  {
    // The console runs in a browser: it talks to the planes over HTTP and imports no code of either.
    files: ['apps/console/**/*.ts', 'apps/console/**/*.tsx'],
    rules: {
      // TanStack Router's documented way to leave a route: throw redirect(…).
      '@typescript-eslint/only-throw-error': [
        'error',
        { allow: [{ from: 'package', package: '@tanstack/router-core', name: 'Redirect' }] },
      ],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@cairn/*'],
              message: 'The console reads both planes through their HTTP APIs (typed from the OpenAPI documents); import no Cairn package.',
            },
            { group: serverModules, message: 'The console runs in a browser: no server code.' },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      // A test's fixtures are `let cp: ControlPlane` assigned in before(); after() closes them with
      // `cp?.close()` so that a before() that failed reports its own error rather than a TypeError
      // from the clean-up. Assertions read optional fields of parsed responses the same way, so a
      // missing field fails its assertion with a diff. The rule would call both unnecessary.
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
    },
  },
);
