import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard is served by the platform at /dashboard/ from dist/dashboard (see
// src/app/dashboard-routes.ts); `npm run build` builds it with the library.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/dashboard/',
  build: {
    outDir: fileURLToPath(new URL('../../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 400,
  },
  logLevel: 'warn',
});
