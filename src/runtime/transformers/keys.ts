/**
 * @file transformers.js asks its cache for a file under two keys: the local path (`<localModelPath><id>/<file>`,
 * or `<id>/<file>` for a folder path) and the hub URL (`<host>/<id>/resolve/<revision>/<file>`). This maps
 * either back to (model id, file) for the models attnpatch was asked to patch.
 */

/** The file a key names inside model `id`, or undefined when the key is not about that model. */
export function fileInModel(key: string, id: string): string | undefined {
  const norm = (s: string) => s.replace(/\\/g, '/').replace(/\/+$/, '');
  const k = norm(key);
  const m = norm(id);
  const resolve = `/${m.replace(/^\/+/, '')}/resolve/`;
  const r = k.indexOf(resolve);
  if (r >= 0) {
    const rest = k.slice(r + resolve.length);
    const slash = rest.indexOf('/');
    return slash >= 0 ? decodeURIComponent(rest.slice(slash + 1)) : undefined;
  }
  const at = k.lastIndexOf(`${m}/`);
  if (at >= 0 && (at === 0 || k[at - 1] === '/' || m.startsWith('/'))) return k.slice(at + m.length + 1);
  return undefined;
}
