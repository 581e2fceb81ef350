/**
 * @file Protobuf codec comparison behind docs/decisions.md (`node --expose-gc --import tsx bench/codec.ts`): our
 * schema-driven codec vs onnx-buf (@bufbuild/protobuf `fromBinary`/`toBinary`) on
 *   - byte-exactness of decode → encode on every shared fixture;
 *   - decode and encode time of the Qwen3.5 graph (876 KB), median of 30 after warm-up;
 *   - decode and encode time and peak RSS on the synthetic model written all inline (1020 MiB .onnx), each codec
 *     in a fresh child process.
 * Writes bench/out/codec.{json,md}.
 */
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelProtoSchema } from 'onnx-buf';
import { decodeModelProto } from '../src/graph/serde/decode.js';
import { concatChunks, encodeMessage } from '../src/graph/serde/encode.js';
import { SHARED_MODELS } from '../test/support/paths.js';
import { generateSynthetic, measure, MiB } from './synthetic.js';

const HERE = dirname(fileURLToPath(import.meta.url));

const ours = {
  decode: (b: Uint8Array) => decodeModelProto(b),
  encode: (m: object) => concatChunks(encodeMessage(m, 'ModelProto')),
};
const buf = {
  decode: (b: Uint8Array) => fromBinary(ModelProtoSchema, b),
  encode: (m: ReturnType<typeof fromBinary<typeof ModelProtoSchema>>) => toBinary(ModelProtoSchema, m),
};

function onnxFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) return onnxFiles(p);
    return e.endsWith('.onnx') ? [p] : [];
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function time(fn: () => unknown, runs = 30): number {
  for (let i = 0; i < 5; i++) fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

/** Child: one codec on one big file; times and peak RSS above the loaded input, per step. */
async function child(codec: string, file: string): Promise<void> {
  const bytes = new Uint8Array(readFileSync(file));
  const out: Record<string, number> = { bytes: bytes.length };
  let msg: unknown;
  let encoded: unknown;
  const dec = await measure(() => {
    msg = codec === 'ours' ? ours.decode(bytes) : buf.decode(bytes);
  });
  out.decodeMs = dec.ms;
  out.decodePeak = dec.peakDelta;
  if (codec === 'ours') {
    let chunks: ReturnType<typeof encodeMessage> | undefined;
    const enc = await measure(() => {
      chunks = encodeMessage(msg as object, 'ModelProto');
    });
    out.encodeMs = enc.ms;
    out.encodePeak = enc.peakDelta;
    const cat = await measure(() => {
      encoded = concatChunks(chunks!);
    });
    out.concatMs = cat.ms;
    out.concatPeak = cat.peakDelta;
  } else {
    const enc = await measure(() => {
      encoded = buf.encode(msg as ReturnType<typeof buf.decode>);
    });
    out.encodeMs = enc.ms;
    out.encodePeak = enc.peakDelta;
  }
  out.identical = Buffer.compare(encoded as Uint8Array, bytes) === 0 ? 1 : 0;
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

function runChild(codec: string, file: string): Record<string, number> {
  spawnSync('sync');
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', codec, file], { encoding: 'utf8' });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`child ${codec} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line.slice('RESULT '.length)) as Record<string, number>;
}

async function main(): Promise<void> {
  // 1. Byte-exactness on every fixture.
  const exact = onnxFiles(SHARED_MODELS).map((file) => {
    const bytes = new Uint8Array(readFileSync(file));
    const a = ours.encode(ours.decode(bytes));
    const b = buf.encode(buf.decode(bytes));
    return {
      file: file.slice(SHARED_MODELS.length + 1),
      bytes: bytes.length,
      ours: Buffer.compare(a, bytes) === 0,
      oursBytes: a.length,
      onnxBuf: Buffer.compare(b, bytes) === 0,
      onnxBufBytes: b.length,
    };
  });

  // 2. The Qwen3.5 graph.
  const qwenFile = onnxFiles(SHARED_MODELS).find((f) => f.endsWith('decoder_model_merged_q4.onnx'))!;
  const qwen = new Uint8Array(readFileSync(qwenFile));
  const qo = ours.decode(qwen);
  const qb = buf.decode(qwen);
  const small = {
    bytes: qwen.length,
    ours: { decodeMs: time(() => ours.decode(qwen)), encodeMs: time(() => ours.encode(qo)) },
    onnxBuf: { decodeMs: time(() => buf.decode(qwen)), encodeMs: time(() => buf.encode(qb)) },
  };

  // 3. The synthetic model, all inline.
  const root = mkdtempSync(join(tmpdir(), 'attnpatch-bench-codec-'));
  let big: Record<string, Record<string, number>>;
  try {
    generateSynthetic(root, 170, { inline: true });
    const file = join(root, 'model.onnx');
    big = { ours: runChild('ours', file), onnxBuf: runChild('buf', file) };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }

  const report = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, exact, qwen: small, synthetic: big };
  const ms = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(0));
  const mib = (x: number) => (x / MiB).toFixed(0);
  const o = big.ours!;
  const b = big.onnxBuf!;
  const md = [
    `# Codec benchmark (${report.date.slice(0, 10)}, Node ${process.version}, ${cpus().length} CPUs)`,
    '',
    '| | ours | onnx-buf (fromBinary/toBinary) |',
    '|---|---|---|',
    `| byte-exact fixtures | ${exact.filter((e) => e.ours).length}/${exact.length} | ${exact.filter((e) => e.onnxBuf).length}/${exact.length} |`,
    `| Qwen3.5 graph (${(small.bytes / 1e3).toFixed(0)} KB): decode / encode ms | ${ms(small.ours.decodeMs)} / ${ms(small.ours.encodeMs)} | ${ms(small.onnxBuf.decodeMs)} / ${ms(small.onnxBuf.encodeMs)} |`,
    `| synthetic ${mib(o.bytes!)} MiB inline: decode ms (peak +MiB) | ${ms(o.decodeMs!)} (+${mib(o.decodePeak!)}) | ${ms(b.decodeMs!)} (+${mib(b.decodePeak!)}) |`,
    `| synthetic: encode ms (peak +MiB) | ${ms(o.encodeMs!)} (+${mib(o.encodePeak!)}) to chunks; +${ms(o.concatMs!)} (+${mib(o.concatPeak!)}) to one buffer | ${ms(b.encodeMs!)} (+${mib(b.encodePeak!)}) |`,
    `| synthetic: output identical to input | ${o.identical ? 'yes' : 'no'} | ${b.identical ? 'yes' : 'no'} |`,
    '',
    ...exact.filter((e) => !e.ours || !e.onnxBuf).map((e) => `- not byte-exact: ${e.file} (${e.bytes} B → ours ${e.oursBytes}, onnx-buf ${e.onnxBufBytes})`),
  ].join('\n');
  const out = join(HERE, 'out');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'codec.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(out, 'codec.md'), `${md}\n`);
  console.log(md);
}

if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4]!);
else await main();
