export { packFunction } from './pack.js';
export {
  WharfClient,
  WharfApiError,
  type DeletionInfo,
  type DeploymentInfo,
  type DeploymentPage,
  type FunctionConfig,
  type FunctionInfo,
  type InvokeKey,
  type InvokeOptions,
  type InvokeResponse,
} from './client.js';
