/**
 * CQRS: commands decided by plain functions over an event-sourced model, read models built
 * from the events (inline or async projections, rebuilt without downtime) or kept as
 * materialized views refreshed on a schedule.
 */
export type { CommandDefinition } from './command.js';
export { defineCommand } from './command.js';
export type { CommandHandlerOptions, CommandResult, LoadedState } from './command-handler.js';
export { CommandHandler } from './command-handler.js';
export type { Decider, DomainEvent } from './decider.js';
export { DomainError, deciderSpec, fold } from './decider.js';
export type { QueryOptions, SqlProjection } from './projection.js';
export { openAsyncProjection, ReadModelQueries } from './projection.js';
export type { RebuildableProjection, RebuildOptions, RebuildResult } from './projection-rebuild.js';
export { RebuildError, rebuildProjection } from './projection-rebuild.js';
export type { RefreshViewsOptions, ViewRefresherOptions } from './view-refresher.js';
export { refreshMaterializedViews, ViewRefresher } from './view-refresher.js';
