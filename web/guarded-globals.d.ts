/**
 * Node globals that browser-safe library code may touch, each only behind a `typeof` check.
 * web/tsconfig.json type-checks the bundle's sources without Node's types, so any other Node
 * global (Buffer, process, __dirname, ...) in code the browser bundle reaches is a type error.
 */

/** src/engine/context.ts: paces dawn.node's polling in Node; absent in browsers. */
declare function setImmediate(callback: () => void): unknown;
