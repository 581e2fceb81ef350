/**
 * Bad input (issue §5): every malformed or hostile file fails with a typed error whose code and message say what
 * and where (file, tensor, node), and a failed save writes nothing. Models are built with the IR, saved with our own
 * writer, then corrupted as bytes or as decoded protos.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAttnpatchError, type AttnpatchError, type ErrorCode } from '../../src/errors.js';
import { loadModelFromBytes, saveModelToBytes } from '../../src/graph/io/bytes.js';
import { loadModelFile, saveModelFile } from '../../src/graph/io/fs.js';
import { DataType } from '../../src/graph/ir/dtype.js';
import { Graph } from '../../src/graph/ir/graph.js';
import { Model } from '../../src/graph/ir/model.js';
import { Node } from '../../src/graph/ir/node.js';
import { tensorType } from '../../src/graph/ir/types.js';
import { decodeModelProto } from '../../src/graph/serde/decode.js';
import { concatChunks, encodeMessage } from '../../src/graph/serde/encode.js';
import type { ModelProto, TensorProto } from '../../src/graph/serde/schema.generated.js';
import { toposort } from '../../src/graph/passes/toposort.js';
import { assertValid, validate } from '../../src/graph/passes/validate.js';
import { LazyTensor, MemoryTensor, type Tensor } from '../../src/graph/tensor/tensor.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'attnpatch-bad-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The error `fn` throws, asserted to be an AttnpatchError with `code`. */
function caught(fn: () => unknown, code: ErrorCode): AttnpatchError {
  try {
    fn();
  } catch (e) {
    expect(isAttnpatchError(e), `expected an AttnpatchError, got ${String(e)}`).toBe(true);
    expect((e as AttnpatchError).code).toBe(code);
    return e as AttnpatchError;
  }
  throw new Error('expected an error, got none');
}

const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);

/** y = (x + bias) * big.weight; `big.weight` (256 B) goes external with threshold 128. */
function smallModel(big: Tensor = new MemoryTensor(DataType.FLOAT, [64], f32(Array.from({ length: 64 }, (_, i) => i)))): Model {
  const g = new Graph('small');
  const x = g.addInput('x', tensorType(DataType.FLOAT, [64]));
  const bias = g.addInitializer('bias', new MemoryTensor(DataType.FLOAT, [4], f32([1, 2, 3, 4])));
  const w = g.addInitializer('big.weight', big);
  const add = new Node({ opType: 'Add', name: 'add', inputs: [x, bias], outputs: ['sum'] });
  const mul = new Node({ opType: 'Mul', name: 'mul', inputs: [add.output(), w], outputs: ['y'] });
  g.insert([add, mul]);
  g.outputs.push(mul.output());
  return new Model(g);
}

/** Writes the small model with external data into `dir`; returns the .onnx path. */
function writeExternal(): string {
  const file = join(dir, 'model.onnx');
  saveModelFile(smallModel(), file, { externalData: { threshold: 128 } });
  expect(readdirSync(dir).sort()).toEqual(['model.onnx', 'model.onnx_data']);
  return file;
}

/** Decodes `file`, lets `edit` change the proto, and writes it back. */
function editProto(file: string, edit: (m: ModelProto, byName: (name: string) => TensorProto) => void): void {
  const proto = decodeModelProto(new Uint8Array(readFileSync(file)));
  const byName = (name: string) => proto.graph!.initializer!.find((t) => t.name === name)!;
  edit(proto, byName);
  writeFileSync(file, concatChunks(encodeMessage(proto, 'ModelProto')));
}

function setExternal(t: TensorProto, key: string, value: string): void {
  const entry = t.external_data!.find((e) => e.key === key);
  if (entry) entry.value = value;
  else t.external_data!.push({ key, value });
}

