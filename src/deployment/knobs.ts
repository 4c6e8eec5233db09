/**
 * The one accessor for a deployment's knobs: values from the knob table
 * (`knob-table.ts`), then the defaults of the deployment's tier
 * (`src/knobs/tiers.ts`), then runtime overrides. Overrides persist in the
 * deployment's SQLite (`knob_overrides`), every change is recorded
 * (`knob_changes`) and applies to the next read, so no restart is needed.
 */
import type { EngineLimits } from "../engine/index.ts";
import { DEFAULT_ENGINE_LIMITS } from "../engine/index.ts";
import type { SyncKnobs } from "../sync/local-source.ts";
import {
  brokenInvariant,
  DEFAULT_KNOBS,
  isKnobName,
  KNOB_INVARIANTS,
  KNOBS,
  type KnobDefinition,
  type KnobName,
  type KnobValues,
} from "../knobs/knob-table.ts";

export { KNOBS, DEFAULT_KNOBS, KNOB_INVARIANTS, type KnobDefinition, type KnobName, type KnobValues } from "../knobs/knob-table.ts";

/** Knobs that were renamed, with the factor from the old unit (stored overrides follow them). */
const RENAMED: Record<string, [KnobName, number]> = {
  searchMemoryBudgetMB: ["searchMemoryBudgetBytes", 1_048_576],
  queryResultCacheMB: ["queryResultCacheBytes", 1_048_576],
};

export class KnobError extends Error {
  override name = "KnobError";
}

export interface KnobChange {
  name: KnobName;
  old: number;
  new: number;
  at: number;
}

export interface KnobReport {
  name: KnobName;
  value: number;
  /** The knob table's default. */
  default: number;
  /** The deployment's tier default, where its tier sets one. */
  tierDefault?: number;
  source: "default" | "tier" | "override";
  unit: KnobDefinition["unit"];
  min: number;
  max: number;
  doc: string;
}

/**
 * The one accessor: defaults from the table, overridden at runtime per
 * deployment. Overrides persist in the deployment's SQLite (`knob_overrides`),
 * every change is recorded (`knob_changes`) and applies to the next read, so
 * no restart is needed.
 */
export class Knobs {
  /** The table's defaults with the tier's over them: what a knob is without an override. */
  private readonly base: Readonly<KnobValues>;
  private readonly tierDefaults: Readonly<Partial<KnobValues>>;
  private current: KnobValues;
  private overridden = new Set<KnobName>();
  private engineLimitsMemo: Readonly<EngineLimits> | null = null;
  private readonly storage: DurableObjectStorage | null;

  /**
   * With no storage (plain tests), overrides live in memory only. A stored
   * override that no longer validates (a knob removed, a value now out of
   * range, a rule between knobs broken) falls back to the default, logged
   * through `warn`; it stays stored, so the history shows what was set.
   * `tierDefaults` (the deployment's tier, src/knobs/tiers.ts) replace the table's
   * defaults; an override still wins.
   */
  constructor(storage: DurableObjectStorage | null = null, tierDefaults: Partial<KnobValues> = {}, warn: (line: string) => void = console.warn) {
    this.storage = storage;
    this.tierDefaults = tierDefaults;
    this.base = { ...DEFAULT_KNOBS, ...tierDefaults };
    this.current = { ...this.base };
    if (!storage) return;
    for (const row of storage.sql.exec<{ name: string; value: number }>("SELECT name, value FROM knob_overrides")) {
      const [name, value] = RENAMED[row.name] ? [RENAMED[row.name]![0], row.value * RENAMED[row.name]![1]] : [row.name, row.value];
      const problem = this.problemWith(name, value);
      if (problem) {
        warn(`knob override ${row.name}=${row.value} ignored, default used: ${problem}`);
        continue;
      }
      this.current[name as KnobName] = value;
      this.overridden.add(name as KnobName);
    }
    for (const invariant of KNOB_INVARIANTS) {
      if (invariant.holds(this.current)) continue;
      for (const name of invariant.knobs) {
        if (!this.overridden.delete(name)) continue;
        warn(`knob override ${name}=${this.current[name]} ignored, default ${this.base[name]} used: ${invariant.rule}`);
        this.current[name] = this.base[name];
      }
    }
  }

