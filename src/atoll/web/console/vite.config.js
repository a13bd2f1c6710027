import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

// The lab pages' code is loaded lazily (App.jsx), so on /lab… it was fetched only once the
// app's own code had run: a second round trip on the way to the first draw. This puts a tiny
// script in index.html's head that, on /lab…, asks for the lab chunk and the chunks it imports
// at once (modulepreload), alongside the app's code and the page's main request.
function preloadLabChunks() {
  return {
    name: "atoll-preload-lab-chunks",
    apply: "build",
    transformIndexHtml: {
      order: "post",
      handler(html, ctx) {
        const chunks = Object.values(ctx.bundle || {}).filter((c) => c.type === "chunk");
        const lab = chunks.find((c) => c.facadeModuleId && c.facadeModuleId.endsWith("/src/pages/Lab.jsx"));
        if (!lab) return html;
        const entry = chunks.find((c) => c.isEntry);
        const skip = new Set([entry?.fileName, ...(entry?.imports || [])]);
        const files = [lab.fileName, ...lab.imports].filter((f) => !skip.has(f)).map((f) => "/" + f);
        const code =
          `(function(){if(location.pathname.slice(0,4)!=="/lab")return;` +
          `${JSON.stringify(files)}.forEach(function(f){var l=document.createElement("link");` +
          `l.rel="modulepreload";l.crossOrigin="";l.href=f;document.head.appendChild(l);});})();`;
        // After the title, ahead of the stylesheet (an inline script after one waits for it).
        return html.replace("</title>", `</title>\n    <script>${code}</script>`);
      },
    },
  };
}

// The API app serves the build at "/", so assets are referenced from the root; the hashed
// file names let the server cache them forever while index.html is always revalidated.
export default defineConfig({
  base: "/",
  plugins: [preloadLabChunks()],
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
