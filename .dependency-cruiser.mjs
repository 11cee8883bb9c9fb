// Import cycles fail `pnpm lint`. A cycle means a shared piece (a type, an interface, an event)
// lives in the wrong module: move it to where both sides can import it. Type-only imports count
// too, since they tie the modules as closely for a reader as a runtime import does.
// Packages cannot form cycles with each other (their TypeScript project references forbid it), so
// only a package's own source files are followed, not node_modules or build output.
/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment: 'Break the cycle by moving what both modules need into a module of its own.',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['node_modules', '/dist/', '/src/gen/', '\\.d\\.ts$'] },
    enhancedResolveOptions: { extensions: ['.ts', '.tsx', '.js'] },
  },
};
