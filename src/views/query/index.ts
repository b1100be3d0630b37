/** The query view (flumeview-query semantics): everything a user needs, re-exported by `src/index.ts`. */
export { QueryView, query, type Query, type QueryRecord, type QueryViewOptions } from './query-view.js';
export type { QueryIndex, QueryPlan, PlanRange } from './plan.js';
export type { QueryStage, QueryFilter, MapSpec, ReduceSpec, ReducerSpec, SortSpec } from './compile.js';
export type { Path } from './values.js';
