// Records every console line in `window.__consoleLines`, so a run can return the logs it produced: ORT's verbose log
// says which execution provider each node was placed on. ORT's own verbose/info lines (written by its wasm logger
// with console.error) are only recorded, not printed: a verbose WebGPU session logs every program it starts, and
// printing thousands of lines costs seconds. Everything else is printed as usual (the test reports it on failure).
(() => {
  const lines = [];
  window.__consoleLines = lines;
  const ortChatter = /^(\x1b\[[0-9;]*m)?\d{4}-\d\d-\d\d [\d:.]+ \[[VI]:onnxruntime/;
  const fmt = (a) => {
    if (typeof a === 'string') return a;
    if (a instanceof Error) return `${a.name}: ${a.message}`;
    try {
      return JSON.stringify(a, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
    } catch {
      return String(a);
    }
  };
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    const original = console[level].bind(console);
    console[level] = (...args) => {
      const text = args.map(fmt).join(' ');
      lines.push(`[${level}] ${text}`);
      if (!ortChatter.test(text)) original(...args);
    };
  }
})();
