/** Bounds on one index, as `withIndex(name, q => q.eq(..).gt(..))` builds them, turned into a key interval. */
import type { Value } from "./values.ts";
import { encodeKey, prefixSuccessor, type KeyInterval } from "./keys.ts";
import type { IndexDefinition } from "./schema.ts";
import { FunctionError } from "./errors.ts";

export class IndexRangeBuilder {
  private equalities: Value[] = [];
  private lower: { value: Value; inclusive: boolean } | null = null;
  private upper: { value: Value; inclusive: boolean } | null = null;
  private rangeField: string | null = null;
  private readonly index: IndexDefinition;

  constructor(index: IndexDefinition) {
    this.index = index;
  }

  private fail(message: string): never {
    throw new FunctionError("BadRequest", `Index ${this.index.qualifiedName} (fields ${this.index.keyFields.join(", ")}): ${message}`);
  }

  private nextField(): string {
    const field = this.index.keyFields[this.equalities.length];
    if (field === undefined) this.fail("more conditions than index fields");
    return field;
  }

  eq(field: string, value: Value): this {
    if (this.rangeField !== null) this.fail(`eq("${field}") must come before range conditions`);
    const expected = this.nextField();
    if (field !== expected) this.fail(`eq("${field}") is out of order; the next field is "${expected}"`);
    this.equalities.push(value);
    return this;
  }

  private bound(field: string, which: "lower" | "upper", value: Value, inclusive: boolean): this {
    const expected = this.rangeField ?? this.nextField();
    if (field !== expected) this.fail(`range on "${field}" is out of order; expected "${expected}"`);
    if (this[which] !== null) this.fail(`two ${which} bounds on "${field}"`);
    this.rangeField = field;
    this[which] = { value, inclusive };
    return this;
  }

  gt(field: string, value: Value): this {
    return this.bound(field, "lower", value, false);
  }
  gte(field: string, value: Value): this {
    return this.bound(field, "lower", value, true);
  }
  lt(field: string, value: Value): this {
    return this.bound(field, "upper", value, false);
  }
  lte(field: string, value: Value): this {
    return this.bound(field, "upper", value, true);
  }

  /** The key interval these conditions select (possibly empty). */
  interval(): KeyInterval {
    const prefix = encodeKey(this.equalities);
    const withValue = (value: Value) => prefix + encodeKey([value]);
    const start = this.lower ? (this.lower.inclusive ? withValue(this.lower.value) : prefixSuccessor(withValue(this.lower.value))!) : prefix;
    const end = this.upper ? (this.upper.inclusive ? prefixSuccessor(withValue(this.upper.value)) : withValue(this.upper.value)) : prefixSuccessor(prefix);
    return { start, end };
  }
}
