// The console is built once, at build time, into dist/; the control plane serves it (see
// apps/control-plane/src/http/console.ts). No dev server: `pnpm dev` serves the built files.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2023',
    sourcemap: true,
    // The size of every chunk is written down by the bench (bench/src/console.ts), not capped here.
    chunkSizeWarningLimit: 600,
  },
});
