/**
 * attnpatch in a real browser: headless Debian Chromium (through playwright-core) runs the browser build
 * (`dist/index.js` + transformers.js's web build + its nested onnxruntime-web, all served from this repo) on WebGPU,
 * which SwiftShader emulates on the CPU. The GQA-patched model must generate the same 16 greedy tokens as the same
 * attnpatch pipeline in Node on CPU; ORT's verbose log must show the GroupQueryAttention nodes placed on the
 * WebGPU execution provider. `patch: 'auto'` must pick the tinystories recipe in the page (recipes fetched beside
 * dist/) and give Node CPU's tokens with the same recipe. An unpatched WebGPU run is reported for comparison.
 *
 * Needs `/usr/bin/chromium` (`apt-get install -y chromium`; override with ATTNPATCH_CHROMIUM) and a built `dist/`
 * (`npm ci` builds it). Outside CI (CI=true) the suite is skipped when Chromium is absent; in CI it fails.
 */
import { env } from '@huggingface/transformers';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipeline } from '../../src/runtime/transformers/pipeline.js';
import { samplesOf, substituted, where } from '../docs/samples.js';
import { serveStatic, type StaticServer } from './server.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.ATTNPATCH_CHROMIUM ?? '/usr/bin/chromium';
const IN_CI = process.env.CI === 'true';
const HAVE_CHROMIUM = existsSync(CHROMIUM);

const MODEL_ID = 'tinystories-656k';
const PROMPT = 'Once upon a time, there was a little dog named';
const GENERATION = { max_new_tokens: 16, min_new_tokens: 16, do_sample: false } as const;
const PAGE = '/test/browser/page/index.html';
// SwiftShader WebGPU is slow (shader compilation on the CPU): a run here takes ~15–25 s; allow for slow CI machines.
const RUN_MS = 300_000;

const ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--enable-unsafe-webgpu',
];

/** What the page's `attnpatchTest.generate` returns (test/browser/page/main.js). */
interface PageRun {
  text: string;
  promptIds: number[];
  newIds: number[];
  reports: { file: string; reports: { patch: string; patched: { layer: number; to: string }[]; left: unknown[] }[] }[];
  sessionConfig: { device?: string; dtype?: string } | null;
  loadLog: string[];
  /** WebGPU programs dispatched while generating, by name, with counts (from the verbose session log). */
  programs: Record<string, number>;
  loadMs: number;
  generateMs: number;
}
interface AdapterInfo {
  available: boolean;
  why?: string;
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
  features?: string[];
  maxBufferSize?: number;
  crossOriginIsolated?: boolean;
}
interface Generated {
  text: string;
  promptIds: number[];
  newIds: number[];
}
declare global {
  interface Window {
    attnpatchReady?: boolean;
    attnpatchTest: {
      adapter(): Promise<AdapterInfo>;
      generate(opts: { model: string; prompt: string; patch?: unknown; generation: unknown }): Promise<PageRun>;
      ortDist: string;
      transformersVersion: string;
    };
  }
}

// --- preconditions ------------------------------------------------------------------------------------------------

/**
 * Why dist/ cannot be what the page loads, or undefined when it is fine: every module reachable from dist/index.js
 * (static and dynamic relative imports) must exist and be at least as new as its source under src/. Only that graph
 * is checked, so work in progress elsewhere in src/ does not stop the browser test.
 */
function distProblem(): string | undefined {
  const dist = join(REPO_ROOT, 'dist');
  const entry = join(dist, 'index.js');
  if (!existsSync(entry)) return 'dist/index.js is missing';
  const stale: string[] = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    if (!existsSync(file)) {
      missing.push(relative(REPO_ROOT, file));
      return;
    }
    const source = join(REPO_ROOT, 'src', relative(dist, file)).replace(/\.js$/, '.ts');
    if (existsSync(source) && statSync(source).mtimeMs > statSync(file).mtimeMs) stale.push(relative(REPO_ROOT, source));
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:\bfrom|\bimport)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      visit(resolve(dirname(file), m[1]!));
    }
  };
  visit(entry);
  const some = (files: string[]) => `${files.slice(0, 5).join(', ')}${files.length > 5 ? ` and ${files.length - 5} more` : ''}`;
  if (missing.length) return `dist/ lacks ${some(missing)} (imported from dist/index.js)`;
  if (stale.length) return `dist/ is older than ${some(stale)}`;
  return undefined;
}

