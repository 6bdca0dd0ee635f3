// The PostgreSQL adapter of the SqlClient port, on the `pg` package (an optional peer
// dependency): `cloud-data-patterns/sql/pg`. `openSql` loads it by itself when the
// configuration names a server.

export type { PgSqlClientOptions } from './pg-sql-client.js';
export { PgSqlClient } from './pg-sql-client.js';
