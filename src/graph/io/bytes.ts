/**
 * @file Loading a model from bytes and encoding it back, with no file system: works in Node and the browser.
 * External data comes from supplied buffers (or any ExternalDataSource).
 */
import { AttnpatchError } from '../../errors.js';
import type { Model } from '../ir/model.js';
import { decodeModelProto } from '../serde/decode.js';
import { concatChunks, encodeMessage, type Encoded } from '../serde/encode.js';
import { BufferSource, type ExternalDataSource } from '../serde/external-data.js';
import { keepTensorLayout, modelToProto, type TensorWriter } from '../serde/from-ir.js';
import { modelFromProto } from '../serde/to-ir.js';

export interface LoadOptions {
  /** Name of the model file, for error messages. */
  file?: string;
  /** External data files by location (browser), or a source that reads them (Node: a folder). */
  externalData?: Record<string, Uint8Array> | ExternalDataSource;
  /** Maximum message nesting depth. */
  recursionLimit?: number;
  /** Load even when external data files are absent (structure only: inspecting, not running). */
  allowMissingExternalData?: boolean;
}

/** Protobuf messages cannot exceed 2 GiB; past that, weights must go to external data. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

function toSource(x: LoadOptions['externalData']): ExternalDataSource | undefined {
  if (!x) return undefined;
  return typeof (x as ExternalDataSource).read === 'function' ? (x as ExternalDataSource) : new BufferSource(x as Record<string, Uint8Array>);
}

/** Decodes a model. Weights stay views of `bytes` (keep it alive and unmodified while the model is used). */
export function loadModelFromBytes(bytes: Uint8Array, options: LoadOptions = {}): Model {
  const proto = decodeModelProto(bytes, {
    ...(options.file === undefined ? {} : { file: options.file }),
    ...(options.recursionLimit === undefined ? {} : { recursionLimit: options.recursionLimit }),
  });
  const external = toSource(options.externalData);
  return modelFromProto(proto, {
    ...(options.file === undefined ? {} : { file: options.file }),
    ...(external ? { external } : {}),
    ...(options.allowMissingExternalData ? { allowMissingExternalData: true } : {}),
  });
}

/** Encodes a model as chunks (weights referenced, not copied); throws past the 2 GiB protobuf limit. */
export function encodeModel(model: Model, writeTensor: TensorWriter = keepTensorLayout): Encoded {
  const encoded = encodeMessage(modelToProto(model, writeTensor), 'ModelProto');
  if (encoded.length > PROTOBUF_LIMIT) {
    throw new AttnpatchError('USAGE', `the model encodes to ${encoded.length} bytes, over the 2 GiB protobuf limit; save it with external data`);
  }
  return encoded;
}

/** Encodes a model into one buffer (tensors are written where they were read from). */
export function saveModelToBytes(model: Model, writeTensor: TensorWriter = keepTensorLayout): Uint8Array {
  return concatChunks(encodeModel(model, writeTensor));
}
