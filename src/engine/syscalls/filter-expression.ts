/**
 * Evaluates the filter expressions `convex/server` serializes from
 * `.filter(q => q.and(q.eq(q.field("a"), 1), ...))`, as Convex's backend does:
 * comparisons use Convex's total order across types (a missing field is
 * `undefined`, below `null`), arithmetic needs both sides of the same numeric
 * type, `and`/`or`/`not` need booleans, and a row passes only on `true`.
 */
import type { Document, JSONValue, Value } from "../values.ts";
import { describe, jsonToConvex } from "../values.ts";
import { encodeKey } from "../keys.ts";
import { readField } from "../schema.ts";
import { FunctionError } from "../errors.ts";

export type Expression =
  | { $literal: JSONValue }
  | { $field: string }
  | { [binary in "$eq" | "$neq" | "$lt" | "$lte" | "$gt" | "$gte" | "$add" | "$sub" | "$mul" | "$div" | "$mod"]?: [Expression, Expression] }
  | { $neg: Expression }
  | { $not: Expression }
  | { $and: Expression[] }
  | { $or: Expression[] };

/** A wire value where `{"$undefined": null}` stands for a missing value (filters, index ranges, patches). */
export function wireToValue(json: JSONValue): Value | undefined {
  if (json !== null && typeof json === "object" && !Array.isArray(json) && "$undefined" in json && Object.keys(json).length === 1) return undefined;
  return jsonToConvex(json);
}

/** Compares two values in Convex's total order: -1, 0 or 1. */
export function compareValues(a: Value | undefined, b: Value | undefined): number {
  const x = encodeKey([a]);
  const y = encodeKey([b]);
  return x < y ? -1 : x > y ? 1 : 0;
}

function fail(message: string): never {
  throw new FunctionError("BadRequest", `Filter expression: ${message}`);
}

function arithmetic(op: string, a: Value | undefined, b: Value | undefined): Value {
  if (typeof a === "bigint" && typeof b === "bigint") {
    switch (op) {
      case "$add":
        return BigInt.asIntN(64, a + b);
      case "$sub":
        return BigInt.asIntN(64, a - b);
      case "$mul":
        return BigInt.asIntN(64, a * b);
      case "$div":
        if (b === 0n) fail("division of an int64 by zero");
        return a / b;
      default:
        if (b === 0n) fail("modulo of an int64 by zero");
        return a % b;
    }
  }
  if (typeof a === "number" && typeof b === "number") {
    switch (op) {
      case "$add":
        return a + b;
      case "$sub":
        return a - b;
      case "$mul":
        return a * b;
      case "$div":
        return a / b;
      default:
        return a % b;
    }
  }
  return fail(`${op.slice(1)} needs two int64s or two float64s, got ${describe(a)} and ${describe(b)}`);
}

function boolean(value: Value | undefined, op: string): boolean {
  if (typeof value !== "boolean") fail(`${op.slice(1)} needs booleans, got ${describe(value)}`);
  return value;
}

export function evaluate(expression: Expression, document: Document): Value | undefined {
  const [op, operand] = Object.entries(expression)[0] ?? fail("empty expression");
  switch (op) {
    case "$literal":
      return wireToValue(operand as JSONValue);
    case "$field":
      return readField(document, operand as string);
    case "$eq":
    case "$neq":
    case "$lt":
    case "$lte":
    case "$gt":
    case "$gte": {
      const [left, right] = operand as [Expression, Expression];
      const order = compareValues(evaluate(left, document), evaluate(right, document));
      return op === "$eq"
        ? order === 0
        : op === "$neq"
          ? order !== 0
          : op === "$lt"
            ? order < 0
            : op === "$lte"
              ? order <= 0
              : op === "$gt"
                ? order > 0
                : order >= 0;
    }
    case "$add":
    case "$sub":
    case "$mul":
    case "$div":
    case "$mod": {
      const [left, right] = operand as [Expression, Expression];
      return arithmetic(op, evaluate(left, document), evaluate(right, document));
    }
    case "$neg": {
      const value = evaluate(operand as Expression, document);
      if (typeof value === "bigint") return BigInt.asIntN(64, -value);
      if (typeof value === "number") return -value;
      return fail(`neg needs a number, got ${describe(value)}`);
    }
    case "$not":
      return !boolean(evaluate(operand as Expression, document), op);
    case "$and":
      return (operand as Expression[]).every((item) => boolean(evaluate(item, document), op));
    case "$or":
      return (operand as Expression[]).some((item) => boolean(evaluate(item, document), op));
    default:
      return fail(`unknown operator ${op}`);
  }
}

/** Whether `document` passes the filter: only an expression that evaluates to `true` does. */
export function passes(expression: Expression, document: Document): boolean {
  return evaluate(expression, document) === true;
}
