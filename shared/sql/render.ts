import type { Config } from '../config';
import type { Warehouse } from '../ports';
import { bigqueryDialect, duckdbDialect, type SqlDialect } from './dialect';

/** The dialect the statements must be rendered in for this warehouse. */
export function dialectOf(warehouse: Warehouse, config: Pick<Config, 'project'>): SqlDialect {
  return warehouse.dialect === 'bigquery' ? bigqueryDialect(config.project) : duckdbDialect;
}
