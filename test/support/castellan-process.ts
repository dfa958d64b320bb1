// Real `castellan` processes for fault tests: the one implementation lives in
// src/lab/castellan-process.ts, where bench/ can use it too (bench must not import tests).
export * from '../../src/lab/castellan-process.js';