/** Node's resolution of a package from `fromDir` (nested node_modules first, then each parent's). */
function findPackage(name: string, fromDir: string): string {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`cannot find package ${name} from ${fromDir}`);
  }
}

/** Where the page imports ml-matrix from: a module that loads the UMD build and re-exports its names. */
const ML_MATRIX_SHIM = '/__attnpatch_test__/ml-matrix.mjs';

function mlMatrixShim(): string {
  const umd = `/${relative(REPO_ROOT, join(findPackage('ml-matrix', REPO_ROOT), 'matrix.umd.js')).split(sep).join('/')}`;
  const names = Object.keys(createRequire(import.meta.url)('ml-matrix') as object).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== 'default');
  return [`import '${umd}';`, 'const m = globalThis.mlMatrix;', ...names.map((n) => `export const ${n} = m.${n};`), 'export default m;'].join('\n');
}

/** The import map: attnpatch's browser entry, transformers.js's web build and the ORT packages *it* resolves. */
function importMap(): { map: { imports: Record<string, string> }; versions: Record<string, string> } {
  const url = (file: string): string => {
    if (!existsSync(file)) throw new Error(`browser test: ${file} is missing (npm ci?)`);
    const rel = relative(REPO_ROOT, file);
    if (rel.startsWith('..')) throw new Error(`browser test: ${file} is outside the served repo root`);
    return `/${rel.split(sep).join('/')}`;
  };
  const transformers = findPackage('@huggingface/transformers', REPO_ROOT);
  const ortWeb = findPackage('onnxruntime-web', transformers);
  const ortCommon = findPackage('onnxruntime-common', transformers);
  const version = (dir: string) => (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  return {
    map: {
      imports: {
        attnpatch: url(join(REPO_ROOT, 'dist', 'index.js')),
        '@huggingface/transformers': url(join(transformers, 'dist', 'transformers.web.js')),
        // What a bundler picks for transformers.js's `import … from 'onnxruntime-web/webgpu'` (exports → import →
        // default): the native WebGPU EP build. Its wasm files come from the same dist/ (page: wasmPaths).
        'onnxruntime-web/webgpu': url(join(ortWeb, 'dist', 'ort.webgpu.bundle.min.mjs')),
        'onnxruntime-common': url(join(ortCommon, 'dist', 'esm', 'index.js')),
        // attnpatch's own dependency ml-matrix (the mla patch's linear algebra) ships no browser ESM entry a page can
        // import without a bundler: a virtual module re-exports its UMD build (see ML_MATRIX_SHIM).
        'ml-matrix': ML_MATRIX_SHIM,
        zod: url(join(findPackage('zod', REPO_ROOT), 'index.js')), // zod ships browser-ready ESM
      },
    },
    versions: { transformers: version(transformers), 'onnxruntime-web': version(ortWeb), 'onnxruntime-common': version(ortCommon) },
  };
}

// --- ORT log parsing ----------------------------------------------------------------------------------------------

/** ORT's verbose node placement (session_state.cc VerifyEachNodeIsAssignedToAnEp): op types per execution provider. */
function placements(log: string[]): Map<string, { count: number; ops: string[] }> {
  const out = new Map<string, { count: number; ops: string[] }>();
  let current: { count: number; ops: string[] } | undefined;
  for (const line of log) {
    const group = /(All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(line);
    if (group) {
      current = out.get(group[2]!) ?? { count: 0, ops: [] };
      current.count += Number(group[3]);
      out.set(group[2]!, current);
      continue;
    }
    const node = /VerifyEachNodeIsAssignedToAnEp\]\s+(\w+) \((.*)\)\s*$/.exec(line);
    if (node && current) current.ops.push(node[1]!);
    else if (!/VerifyEachNodeIsAssignedToAnEp/.test(line)) current = undefined;
  }
  return out;
}

/** Docs samples annotated `<!-- docs-test: browser -->`, served as modules the test page imports. */
const DOC_SAMPLES = samplesOf(REPO_ROOT).filter((s) => s.directives.browser);
const docSampleUrl = (i: number) => `/__attnpatch_test__/docs-sample-${i}.mjs`;

const countOf = (ops: string[] | undefined, op: string): number => (ops ?? []).filter((o) => o === op).length;

/** ORT's own log lines (`2026-… [V:onnxruntime:…]`), which its wasm logger writes with console.error. */
const ORT_LOG = /^(\x1b\[[0-9;]*m)?\d{4}-\d\d-\d\d [\d:.]+ \[[VI]:onnxruntime/;

// --- Node reference -----------------------------------------------------------------------------------------------

async function nodeCpu(patch: string | string[] | undefined, generation: object = GENERATION): Promise<Generated> {
  type Gen = ((text: string, options: object) => Promise<{ generated_text: string }[]>) & { dispose(): Promise<void> };
  const p = (await pipeline('text-generation', join(REPO_ROOT, 'models', MODEL_ID), {
    device: 'cpu',
    dtype: 'fp32',
    ...(patch ? { patch, cacheDir: false as const } : {}),
  })) as unknown as Gen;
  // A duck-typed streamer: generate() calls put() with the prompt ids, then with each new token.
  const steps: number[][][] = [];
  const streamer = { put: (ids: bigint[][]) => void steps.push(ids.map((row) => row.map(Number))), end: () => {} };
  try {
    const out = await p(PROMPT, { ...generation, streamer });
    return { text: out[0]!.generated_text, promptIds: steps[0]?.[0] ?? [], newIds: steps.slice(1).map((s) => s[0]![0]!) };
  } finally {
    await p.dispose();
  }
}

// --- the suite ----------------------------------------------------------------------------------------------------

if (!HAVE_CHROMIUM && !IN_CI) {
  console.warn(`test/browser: skipped, ${CHROMIUM} not found (apt-get install -y chromium, or set ATTNPATCH_CHROMIUM); with CI=true it fails instead`);
}

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)('browser: attnpatch pipeline on WebGPU (headless Chromium, SwiftShader)', () => {
  let server: StaticServer | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  let userDataDir: string | undefined;
  let versions: Record<string, string> = {};
  const pageErrors: string[] = [];
  const consoleTail: string[] = []; // page console lines that are not ORT's verbose/info log
  const external: string[] = []; // requests that tried to leave 127.0.0.1 (blocked)
  let cpuPatched: Generated; // the Node CPU references
  let cpuPlain: Generated;

  const diagnostics = (): string =>
    [
      pageErrors.length ? `page errors:\n  ${pageErrors.slice(-10).join('\n  ')}` : 'page errors: none',
      consoleTail.length ? `page console (last ${Math.min(30, consoleTail.length)}):\n  ${consoleTail.slice(-30).join('\n  ')}` : 'page console: nothing but ORT logs',
      external.length ? `blocked external requests:\n  ${external.join('\n  ')}` : '',
      `server: ${server?.log.filter((l) => !/ 20[06]$/.test(l)).slice(-10).join('; ') || 'every request answered 200/206'}`,
    ]
      .filter(Boolean)
      .join('\n');

  /** Runs `fn` in the page; a failure or a hang becomes an error that carries the page's errors and console. */
  async function inPage<T>(label: string, fn: () => Promise<T>, ms = RUN_MS): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new Error(`timed out after ${ms / 1000}s`)), ms);
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (e) {
      throw new Error(`${label} failed: ${(e as Error).message}\n${diagnostics()}`);
    } finally {
      clearTimeout(timer);
    }
  }

  const runInPage = (patch: string | string[] | undefined, generation: object = GENERATION): Promise<PageRun> =>
    inPage(`generate (${patch ? `patch ${[patch].flat().join(',')}` : 'unpatched'}, webgpu)`, () =>
      page.evaluate(
        (a) => window.attnpatchTest.generate({ model: a.model, prompt: a.prompt, generation: a.generation, ...(a.patch ? { patch: a.patch } : {}) }),
        { model: MODEL_ID, prompt: PROMPT, generation, patch },
      ),
    );

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`${CHROMIUM} not found: CI must install Debian's chromium (.ci/run apt_packages)`);
    const problem = distProblem();
    if (problem) throw new Error(`browser test loads dist/, but ${problem}: run \`npm run build\` first`);
    env.allowRemoteModels = false;
    // Node references first: cheap, and a failure here is not a browser problem.
    // NOTE: one after the other: a patched load of a model id patches every load of that id while it runs.
    cpuPatched = await nodeCpu(['gqa']);
    cpuPlain = await nodeCpu(undefined);

    const { map, versions: v } = importMap();
    versions = v;
    const html = readFileSync(join(REPO_ROOT, PAGE), 'utf8').replace('__IMPORT_MAP__', JSON.stringify(map));
    server = await serveStatic(REPO_ROOT, {
      virtual: {
        [PAGE]: { type: 'text/html; charset=utf-8', body: html },
        [ML_MATRIX_SHIM]: { type: 'text/javascript', body: mlMatrixShim() },
        ...Object.fromEntries(DOC_SAMPLES.map((s, i) => [docSampleUrl(i), { type: 'text/javascript', body: substituted(s, {}) }])),
      },
    });
    userDataDir = mkdtempSync(join(tmpdir(), 'attnpatch-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: ARGS });
    const origin = server.origin;
    await context.route(
      (u) => u.origin !== origin,
      (route) => {
        external.push(route.request().url());
        return route.abort();
      },
    );
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(`${e.name}: ${e.message}`));
    page.on('crash', () => pageErrors.push('page crashed'));
    page.on('requestfailed', (r) => consoleTail.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText ?? ''}`));
    page.on('console', (m) => {
      const text = m.text();
      if (ORT_LOG.test(text) || m.type() === 'debug') return;
      consoleTail.push(`[${m.type()}] ${text.slice(0, 500)}`);
      if (consoleTail.length > 200) consoleTail.splice(0, consoleTail.length - 200);
    });
    await inPage('loading the test page', async () => {
      await page.goto(`${origin}${PAGE}`);
      await page.waitForFunction(() => window.attnpatchReady === true, null, { timeout: 60_000 });
    }, 90_000);
  }, 180_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await server?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('the page is cross-origin isolated and has a WebGPU adapter', async () => {
    const adapter = await inPage('requestAdapter', () => page.evaluate(() => window.attnpatchTest.adapter()), 60_000);
    const { features, ...rest } = adapter;
    console.info(`browser: ${await page.evaluate(() => navigator.userAgent)}; packages ${JSON.stringify(versions)}`);
    console.info(`WebGPU adapter: ${JSON.stringify(rest)}; ${features?.length ?? 0} features, shader-f16: ${features?.includes('shader-f16') ?? false}`);
    expect(adapter.available, `no WebGPU adapter (${adapter.why}); Chromium needs --enable-unsafe-webgpu and its SwiftShader\n${diagnostics()}`).toBe(true);
    expect(adapter.crossOriginIsolated, 'COOP/COEP headers missing: the page is not cross-origin isolated').toBe(true);
  });

  it("patch: ['gqa'] on WebGPU generates the same 16 greedy tokens as Node CPU", async () => {
    const run = await runInPage(['gqa']);
    const cpu = cpuPatched;
    const placed = placements(run.loadLog);
    const onGpu = placed.get('WebGpuExecutionProvider');
    const onCpu = placed.get('CPUExecutionProvider');
    console.info(
      `patched webgpu: load ${run.loadMs} ms, generate ${run.generateMs} ms; ` +
        `placement ${[...placed].map(([ep, g]) => `${ep} ${g.count}${ep === 'CPUExecutionProvider' ? ` [${g.ops.join(', ')}]` : ''}`).join(', ')}`,
    );
    console.info(`patched webgpu ids: ${run.newIds.join(' ')}\nnode cpu ids:       ${cpu.newIds.join(' ')}`);
    const attentionPrograms = Object.entries(run.programs).filter(([name]) => /Attention|KV|Rotary/i.test(name));
    console.info(`patched webgpu attention programs dispatched: ${attentionPrograms.map(([n, c]) => `${n} ×${c}`).join(', ') || 'none'}`);

    // The patch ran in the browser: both attention blocks became GroupQueryAttention.
    expect(run.reports).toHaveLength(1);
    expect(run.reports[0]!.file).toBe('onnx/model.onnx');
    expect(run.reports[0]!.reports[0]).toMatchObject({ patch: 'gqa', left: [] });
    expect(run.reports[0]!.reports[0]!.patched.map((p) => p.to)).toEqual([
      expect.stringMatching(/^GroupQueryAttention/),
      expect.stringMatching(/^GroupQueryAttention/),
    ]);
    // It ran on WebGPU: transformers.js chose the device, and ORT placed the patched attention on its WebGPU EP.
    expect(run.sessionConfig).toMatchObject({ device: 'webgpu', dtype: 'fp32' });
    expect(onGpu, `no "placed on [WebGpuExecutionProvider]" in ORT's verbose log\n${diagnostics()}`).toBeDefined();
    expect(countOf(onGpu?.ops, 'GroupQueryAttention'), 'GroupQueryAttention nodes on the WebGPU EP').toBe(2);
    expect(countOf(onCpu?.ops, 'GroupQueryAttention'), 'GroupQueryAttention nodes that fell back to CPU').toBe(0);
    expect(countOf(onCpu?.ops, 'MatMul'), 'MatMul nodes that fell back to CPU').toBe(0);
    expect(Object.keys(run.programs).length, 'no WebGPU program was dispatched while generating').toBeGreaterThan(0);

    expect(run.promptIds).toEqual(cpu.promptIds);
    expect(run.newIds).toHaveLength(16);
    expect(run.newIds, `patched WebGPU tokens differ from Node CPU\nwebgpu: ${run.text}\ncpu:    ${cpu.text}`).toEqual(cpu.newIds);
    expect(run.text).toBe(cpu.text);
  }, RUN_MS + 60_000);

  it('dca (chunk 12, window 4: L = 8) on WebGPU: a prompt + generation spanning several chunks gives the Node CPU tokens', async () => {
    const spec = ['dca:chunkSize=12,localWindow=4'];
    const cpu = await nodeCpu(spec);
    const run = await runInPage(spec);
    console.info(`dca webgpu: load ${run.loadMs} ms, generate ${run.generateMs} ms\ndca webgpu ids: ${run.newIds.join(' ')}\nnode cpu ids:   ${cpu.newIds.join(' ')}`);
    expect(run.reports[0]!.reports[0]).toMatchObject({ patch: 'dca', left: [] });
    expect(run.reports[0]!.reports[0]!.patched.map((p) => p.to)).toEqual([expect.stringMatching(/^DualChunkAttention/), expect.stringMatching(/^DualChunkAttention/)]);
    // Prompt + 16 new tokens cover at least three chunks of 8 tokens.
    expect(run.promptIds.length + run.newIds.length).toBeGreaterThan(3 * 8);
    expect(run.promptIds).toEqual(cpu.promptIds);
    expect(run.newIds, `DCA WebGPU tokens differ from Node CPU\nwebgpu: ${run.text}\ncpu:    ${cpu.text}`).toEqual(cpu.newIds);
  }, RUN_MS + 60_000);

  it("patch: 'auto' on WebGPU: the recipe matched in the browser (tinystories → dca) gives the Node CPU tokens", async () => {
    const short = { max_new_tokens: 6, min_new_tokens: 6, do_sample: false };
    const cpu = await nodeCpu('auto', short);
    const run = await runInPage('auto', short);
    console.info(`auto webgpu: load ${run.loadMs} ms, generate ${run.generateMs} ms\nauto webgpu ids: ${run.newIds.join(' ')}\nnode cpu ids:    ${cpu.newIds.join(' ')}`);
    // The page fetched recipes/*.json beside dist/, matched config.json to the tinystories recipe and applied its
    // auto list (dca with trainedLength 512: chunk 384, local window 64).
    expect(run.reports).toHaveLength(1);
    expect(run.reports[0]!.reports.map((r) => r.patch)).toEqual(['dca']);
    expect(run.reports[0]!.reports[0]).toMatchObject({ patch: 'dca', left: [] });
    expect(run.reports[0]!.reports[0]!.patched.map((p) => p.to)).toEqual([expect.stringMatching(/^DualChunkAttention/), expect.stringMatching(/^DualChunkAttention/)]);
    expect(run.sessionConfig).toMatchObject({ device: 'webgpu' });
    expect(server!.log.some((l) => /\/recipes\/tinystories\.json 200$/.test(l)), 'the page did not fetch recipes/tinystories.json').toBe(true);
    expect(run.promptIds).toEqual(cpu.promptIds);
    expect(run.newIds).toHaveLength(6);
    expect(run.newIds, `patch 'auto' WebGPU tokens differ from Node CPU\nwebgpu: ${run.text}\ncpu:    ${cpu.text}`).toEqual(cpu.newIds);
  }, RUN_MS + 60_000);

  it('unpatched on WebGPU (comparison): transformers.js alone, no GroupQueryAttention in the graph', async () => {
    const run = await runInPage(undefined);
    const cpu = cpuPlain;
    const placed = placements(run.loadLog);
    const matches = run.newIds.length === cpu.newIds.length && run.newIds.every((t, i) => t === cpu.newIds[i]);
    console.info(
      `unpatched webgpu: load ${run.loadMs} ms, generate ${run.generateMs} ms; placement ${[...placed].map(([ep, g]) => `${ep} ${g.count}`).join(', ')}; ` +
        `tokens ${matches ? 'match' : 'DIFFER from'} Node CPU${matches ? '' : `\nwebgpu: ${run.newIds.join(' ')}\ncpu:    ${cpu.newIds.join(' ')}`}`,
    );
    expect(run.reports).toEqual([]);
    expect(run.sessionConfig).toMatchObject({ device: 'webgpu' });
    expect(placed.get('WebGpuExecutionProvider')?.count ?? 0).toBeGreaterThan(0);
    // The patched load before this one must not have left its graph under the original URL in the browser cache.
    const all = [...placed.values()].flatMap((g) => g.ops);
    expect(countOf(all, 'GroupQueryAttention'), 'the unpatched load got a GQA graph: the browser cache is poisoned').toBe(0);
    expect(run.newIds).toHaveLength(16);
    // Not asserted equal to CPU (that is ONNX Runtime's business, not attnpatch's), only reported above.
  }, RUN_MS + 60_000);

  it('the docs samples marked browser run in a fresh page as written (getting-started: the page, the Cache API)', async () => {
    expect(DOC_SAMPLES.length, 'no <!-- docs-test: browser --> sample in the docs').toBeGreaterThan(0);
    for (const [i, s] of DOC_SAMPLES.entries()) {
      const p = await context!.newPage();
      const errors: string[] = [];
      p.on('pageerror', (e) => errors.push(`${e.name}: ${e.message}`));
      try {
        const body = await inPage(where(s), async () => {
          await p.goto(`${server!.origin}${PAGE}`);
          await p.waitForFunction(() => window.attnpatchReady === true, null, { timeout: 60_000 });
          // NOTE: a string, so vitest does not rewrite the page's dynamic import() into its own loader.
          return p.evaluate<string>(`import(${JSON.stringify(docSampleUrl(i))}).then(() => document.body.textContent ?? '')`);
        });
        console.info(`${where(s)} ran; page text: ${JSON.stringify(body.slice(0, 160))}`);
        expect(errors, `${where(s)}: page errors`).toEqual([]);
        // A sample that shows its result on the page must have shown something generated from the prompt.
        if (s.code.includes('document.body.textContent =')) expect(body).toMatch(/^Once upon a time.{20,}/s);
      } finally {
        await p.close();
      }
    }
  }, RUN_MS + 60_000);

  it('served everything locally: ORT wasm from the onnxruntime-web transformers.js resolves, nothing external', () => {
    const served = server!.log.filter((l) => / 20[06]$/.test(l));
    expect(served.some((l) => /onnxruntime-web\/dist\/ort-wasm-simd-threaded\.asyncify\.wasm /.test(l)), served.join('\n')).toBe(true);
    expect(served.some((l) => /\/models\/tinystories-656k\/onnx\/model\.onnx /.test(l))).toBe(true);
    expect(external).toEqual([]);
  });
});
