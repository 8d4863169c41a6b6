// Copy the browser runtime files that the napari-heartbox web export needs
// from node_modules (pinned by package-lock.json) into the Python package's
// gitignored vendor folder: napari_heartbox/web/vendor/.
//
//   cd web_export && npm ci --ignore-scripts && node build.mjs
//
// Only third-party files land there; nothing here is committed to git. The
// exporter (napari_heartbox/web/export.py) copies vendor/ into every bundle.
// vendor/manifest.json records each file's package, version, lockfile
// integrity and SHA-256 so a bundle says exactly what it ships.

import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nm = join(here, 'node_modules');
const out = join(here, '..', 'napari_heartbox', 'web', 'vendor');
const lock = JSON.parse(readFileSync(join(here, 'package-lock.json'), 'utf8'));

// [package, file inside the package, destination relative to vendor/]
const COPIES = [
  // onnxruntime-web, wasm execution provider only (SIMD + threads build; it
  // runs single-threaded when the page is not cross-origin isolated).
  ['onnxruntime-web', 'dist/ort.wasm.min.mjs', 'ort/ort.wasm.min.mjs'],
  ['onnxruntime-web', 'dist/ort-wasm-simd-threaded.mjs', 'ort/ort-wasm-simd-threaded.mjs'],
  ['onnxruntime-web', 'dist/ort-wasm-simd-threaded.wasm', 'ort/ort-wasm-simd-threaded.wasm'],
  ['onnxruntime-web', 'LICENSE', 'ort/LICENSE', true],
  ['dicom-parser', 'LICENSE', 'dicom-parser/LICENSE'],
  ['uplot', 'dist/uPlot.esm.js', 'uplot/uPlot.esm.js'],
  ['uplot', 'dist/uPlot.min.css', 'uplot/uPlot.min.css'],
  ['uplot', 'LICENSE', 'uplot/LICENSE'],
  // DICOM pixel codecs, loaded by the app's workers only when a series needs
  // them (napari_heartbox/web/app/codecs.js). Decode-only wasm builds.
  ['@cornerstonejs/codec-charls', 'dist/charlswasm_decode.wasm', 'codecs/charlswasm_decode.wasm'],
  ['@cornerstonejs/codec-charls', 'LICENSE', 'codecs/LICENSE.codec-charls'],
  ['@cornerstonejs/codec-openjpeg', 'dist/openjpegwasm_decode.wasm', 'codecs/openjpegwasm_decode.wasm'],
  ['@cornerstonejs/codec-openjph', 'dist/openjphjs.wasm', 'codecs/openjphjs.wasm'],
  ['@cornerstonejs/codec-openjph', 'LICENSE', 'codecs/LICENSE.codec-openjph'],
];

function pkgVersion(name) {
  const entry = lock.packages[`node_modules/${name}`];
  if (!entry) throw new Error(`${name} is not in package-lock.json`);
  return { version: entry.version, integrity: entry.integrity };
}

function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

rmSync(out, { recursive: true, force: true });
const files = {};

function record(dest, pkg, buf) {
  files[dest] = { package: pkg, ...pkgVersion(pkg), sha256: sha256(buf), bytes: buf.length };
}

for (const [pkg, src, dest, optional] of COPIES) {
  const from = join(nm, pkg, src);
  let buf;
  try {
    buf = readFileSync(from);
  } catch (e) {
    if (optional) continue;
    throw new Error(`missing ${from}: run "npm ci --ignore-scripts" in web_export/ first`);
  }
  mkdirSync(dirname(join(out, dest)), { recursive: true });
  copyFileSync(from, join(out, dest));
  record(dest, pkg, buf);
}

