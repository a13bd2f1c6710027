import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

// The API app serves the build at "/", so assets are referenced from the root; the hashed
// file names let the server cache them forever while index.html is always revalidated.
export default defineConfig({
  base: "/",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: fileURLToPath(new URL("../static/dist", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a running `atoll up` (default API port 8000).
    proxy: {
      "/api": { target: process.env.ATOLL_API || "http://127.0.0.1:8080", ws: true },
    },
  },
});