describe('bad input: bytes', () => {
  it('truncated bytes: PARSE naming the file and the byte offset', () => {
    const bytes = saveModelToBytes(smallModel());
    const file = join(dir, 'truncated.onnx');
    writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const e = caught(() => loadModelFile(file), 'PARSE');
    expect(e.message).toMatch(/^not a valid ONNX protobuf: truncated: need \d+ bytes at offset \d+, have \d+ \(at byte \d+\)/);
    expect(e.where.file).toBe(file);
    expect(e.message).toContain(`file=${file}`);
  });

  it('garbage bytes: PARSE naming the file', () => {
    let seed = 12345;
    const garbage = Uint8Array.from({ length: 4096 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff);
    const file = join(dir, 'garbage.onnx');
    writeFileSync(file, garbage);
    const e = caught(() => loadModelFile(file), 'PARSE');
    expect(e.message).toMatch(/^not a valid ONNX (protobuf|model): /);
    expect(e.where.file).toBe(file);
  });

  it('text that is not protobuf at all: PARSE', () => {
    const e = caught(() => loadModelFromBytes(new TextEncoder().encode('{"not": "onnx"}\n'), { file: 'model.json' }), 'PARSE');
    expect(e.message).toContain('file=model.json');
  });

  it('empty file: PARSE saying so', () => {
    const file = join(dir, 'empty.onnx');
    writeFileSync(file, new Uint8Array(0));
    const e = caught(() => loadModelFile(file), 'PARSE');
    expect(e.message).toBe(`not a valid ONNX model: the file is empty [file=${file}]`);
  });

  it('dims that do not fit raw_data: SHAPE naming the tensor and the file', () => {
    const file = join(dir, 'model.onnx');
    saveModelFile(smallModel(), file, { externalData: false });
    editProto(file, (_, t) => {
      t('bias').dims = [5];
    });
    const e = caught(() => loadModelFile(file), 'SHAPE');
    expect(e.message).toBe(`tensor data has 16 bytes but float[5] needs 20 [file=${file} tensor=bias]`);
  });

  it('a negative dim: SHAPE naming the tensor', () => {
    const file = join(dir, 'model.onnx');
    saveModelFile(smallModel(), file, { externalData: false });
    editProto(file, (_, t) => {
      t('bias').dims = [-4];
    });
    expect(caught(() => loadModelFile(file), 'SHAPE').message).toMatch(/invalid dim -4 .*tensor=bias/);
  });
});

describe('bad input: external data', () => {
  it('writes a model whose external data loads back (the baseline for the cases below)', () => {
    const m = loadModelFile(writeExternal());
    expect([...m.graph.initializers.get('big.weight')!.initializer!.bytes().subarray(4, 8)]).toEqual([...f32([1])]);
  });

  it('a missing external-data file: EXTERNAL_DATA naming the data file, the tensor and the model file', () => {
    const file = writeExternal();
    unlinkSync(join(dir, 'model.onnx_data'));
    const e = caught(() => loadModelFile(file), 'EXTERNAL_DATA');
    expect(e.message).toBe(`external data file model.onnx_data not found in ${dir} [file=${file} tensor=big.weight]`);
  });

  it('an absolute location: UNSAFE_PATH naming the location and the tensor', () => {
    const file = writeExternal();
    writeFileSync(join(dir, 'abs.bin'), new Uint8Array(256));
    editProto(file, (_, t) => setExternal(t('big.weight'), 'location', join(dir, 'abs.bin')));
    const e = caught(() => loadModelFile(file), 'UNSAFE_PATH');
    expect(e.message).toBe(
      `external data location ${JSON.stringify(join(dir, 'abs.bin'))} is absolute; it must be relative to the model folder [file=${file} tensor=big.weight field=external_data.location]`,
    );
  });

  it('a location with ../ that leaves the folder: UNSAFE_PATH (also when the target exists)', () => {
    const inner = join(dir, 'model');
    mkdirSync(inner);
    const file = join(inner, 'model.onnx');
    saveModelFile(smallModel(), file, { externalData: { threshold: 128 } });
    writeFileSync(join(dir, 'outside.bin'), new Uint8Array(256));
    for (const location of ['../outside.bin', 'sub/../../outside.bin', '..\\outside.bin']) {
      editProto(file, (_, t) => setExternal(t('big.weight'), 'location', location));
      const e = caught(() => loadModelFile(file), 'UNSAFE_PATH');
      expect(e.message).toBe(`external data location ${JSON.stringify(location)} leaves the model folder [file=${file} tensor=big.weight field=external_data.location]`);
    }
  });

  it('a symlinked data file pointing outside the folder: UNSAFE_PATH naming the link and where it leads', () => {
    const inner = join(dir, 'model');
    mkdirSync(inner);
    const file = join(inner, 'model.onnx');
    saveModelFile(smallModel(), file, { externalData: { threshold: 128 } });
    const secret = join(dir, 'secret.bin');
    writeFileSync(secret, readFileSync(join(inner, 'model.onnx_data')));
    unlinkSync(join(inner, 'model.onnx_data'));
    symlinkSync(secret, join(inner, 'model.onnx_data'));
    const e = caught(() => loadModelFile(file), 'UNSAFE_PATH');
    expect(e.message).toBe(`external data file model.onnx_data resolves outside the model folder (to ${secret}) [file=${join(inner, 'model.onnx_data')} tensor=big.weight]`);
  });

  it('a symlinked data file that stays inside the folder is fine', () => {
    const file = writeExternal();
    const sub = join(dir, 'weights');
    mkdirSync(sub);
    writeFileSync(join(sub, 'real.bin'), readFileSync(join(dir, 'model.onnx_data')));
    unlinkSync(join(dir, 'model.onnx_data'));
    symlinkSync(join(sub, 'real.bin'), join(dir, 'model.onnx_data'));
    expect(loadModelFile(file).graph.initializers.get('big.weight')!.initializer!.bytes().byteLength).toBe(256);
  });

  it('an offset past the end of the data file: EXTERNAL_DATA with the range and the file size', () => {
    const file = writeExternal();
    editProto(file, (_, t) => setExternal(t('big.weight'), 'offset', '4096'));
    const e = caught(() => loadModelFile(file), 'EXTERNAL_DATA');
    expect(e.message).toBe(`external data [4096, 4352) is past the end of model.onnx_data (256 bytes) [file=${file} tensor=big.weight]`);
  });

  it('a length past the end of the data file: EXTERNAL_DATA', () => {
    const file = writeExternal();
    editProto(file, (_, t) => {
      t('big.weight').dims = [128];
      setExternal(t('big.weight'), 'length', '512');
    });
    expect(caught(() => loadModelFile(file), 'EXTERNAL_DATA').message).toBe(
      `external data [0, 512) is past the end of model.onnx_data (256 bytes) [file=${file} tensor=big.weight]`,
    );
  });

  it('a length that does not fit the dims: SHAPE naming the tensor and the file', () => {
    const file = writeExternal();
    editProto(file, (_, t) => setExternal(t('big.weight'), 'length', '128'));
    expect(caught(() => loadModelFile(file), 'SHAPE').message).toBe(`tensor data has 128 bytes but float[64] needs 256 [file=${file} tensor=big.weight]`);
  });

  it('a non-numeric offset: EXTERNAL_DATA naming the field', () => {
    const file = writeExternal();
    editProto(file, (_, t) => setExternal(t('big.weight'), 'offset', '-1'));
    expect(caught(() => loadModelFile(file), 'EXTERNAL_DATA').message).toBe(
      `external_data offset "-1" is not a byte count [file=${file} tensor=big.weight field=external_data.offset]`,
    );
  });
});

describe('bad input: graphs', () => {
  /** a = Add(x, b); b = Neg(a): a cycle through two nodes, after a harmless first node. */
  function cyclicFile(): string {
    const g = new Graph('cyclic');
    const x = g.addInput('x', tensorType(DataType.FLOAT, [2]));
    const first = new Node({ opType: 'Relu', name: 'first', inputs: [x], outputs: ['r'] });
    const a = new Node({ opType: 'Add', name: 'node_a', inputs: [x, x], outputs: ['a'] });
    const b = new Node({ opType: 'Neg', name: 'node_b', inputs: [a.output()], outputs: ['b'] });
    a.setInput(1, b.output());
    g.insert([first, a, b]);
    g.outputs.push(b.output(), first.output());
    const file = join(dir, 'cyclic.onnx');
    writeFileSync(file, saveModelToBytes(new Model(g)));
    return file;
  }

  it('a cyclic graph loads (structure is kept as written) but toposort throws CYCLE naming the nodes and the graph', () => {
    const m = loadModelFile(cyclicFile());
    const e = caught(() => toposort.run(m), 'CYCLE');
    expect(e.message).toBe('the graph has a cycle of 2 node(s): node_a -> node_b -> node_a (node node_a reads b) [graph="main graph cyclic" node=node_a]');
  });

  it('a cyclic graph: validate reports the cycle, assertValid throws INVALID_GRAPH naming node and value', () => {
    const m = loadModelFile(cyclicFile());
    expect(validate(m).map((i) => i.kind)).toEqual(['unsorted', 'cycle']);
    const e = caught(() => assertValid(m), 'INVALID_GRAPH');
    expect(e.message).toMatch(/^the graph has a cycle of 2 node\(s\): node_a -> node_b -> node_a \(node node_a reads b\)/);
    expect(e.where).toEqual({ graph: 'main graph cyclic', node: 'node_a' });
  });

  it('a node input that no one defines: loads, and assertValid names the node and the value', () => {
    const file = join(dir, 'model.onnx');
    saveModelFile(smallModel(), file, { externalData: false });
    editProto(file, (m) => {
      m.graph!.node![1]!.input![1] = 'no_such_value';
    });
    const e = caught(() => assertValid(loadModelFile(file)), 'INVALID_GRAPH');
    expect(e.message).toBe('input 1 (no_such_value) of node mul is not defined: no graph input, initializer or earlier node output has this value [graph="main graph small" node=mul]');
  });
});

describe('bad input: nothing is written on error', () => {
  /** A tensor that claims 2^31 bytes: the encoder must refuse before writing anything. */
  const huge: Tensor = {
    dtype: DataType.UINT8,
    dims: [2 ** 31],
    byteLength: 2 ** 31,
    storage: 'lazy',
    bytes: () => {
      throw new Error('must not be read');
    },
  };
  /** A tensor whose bytes, computed at write time, do not fit its dims. */
  const wrongSize = () => new LazyTensor(DataType.FLOAT, [64], () => new Uint8Array(12));

  it('encoding fails before writing (over 2 GiB): USAGE, no file and no temp file', () => {
    const target = join(dir, 'out.onnx');
    const e = caught(() => saveModelFile(smallModel(huge), target, { externalData: false }), 'USAGE');
    expect(e.message).toMatch(/over the 2 GiB protobuf limit; save it with external data \[file=/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('encoding fails while writing (a tensor computed at write time is the wrong size): no file and no temp file', () => {
    const target = join(dir, 'out.onnx');
    const e = caught(() => saveModelFile(smallModel(wrongSize()), target), 'SHAPE');
    expect(e.message).toBe(`tensor data has 12 bytes but float[64] needs 256 [file=${target}]`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('encoding fails while writing external data: neither the model nor the data file (nor temps) is left, nor an open fd', () => {
    const target = join(dir, 'out.onnx');
    const openFds = () => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);
    const before = openFds();
    caught(() => saveModelFile(smallModel(wrongSize()), target, { externalData: { threshold: 128 } }), 'SHAPE');
    expect(readdirSync(dir)).toEqual([]);
    expect(openFds()).toBe(before);
  });

  it('a failed save over an existing file leaves the old file as it was', () => {
    const target = join(dir, 'out.onnx');
    writeFileSync(target, 'previous contents');
    caught(() => saveModelFile(smallModel(wrongSize()), target), 'SHAPE');
    expect(readdirSync(dir)).toEqual(['out.onnx']);
    expect(readFileSync(target, 'utf8')).toBe('previous contents');
  });

  it("saving over the model's own input file is refused, and the file is untouched", () => {
    const file = join(dir, 'model.onnx');
    saveModelFile(smallModel(), file, { externalData: false });
    const before = readFileSync(file);
    const m = loadModelFile(file);
    const e = caught(() => saveModelFile(m, file), 'USAGE');
    expect(e.message).toBe(`refusing to write over an input of the model; choose another output path [file=${file}]`);
    // Also through another path to the same file.
    symlinkSync(file, join(dir, 'alias.onnx'));
    caught(() => saveModelFile(m, join(dir, 'alias.onnx')), 'USAGE');
    expect(Buffer.compare(readFileSync(file), before)).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['alias.onnx', 'model.onnx']);
  });

  it("saving next to the input so that the output's data file would overwrite the input's is refused", () => {
    const file = writeExternal();
    const data = readFileSync(join(dir, 'model.onnx_data'));
    const m = loadModelFile(file);
    const e = caught(() => saveModelFile(m, join(dir, 'copy.onnx'), { externalData: { location: 'model.onnx_data', threshold: 128 } }), 'USAGE');
    expect(e.message).toContain(`[file=${join(dir, 'model.onnx_data')}]`);
    expect(Buffer.compare(readFileSync(join(dir, 'model.onnx_data')), data)).toBe(0);
    expect(existsSync(join(dir, 'copy.onnx'))).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['model.onnx', 'model.onnx_data']);
  });
});