// dicom-parser ships only a UMD build. Wrap it as an ES module (the app's
// Web Worker is a module worker and cannot importScripts). The UMD takes its
// CommonJS branch; `require('zlib')` is only used for the deflated transfer
// syntax, which the app reports as unsupported.
{
  const umd = readFileSync(join(nm, 'dicom-parser', 'dist', 'dicomParser.min.js'), 'utf8')
    .replace(/\n\/\/# sourceMappingURL=.*$/m, '');
  const esm =
    '// dicom-parser (MIT, (c) Chris Hafey) UMD build wrapped as an ES module by web_export/build.mjs\n' +
    'const module = { exports: {} };\nconst exports = module.exports;\n' +
    'const require = () => undefined;\n' +
    umd +
    '\nexport default module.exports;\n';
  const dest = 'dicom-parser/dicomParser.mjs';
  writeFileSync(join(out, dest), esm);
  record(dest, 'dicom-parser', Buffer.from(esm));
}

// The cornerstone codecs ship Emscripten UMD glue (classic scripts). Wrap each
// as an ES module with a default export, the factory `(moduleArg) => Promise<Module>`;
// the glue takes its CommonJS branch. Its Node-only code (require('fs')) is
// never reached in a browser worker.
const EMSCRIPTEN = [
  ['@cornerstonejs/codec-charls', 'dist/charlswasm_decode.js', 'codecs/charlswasm_decode.mjs'],
  ['@cornerstonejs/codec-openjpeg', 'dist/openjpegwasm_decode.js', 'codecs/openjpegwasm_decode.mjs'],
  ['@cornerstonejs/codec-openjph', 'dist/openjphjs.js', 'codecs/openjphjs.mjs'],
];
for (const [pkg, src, dest] of EMSCRIPTEN) {
  const umd = readFileSync(join(nm, pkg, src), 'utf8').replace(/\n\/\/# sourceMappingURL=.*$/m, '');
  const esm =
    `// ${pkg} Emscripten glue wrapped as an ES module by web_export/build.mjs\n` +
    'const module = { exports: {} };\nconst exports = module.exports;\n' +
    umd +
    '\nexport default module.exports;\n';
  mkdirSync(dirname(join(out, dest)), { recursive: true });
  writeFileSync(join(out, dest), esm);
  record(dest, pkg, Buffer.from(esm));
}

// Third-party notice: what is redistributed, its version and licence (from each package.json)
{
  const lines = ['Third-party runtime files in this folder (copied by web_export/build.mjs from npm):', ''];
  for (const pkg of ['onnxruntime-web', 'dicom-parser', 'uplot', '@cornerstonejs/codec-charls',
    '@cornerstonejs/codec-openjpeg', '@cornerstonejs/codec-openjph']) {
    const pj = JSON.parse(readFileSync(join(nm, pkg, 'package.json'), 'utf8'));
    const repo = typeof pj.repository === 'string' ? pj.repository : pj.repository?.url || '';
    lines.push(`${pkg} ${pj.version}  licence: ${pj.license}  ${repo}`.trim());
  }
  lines.push('', 'onnxruntime-web: Copyright (c) Microsoft Corporation, MIT License.',
    'dicom-parser: Copyright (c) 2017 Chris Hafey, MIT License (see dicom-parser/LICENSE).',
    'uPlot: Copyright (c) Leon Sorokin, MIT License (see uplot/LICENSE).',
    'codec-charls (CharLS, BSD-3-Clause), codec-openjpeg (OpenJPEG, BSD-2-Clause), codec-openjph (OpenJPH,',
    '  BSD-2-Clause): Emscripten builds by the Cornerstone.js team, MIT License (codecs/LICENSE.*).', '');
  writeFileSync(join(out, 'NOTICE.txt'), lines.join('\n'));
}

const manifest = {
  generated_by: 'web_export/build.mjs',
  onnxruntime_web: pkgVersion('onnxruntime-web').version,
  dicom_parser: pkgVersion('dicom-parser').version,
  uplot: pkgVersion('uplot').version,
  codecs: Object.fromEntries(['@cornerstonejs/codec-charls', '@cornerstonejs/codec-openjpeg',
    '@cornerstonejs/codec-openjph'].map((p) => [p, pkgVersion(p).version])),
  files,
};
writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
const total = Object.values(files).reduce((s, f) => s + f.bytes, 0);
console.log(`vendor: ${Object.keys(files).length} files, ${(total / 1e6).toFixed(1)} MB -> ${out}`);
