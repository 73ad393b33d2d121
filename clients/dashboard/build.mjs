// Builds the dashboard into dist/: dist/index.html and dist/assets/app.js + app.css, referenced
// relatively from index.html, no inline script (the gateway's Content-Security-Policy allows
// only this origin's scripts). `node build.mjs --watch` rebuilds on change.
//
// React is resolved from this package's node_modules whoever imports it: @switchboard/client
// (a link to ../js) has React as a dev dependency for its own tests, and a second copy in the
// bundle would break hooks.
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
const watch = process.argv.includes('--watch');
const local = (name) => path.join(here, 'node_modules', name);

fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(path.join(dist, 'assets'), { recursive: true });
fs.copyFileSync(path.join(here, 'src', 'index.html'), path.join(dist, 'index.html'));

const options = {
  entryPoints: { app: path.join(here, 'src', 'main.tsx') },
  outdir: path.join(dist, 'assets'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: !watch,
  sourcemap: 'linked',
  legalComments: 'linked',
  jsx: 'automatic',
  alias: { react: local('react'), 'react-dom': local('react-dom') },
  define: { 'process.env.NODE_ENV': JSON.stringify(watch ? 'development' : 'production') },
  logLevel: 'info',
  metafile: true,
};

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  const result = await esbuild.build(options);
  // Exactly one React in the bundle: two copies would break hooks at run time.
  const reactCopies = new Set(
    Object.keys(result.metafile.inputs)
      .filter((input) => /node_modules\/react\/cjs\/react\.production/.test(input))
      .map((input) => input.replace(/\/cjs\/.*$/, '')),
  );
  if (reactCopies.size > 1) {
    console.error(`more than one React bundled: ${[...reactCopies].join(', ')}`);
    process.exit(1);
  }
  const files = fs.readdirSync(path.join(dist, 'assets'));
  for (const wanted of ['app.js', 'app.css']) {
    if (!files.includes(wanted)) {
      console.error(`build did not produce assets/${wanted}`);
      process.exit(1);
    }
  }
}
