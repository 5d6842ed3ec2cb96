import type { ConfigProblem } from '../errors';
import type { Domain } from '../model/config';
import type { YamlSource } from './yaml-source';

/**
 * Routing tables (and conntrack zones) for domains with their own egress,
 * resolved after every domain file has been checked: a table depends on the
 * other domains' choices, so no single file's check can give it.
 */

/** Tables the kernel reserves (RFC-less: rt_tables unspec, default, main, local). */
export const RESERVED_TABLES: ReadonlySet<number> = new Set([0, 253, 254, 255]);

/**
 * Gives every domain with an egress its table (and conntrack zone). An
 * explicit table is claimed first; the others get, in name order, the first
 * free table at or after a slot picked by a hash of the domain name, so a
 * domain keeps its table across restarts and reloads as long as no new
 * domain takes that slot first (ADR 0011).
 */
export function allocateTables(checked: readonly { domain: Domain; src: YamlSource }[], range: { from: number; to: number }, out: ConfigProblem[]): void {
  const taken = new Map<number, string>();
  for (const c of checked) {
    const e = c.domain.egress;
    if (e === null || !e.explicitTable) {
      continue;
    }
    const prev = taken.get(e.table);
    if (prev !== undefined) {
      out.push(c.src.problem(['egress', 'table'], 'SGW_ERR_CONFIG_DUPLICATE', `table ${e.table} is already claimed by domain "${prev}"`));
      continue;
    }
    taken.set(e.table, c.domain.name);
  }
  const size = range.to - range.from + 1;
  const rest = checked.filter((c) => c.domain.egress !== null && !c.domain.egress.explicitTable).sort((a, b) => (a.domain.name < b.domain.name ? -1 : a.domain.name > b.domain.name ? 1 : 0));
  for (const c of rest) {
    const e = c.domain.egress as NonNullable<Domain['egress']>;
    const start = nameSlot(c.domain.name, size);
    let got: number | null = null;
    for (let i = 0; i < size; i++) {
      const t = range.from + ((start + i) % size);
      if (!taken.has(t) && !RESERVED_TABLES.has(t)) {
        got = t;
        break;
      }
    }
    if (got === null) {
      out.push(c.src.problem(['egress'], 'SGW_ERR_CONFIG_NO_TABLE', `no free table left in ${range.from}-${range.to} (daemon egress.tables)`));
      continue;
    }
    e.table = got;
    taken.set(got, c.domain.name);
  }
}

/** FNV-1a of the name, modulo `size`: pure and stable across versions of Node. */
function nameSlot(name: string, size: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % size;
}
