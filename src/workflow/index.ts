export type {
  ChoreographedSagaDefinition,
  ChoreographedSagaEvent,
  ChoreographedSagaInstance,
  ChoreographedSagaMonitorOptions,
  ChoreographedSagaState,
} from './choreographed-saga.js';
export { ChoreographedSagaMonitor, choreographedSagaMigrations } from './choreographed-saga.js';
