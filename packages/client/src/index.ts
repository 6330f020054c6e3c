export { packFunction } from './pack.js';
export { WharfClient, WharfApiError, type DeploymentInfo, type FunctionInfo, type InvokeResponse } from './client.js';
