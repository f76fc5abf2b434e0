// The datastore: one Store interface (types.ts), an in-memory, an SQLite and an etcd v3 backend, and openStore() to pick one.
export * from './types.js';
export { MemoryStore } from './memory.js';
export { SqliteStore, SCHEMA_VERSION, type SqliteStoreOptions } from './sqlite.js';
export { EtcdStore, ETCD_MAX_TXN_OPS, ETCD_MAX_REQUEST_BYTES, type EtcdStoreOptions } from './etcd.js';
export { openStore, defaultDatastoreSpec, parseDatastoreSpec, DATASTORE_FORMS, type DatastoreSpec } from './open.js';
export { parseLabelSelector, labelMatcher, type LabelSelector, type LabelRequirement } from './labelselector.js';
export { describeKey } from './common.js';
export { startInformer, type Informer, type InformerEvent, type InformerOptions } from './informer.js';
export { updateWithRetry, isRaceError, DELETE, type Mutation, type WriteResult } from './retry.js';
