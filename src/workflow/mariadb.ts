/**
 * cloud-data-patterns/workflow/mariadb: the MariaDB participant of two-phase commit (XA
 * transactions) on `mysql2`, an optional peer dependency: importing this entry without it
 * installed fails with a `MissingDependencyError` that names the package to install.
 */
import { importOptional } from '../core/optional-dependency.js';

await importOptional(
  'mysql2',
  'the MariaDB participant of two-phase commit (cloud-data-patterns/workflow/mariadb)',
  () => import('mysql2/promise'),
);

export type {
  MariaDbBranchWork,
  MariaDbQueryable,
  MariaDbTwoPhaseParticipantOptions,
} from './mariadb-participant.js';
export { MariaDbTwoPhaseParticipant } from './mariadb-participant.js';
