/**
 * What goes in one call between a sync shard and the deployment object
 * (either way): the runtime refuses an RPC over 32 MiB, and a call that
 * fails is repaired by a resync that would send the same backlog again, so
 * a backlog larger than one call must go in several, in order, each within
 * `maxPeerBatchBytes`.
 */

/**
 * Takes the first frames of `queue` (removing them) up to `maxChars`
 * characters in all; at least one, so a frame larger than the limit goes
 * alone rather than never.
 */
export function takeBatch(queue: string[], maxChars: number): string[] {
  let chars = 0;
  let count = 0;
  while (count < queue.length) {
    const next = queue[count]!.length;
    if (count > 0 && chars + next > maxChars) break;
    chars += next;
    count++;
  }
  return queue.splice(0, count);
}

/**
 * Splits `items` (in order) into groups of at most `perGroup` items and
 * about `maxChars` characters of their JSON; an item larger than that goes
 * alone.
 */
export function groupBySize<T>(items: readonly T[], perGroup: number, maxChars: number): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let chars = 0;
  for (const item of items) {
    const size = JSON.stringify(item).length + 1;
    if (group.length > 0 && (group.length >= perGroup || chars + size > maxChars)) {
      groups.push(group);
      group = [];
      chars = 0;
    }
    group.push(item);
    chars += size;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
