import express, { type Express } from 'express';
import { authRoutes, requireAuth } from './auth.js';
import { functionsRoutes, type FunctionsDeps } from './functions-routes.js';
import { errorHandler, notFound } from './http-errors.js';
import { invocationsRoutes } from './invocations-routes.js';

export function createApp(deps: FunctionsDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // Function responses pass through as the function wrote them; no ETag of ours.
  app.set('etag', false);
  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use('/api/auth', express.json(), authRoutes(deps.pool));
  app.use('/api', requireAuth(deps.pool));
  app.use('/api/functions', functionsRoutes(deps));
  app.use('/api/invocations', invocationsRoutes(deps.pool));
  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
