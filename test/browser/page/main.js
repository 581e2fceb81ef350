// The page side of test/browser/webgpu.test.ts: attnpatch's browser entry (dist/index.js, mapped as `attnpatch`) and
// transformers.js's web build, all served locally (no CDN). The test calls `window.attnpatchTest.*` through
// page.evaluate; results are plain JSON.
import { env } from '@huggingface/transformers';
import { pipeline } from 'attnpatch';

env.allowLocalModels = true;
env.allowRemoteModels = false;
env.localModelPath = '/models/';
// ORT's wasm files from the onnxruntime-web that transformers.js itself imports (the import map points at it), as
// a URL prefix: transformers.js would otherwise point at jsDelivr.
const ortDist = new URL('./', import.meta.resolve('onnxruntime-web/webgpu')).href;
env.backends.onnx.wasm.wasmPaths = ortDist;

/** Adapter facts for the report; `null` adapter means WebGPU cannot run here. */
async function adapter() {
  if (!('gpu' in navigator)) return { available: false, why: 'navigator.gpu is missing' };
  const a = await navigator.gpu.requestAdapter();
  if (!a) return { available: false, why: 'navigator.gpu.requestAdapter() returned null' };
  const info = a.info ?? {};
  return {
    available: true,
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: info.isFallbackAdapter ?? a.isFallbackAdapter,
    features: [...a.features].sort(),
    maxBufferSize: a.limits.maxBufferSize,
    maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize,
    crossOriginIsolated: globalThis.crossOriginIsolated,
  };
}

/**
 * Loads `model` with attnpatch's pipeline (`patch` undefined: plain transformers.js), generates from `prompt`, and
 * returns the text, the generated token ids, the patch reports, the device transformers.js chose, the ORT log lines
 * written while the session was created (verbose: node placement per execution provider) and how often each WebGPU
 * program was dispatched while generating.
 */
async function generate({ model, prompt, patch, generation, device = 'webgpu', dtype = 'fp32' }) {
  const reports = [];
  const lines = window.__consoleLines;
  const t0 = performance.now();
  const logFrom = lines.length;
  // Verbose for this session only (ORT's node placement is logged as the session is created); ORT's default logger
  // stays at warning, so runs do not log every WebGPU program they start (that costs seconds on SwiftShader).
  const p = await pipeline('text-generation', model, {
    device,
    dtype,
    session_options: { logSeverityLevel: 0 },
    ...(patch ? { patch, onReport: (file, r) => reports.push({ file, reports: r }) } : {}),
  });
  const loadLog = lines.slice(logFrom);
  const t1 = performance.now();
  const steps = [];
  // A duck-typed streamer: generate() calls put() with the prompt ids, then with each new token.
  const streamer = { put: (ids) => steps.push(ids.map((row) => row.map(Number))), end: () => {} };
  const runFrom = lines.length;
  const out = await p(prompt, { ...generation, streamer });
  const t2 = performance.now();
  // The WebGPU EP logs each compute program it dispatches (verbose session): which kernels really ran.
  const programs = {};
  for (const line of lines.slice(runFrom)) {
    const m = /Starting program "([A-Za-z0-9_]+)/.exec(line);
    if (m) programs[m[1]] = (programs[m[1]] ?? 0) + 1;
  }
  const session = p.model.sessions?.model;
  const result = {
    text: out[0].generated_text,
    promptIds: steps[0]?.[0] ?? [],
    newIds: steps.slice(1).map((s) => s[0][0]),
    reports,
    sessionConfig: session?.config ?? null,
    loadLog,
    programs,
    loadMs: Math.round(t1 - t0),
    generateMs: Math.round(t2 - t1),
  };
  await p.dispose();
  lines.length = 0; // this run's lines are in the result
  return result;
}

window.attnpatchTest = { adapter, generate, ortDist, transformersVersion: env.version };
window.attnpatchReady = true;
