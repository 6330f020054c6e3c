import express, { type Express } from 'express';
import { apiKeysRoutes } from './api-keys-routes.js';
import { authRoutes, requireAuth } from './auth.js';
import { clusterRoutes } from './cluster-routes.js';
import type { ApiDeps } from './deps.js';
import { functionsRoutes } from './functions-routes.js';
import { errorHandler, notFound } from './http-errors.js';
import { functionInvocationsRoutes, invocationsRoutes } from './invocations-routes.js';
import { invokeRoutes, triggerRoutes } from './invoke-routes.js';

export function createApp(deps: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // Function responses pass through as the function wrote them; no ETag of ours.
  app.set('etag', false);
  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use('/api/auth', express.json(), authRoutes(deps.pool));
  // Invocations authenticate on their own (token or API key), so they come before the token-only guard.
  app.use('/api/functions', invokeRoutes(deps));
  app.use('/fn', triggerRoutes(deps));
  app.use('/api', requireAuth(deps.pool));
  app.use('/api/functions', functionsRoutes(deps), apiKeysRoutes(deps), functionInvocationsRoutes(deps));
  app.use('/api/invocations', invocationsRoutes(deps));
  app.use('/api/cluster', clusterRoutes(deps));
  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
