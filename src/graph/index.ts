/**
 * @file `attnpatch/graph`: the ONNX IR, its serde, tensors and file I/O helpers that work without a file system.
 * Node-only file I/O is in `./io/fs.js` (also re-exported from the package root for Node users).
 */
export { Value, type Use } from './ir/value.js';
export { Node, type NodeInit, type Input } from './ir/node.js';
export { Graph } from './ir/graph.js';
export { Model, OnnxFunction } from './ir/model.js';
export { attr, attrFloat, attrInt, attrInts, attrString, attrTensor, type Attribute, type AttributeType } from './ir/attribute.js';
export { DataType, dtypeName, dtypeByteLength } from './ir/dtype.js';
export { tensorType, sameType, type Dim, type TensorType, type ValueType } from './ir/types.js';
export { MemoryTensor, LazyTensor, elementCount, viewBytes, type Tensor, type TensorStorage } from './tensor/tensor.js';
export { toFloat32, toNumbers, halfToFloat, floatToHalf, bfloat16ToFloat } from './tensor/decode.js';
export { loadModelFromBytes, saveModelToBytes, encodeModel, type LoadOptions } from './io/bytes.js';
export { BufferSource, checkLocation, type ExternalDataSource } from './serde/external-data.js';
