/**
 * @file Typed errors as data. Every error attnpatch raises on purpose is an {@link AttnpatchError}: a code from a
 * closed set, a human message, and a `where` telling which file/graph/node/tensor/field it is about. Boundaries
 * (file loaders, passes, CLI commands) add location with {@link withContext} instead of re-wording messages.
 */

/** Every error code, with what it means. */
export const ERROR_CODES = Object.freeze({
  PARSE: 'bad or truncated protobuf',
  EXTERNAL_DATA: 'external data file missing, out of range, or at an unsafe location',
  UNSAFE_PATH: 'absolute path, or a path that leaves the model folder',
  SHAPE: 'dims or lengths do not fit a buffer',
  CYCLE: 'the graph has a cycle',
  INVALID_GRAPH: 'undefined input, missing opset import, …',
  UNSUPPORTED: 'a form attnpatch cannot handle (yet)',
  IO: 'file system error',
  USAGE: 'bad CLI or API arguments',
  PATCH: 'a patch could not be applied',
});

/** The closed set of error codes. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** What an error is about; every field is optional. Listed outer to inner. */
export type ErrorWhere = {
  readonly file?: string;
  readonly graph?: string;
  readonly node?: string;
  readonly tensor?: string;
  readonly field?: string;
};

// NOTE: a fixed order keeps messages stable whatever order callers built `where` in.
const WHERE_KEYS = ['file', 'graph', 'node', 'tensor', 'field'] as const;

/** `file=a.onnx node=/attn/MatMul`; values with spaces, quotes, `=` or brackets are JSON-quoted. */
function formatWhere(where: ErrorWhere): string {
  const parts: string[] = [];
  for (const key of WHERE_KEYS) {
    const value = where[key];
    if (value === undefined) continue;
    parts.push(`${key}=${/[\s"=[\]]/.test(value) || value === '' ? JSON.stringify(value) : value}`);
  }
  return parts.join(' ');
}

/** An error attnpatch raised on purpose: `message` is `rawMessage [location]`. */
export class AttnpatchError extends Error {
  override readonly name = 'AttnpatchError';
  readonly code: ErrorCode;
  readonly where: ErrorWhere;
  /** The message without the location suffix. */
  readonly rawMessage: string;

  constructor(code: ErrorCode, message: string, where: ErrorWhere = {}, options?: { cause?: unknown }) {
    const location = formatWhere(where);
    super(location ? `${message} [${location}]` : message, options);
    this.code = code;
    this.where = Object.freeze({ ...where });
    this.rawMessage = message;
  }
}

/** True for an AttnpatchError, also one from another copy of this package (checked by name, not `instanceof`). */
export function isAttnpatchError(x: unknown): x is AttnpatchError {
  if (typeof x !== 'object' || x === null) return false;
  const e = x as { name?: unknown; code?: unknown };
  return e.name === 'AttnpatchError' && typeof e.code === 'string';
}

/**
 * Adds location to an error crossing a boundary: `catch (e) { throw withContext(e, { file }) }`.
 * An AttnpatchError comes back as a new one with `where` merged; a Node system error (`code` like ENOENT) is wrapped
 * as 'IO'; anything else is rethrown unchanged.
 */
export function withContext(err: unknown, where: ErrorWhere): AttnpatchError {
  if (isAttnpatchError(err)) {
    // NOTE: fields already set win: the inner error knows best (e.g. the external data file, not the .onnx).
    const wrapped = new AttnpatchError(err.code, err.rawMessage, { ...where, ...err.where }, { cause: err.cause });
    if (err.stack) wrapped.stack = err.stack.replace(err.message, wrapped.message); // keep the original throw site
    return wrapped;
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
    return new AttnpatchError('IO', err.message, where, { cause: err });
  }
  throw err;
}