  /** Why `value` is not a valid setting of knob `name`, or null. */
  private problemWith(name: string, value: unknown): string | null {
    if (!isKnobName(name)) return `Unknown knob "${name}"; known knobs: ${Object.keys(KNOBS).join(", ")}`;
    const knob = KNOBS[name];
    if (typeof value !== "number" || !Number.isFinite(value)) return `Knob ${name} must be a number, got ${JSON.stringify(value)}`;
    if (value < knob.min || value > knob.max) return `Knob ${name} must be between ${knob.min} and ${knob.max} ${knob.unit}, got ${value}`;
    if (knob.unit !== "ms" && !Number.isInteger(value)) return `Knob ${name} must be an integer, got ${value}`;
    return null;
  }

  get values(): Readonly<KnobValues> {
    return this.current;
  }

  /** Validates every change first (unknown name or out of range: `KnobError` naming it), then applies all of them. */
  set(changes: Record<string, unknown>, now = Date.now()): KnobChange[] {
    const valid: [KnobName, number][] = [];
    for (const [name, value] of Object.entries(changes)) {
      const problem = this.problemWith(name, value);
      if (problem) throw new KnobError(problem);
      valid.push([name as KnobName, value as number]);
    }
    const broken = brokenInvariant({ ...this.current, ...Object.fromEntries(valid) });
    if (broken) throw new KnobError(`Refused: ${broken}`);
    const applied: KnobChange[] = valid.map(([name, value]) => ({ name, old: this.current[name], new: value, at: now }));
    this.storage?.transactionSync(() => {
      for (const change of applied) {
        this.storage!.sql.exec("INSERT OR REPLACE INTO knob_overrides (name, value) VALUES (?, ?)", change.name, change.new);
        this.storage!.sql.exec(
          "INSERT INTO knob_changes (name, old_value, new_value, changed_at) VALUES (?, ?, ?, ?)",
          change.name,
          change.old,
          change.new,
          change.at,
        );
      }
      // The history is bounded: keep the newest rows only.
      const keep = valid.find(([name]) => name === "knobHistoryRows")?.[1] ?? this.current.knobHistoryRows;
      this.storage!.sql.exec("DELETE FROM knob_changes WHERE id <= (SELECT max(id) FROM knob_changes) - ?", keep);
    });
    for (const change of applied) {
      this.current[change.name] = change.new;
      this.overridden.add(change.name);
    }
    this.engineLimitsMemo = null;
    return applied;
  }

  /**
   * Sizing knobs (`sizing`: the ones tiers set) overridden below what this
   * deployment's tier gives it: the wrong-hardware mistake made at runtime
   * (its capacity quietly cut), worth showing the operator beside the tier.
   */
  belowTier(sizing: ReadonlySet<KnobName>): string[] {
    const below: string[] = [];
    for (const name of this.overridden) {
      if (sizing.has(name) && this.current[name] < this.base[name]) below.push(`${name} ${this.current[name]} (tier: ${this.base[name]})`);
    }
    return below;
  }

  report(): KnobReport[] {
    return (Object.entries(KNOBS) as [KnobName, KnobDefinition][]).map(([name, knob]) => ({
      name,
      value: this.current[name],
      default: knob.default,
      ...(this.tierDefaults[name] !== undefined ? { tierDefault: this.tierDefaults[name] } : {}),
      source: this.overridden.has(name) ? "override" : this.tierDefaults[name] !== undefined ? "tier" : "default",
      unit: knob.unit,
      min: knob.min,
      max: knob.max,
      doc: knob.doc,
    }));
  }

  /** Recorded changes, newest first. */
  history(limit = 100): KnobChange[] {
    if (!this.storage) return [];
    return this.storage.sql
      .exec<{ name: string; old_value: number; new_value: number; changed_at: number }>(
        "SELECT name, old_value, new_value, changed_at FROM knob_changes ORDER BY id DESC LIMIT ?",
        limit,
      )
      .toArray()
      .map((row) => ({ name: row.name as KnobName, old: row.old_value, new: row.new_value, at: row.changed_at }));
  }

  /** The engine's budgets, asked for by every run: built once per change of the knobs, not per run (issue 27). */
  engineLimits(): EngineLimits {
    if (this.engineLimitsMemo) return this.engineLimitsMemo;
    const limits = {} as EngineLimits;
    for (const name of Object.keys(DEFAULT_ENGINE_LIMITS) as (keyof EngineLimits)[]) limits[name] = this.current[name];
    return (this.engineLimitsMemo = Object.freeze(limits));
  }

  sync(): SyncKnobs {
    return this.current;
  }
}
