import type { Pool } from 'pg';

/**
 * What the store and the ledger use of a `pg` Pool (any pool with the same API fits, such as
 * `@neondatabase/serverless`'s). The application owns it: nothing here ends it.
 */
export type PgPool = Pick<Pool, 'connect' | 'on'>;
