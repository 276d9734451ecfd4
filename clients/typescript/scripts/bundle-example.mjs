// Bundles examples/browser/app.ts with the browser build of the client into
// examples/browser/dist/app.js, so the page runs from any static file server.
import { build } from "esbuild";

await build({
  entryPoints: ["examples/browser/app.ts"],
  outfile: "examples/browser/dist/app.js",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  sourcemap: true,
  logLevel: "warning",
});
