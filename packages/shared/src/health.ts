import http from 'node:http';

/**
 * `GET /health` for a worker process (builder, runner) — what an orchestrator's readiness and
 * liveness probes call: 200 `{"status":"ok"}` while `healthy()` holds, 503 otherwise.
 */
export async function startHealthServer(port: number, healthy: () => boolean): Promise<{ close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/health') return void res.writeHead(404).end();
    const ok = healthy();
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'unavailable' }));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, resolve));
  return { close: () => new Promise((resolve) => server.close(() => resolve())) };
}
