/**
 * A static file server for the browser tests: serves a folder (the repo root) on 127.0.0.1 at a free port, with the
 * headers a page needs to be cross-origin isolated (COOP/COEP: SharedArrayBuffer, so ORT's wasm threads) and the MIME
 * types module scripts, `WebAssembly.instantiateStreaming` and transformers.js expect. GET and HEAD only, single
 * byte ranges (transformers.js probes files with `Range: bytes=0-0`), nothing outside the root.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.onnx_data': 'application/octet-stream',
  '.data': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
  '.model': 'application/octet-stream',
};

/** A response served from memory instead of the file system (e.g. a page with a generated import map). */
export interface VirtualFile {
  type: string;
  body: string | Uint8Array;
}

export interface StaticServer {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  origin: string;
  /** Every request served, as `METHOD path status` (for failure messages). */
  log: string[];
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Paths (starting with `/`) answered from memory. */
  virtual?: Record<string, VirtualFile>;
}

function isolationHeaders(res: ServerResponse): void {
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Accept-Ranges', 'bytes');
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` of a file of `size` bytes; null when absent, 'bad' when unsatisfiable. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'bad' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // multi-range or malformed: serve the whole file
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start > end || start >= size ? 'bad' : { start, end };
}

/** Serves `root` until `close()`. */
export async function serveStatic(root: string, options: ServeOptions = {}): Promise<StaticServer> {
  const base = resolve(root);
  const log: string[] = [];
  const virtual = options.virtual ?? {};

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    isolationHeaders(res);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return 405;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return 400;
    }
    if (path.endsWith('/')) path += 'index.html';
    const v = virtual[path];
    if (v) {
      const body = typeof v.body === 'string' ? Buffer.from(v.body) : v.body;
      res.writeHead(200, { 'Content-Type': v.type, 'Content-Length': body.byteLength });
      res.end(req.method === 'HEAD' ? undefined : body);
      return 200;
    }
    const file = join(base, path);
    if (file !== base && !file.startsWith(base + sep)) {
      res.writeHead(403).end();
      return 403;
    }
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${path}`);
      return 404;
    }
    const type = MIME[extname(file).toLowerCase()] ?? 'application/octet-stream';
    const range = parseRange(req.headers.range, st.size);
    if (range === 'bad') {
      res.writeHead(416, { 'Content-Range': `bytes */${st.size}` }).end();
      return 416;
    }
    const { start, end } = range ?? { start: 0, end: st.size - 1 };
    const status = range ? 206 : 200;
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Length': Math.max(0, end - start + 1),
      ...(range ? { 'Content-Range': `bytes ${start}-${end}/${st.size}` } : {}),
    });
    if (req.method === 'HEAD' || st.size === 0) {
      res.end();
      return status;
    }
    await new Promise<void>((done, fail) => {
      const stream = createReadStream(file, { start, end });
      stream.on('error', fail);
      res.on('close', () => {
        stream.destroy();
        done();
      });
      stream.pipe(res);
    });
    return status;
  };

  const server = createServer((req, res) => {
    handle(req, res).then(
      (status) => log.push(`${req.method} ${req.url} ${status}`),
      (e: unknown) => {
        log.push(`${req.method} ${req.url} error ${(e as Error).message}`);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      },
    );
  });
  // Keep-alive sockets would hold close() open until they time out.
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => done());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      }),
  };
}
