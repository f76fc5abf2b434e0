export * from './meta.js';
export * from './types.js';
export * from './ipv4.js';
export { parseManifest, formatPath, formatProblem, type ManifestProblem, type RawObject, type FieldPath } from './manifest.js';
export { validateObject, checkEgressAnnotations } from './validate.js';
export { validateManifests, formatProblems, BUILTIN_NAMESPACES, type ManifestFile, type ValidResource, type ExistingObjects, type BatchResult } from './load.js';
export { podIPv4, readyCondition, isPodReady, isPodFinished } from './pod.js';
export * from './dataplane.js';
export * from './parse.js';
