/**
 * The library as one browser ES module (bundled to build/site/lib.js by scripts/build-web.mjs):
 * the package's main entry, src/index.ts, so the site and `import 'negclip-webgpu'` export the
 * same list. Only browser-safe modules: the device comes from `navigator.gpu`
 * (`GpuContext.create(navigator.gpu)`), files come in as bytes, `Response`s or `File`s.
 * Node-only modules (*-node.ts, the `webgpu` package, image decoding) stay out; the build fails
 * if one is reached.
 */
export * from '../src/index.js';
