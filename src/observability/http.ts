import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ERROR_CODES } from '../errors';
import type { Logger } from './logger';

export interface Probe {
  /** Alive and the event loop not stuck. */
  health(): { ok: boolean; detail: Record<string, unknown> };
  /** Connected, subscribed, producers ready, not stalled, not stopping. */
  readiness(): { ok: boolean; detail: Record<string, unknown> };
}

/**
 * /healthz, /readyz and /metrics. Kubernetes probes and Prometheus are its only clients: it
 * answers GET only, never reads a body, and exposes nothing from the config.
 */
/** What /metrics serves: a prom-client registry, or the supervisor's aggregate of several. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export async function startHttpServer(
  host: string,
  port: number,
  probe: Probe,
  metrics: MetricsSource,
  log: Logger,
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const json = (status: number, body: unknown): void => {
      res
        .writeHead(status, { 'content-type': 'application/json' })
        .end(`${JSON.stringify(body)}\n`);
    };
    switch (url) {
      case '/healthz': {
        const h = probe.health();
        json(h.ok ? 200 : 503, { status: h.ok ? 'ok' : 'unhealthy', ...h.detail });
        return;
      }
      case '/readyz': {
        const r = probe.readiness();
        json(r.ok ? 200 : 503, { status: r.ok ? 'ready' : 'not ready', ...r.detail });
        return;
      }
      case '/metrics':
        metrics.metrics().then(
          (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
          (err: unknown) => {
            log.error({ code: ERROR_CODES.metrics, err }, 'metrics collection failed');
            res.writeHead(500).end();
          },
        );
        return;
      default:
        json(404, { status: 'not found', endpoints: ['/healthz', '/readyz', '/metrics'] });
    }
  });
  // Probes must never hold sockets open for long.
  server.requestTimeout = 5_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  log.info({ host: addr.address, port: addr.port }, 'http server listening');
  return server;
}
