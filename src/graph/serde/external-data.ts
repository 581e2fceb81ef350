/**
 * @file External tensor data: where it may live (a location checked to stay inside the model folder) and
 * how it is read (lazily, at `bytes()` time, through a source: files on disk in Node, buffers in the browser).
 */
import { AttnpatchError } from '../../errors.js';

/** Reads external data files by their (already checked) relative location. */
export interface ExternalDataSource {
  /** Size of the file in bytes, or undefined when it does not exist. */
  size(location: string): number | undefined;
  /** `length` bytes at `offset` of the file. */
  read(location: string, offset: number, length: number): Uint8Array;
  /** Optional: a label for error messages (e.g. the model folder). */
  readonly label?: string;
}

/**
 * Checks an external-data `location`: relative, no drive or UNC prefix, no NUL, and it must not leave the
 * model folder. Returns the normalized relative path ('a/b.bin').
 */
export function checkLocation(location: string, where: { file?: string; tensor?: string }): string {
  const bad = (why: string) =>
    new AttnpatchError('UNSAFE_PATH', `external data location ${JSON.stringify(location)} ${why}`, { ...where, field: 'external_data.location' });
  if (location === '') throw bad('is empty');
  if (location.includes('\0')) throw bad('contains a NUL byte');
  if (location.startsWith('/') || location.startsWith('\\') || /^[a-zA-Z]:/.test(location)) throw bad('is absolute; it must be relative to the model folder');
  const parts: string[] = [];
  for (const seg of location.split(/[\\/]+/)) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (parts.length === 0) throw bad('leaves the model folder');
      parts.pop();
    } else parts.push(seg);
  }
  if (parts.length === 0) throw bad('names no file');
  return parts.join('/');
}

/** A source over buffers supplied by the caller (browser, or bytes already in memory). */
export class BufferSource implements ExternalDataSource {
  private readonly files = new Map<string, Uint8Array>();
  readonly label = 'supplied buffers';
  constructor(files: Record<string, Uint8Array> | Map<string, Uint8Array>) {
    const entries = files instanceof Map ? [...files] : Object.entries(files);
    for (const [k, v] of entries) this.files.set(checkLocation(k, {}), v);
  }
  size(location: string): number | undefined {
    return this.files.get(location)?.byteLength;
  }
  read(location: string, offset: number, length: number): Uint8Array {
    const f = this.files.get(location);
    if (!f) throw new AttnpatchError('EXTERNAL_DATA', `external data file ${location} was not supplied`, { file: location });
    return f.subarray(offset, offset + length);
  }
}
