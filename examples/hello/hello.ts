import { CloudFunction, CloudResponse, cloudFunction, type CloudRequest, type FunctionContext } from '@wharf/sdk';

@cloudFunction
export class Hello extends CloudFunction {
  async handle(request: CloudRequest, ctx: FunctionContext): Promise<CloudResponse> {
    ctx.logger.info('greeting', { name: request.query.name });
    return CloudResponse.json({ message: `Hello ${request.query.name ?? 'world'}` });
  }
}
